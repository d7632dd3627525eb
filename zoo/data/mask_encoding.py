"""Mask encodings of segmentation folders and their conversion to class ids.

Encodings:
  index            stored values are the class ids.
  binary           values >= 128 are class 1, values < 128 class 0 (0/255 masks, and
                   JPEG masks whose compression noise stays near 0 and 255).
  binary_inverted  values < 128 are class 1, values >= 128 class 0 (masks that draw
                   the class of interest in black, such as ISBI 2012 membranes).
  palette          RGB colours; a palette gives the class id of each colour.
  auto             chosen by `infer_encoding` from the values of all masks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

MASK_ENCODINGS = ("auto", "index", "binary", "binary_inverted", "palette")
BINARY_THRESHOLD = 128
# "auto" picks "index" only when every stored value is below this limit.
AUTO_INDEX_LIMIT = 32
# Width of the bands near 0 and 255 that lossy (JPEG) binary masks may use.
_LOSSY_BAND = 32

Palette = Mapping[tuple[int, int, int], int]
"""Class id of each RGB colour."""


def normalize_palette(palette: Sequence[Sequence[int]] | Mapping[Sequence[int], int]) -> dict[tuple[int, int, int], int]:
    """Return a palette as {(r, g, b): class_id}.

    A sequence of colours gives class id i to the i-th colour. Class ids must be the
    integers 0..n-1, with no colour listed twice.
    """
    if isinstance(palette, Mapping):
        items = [(tuple(int(c) for c in colour), int(class_id)) for colour, class_id in palette.items()]
    else:
        items = [(tuple(int(c) for c in colour), class_id) for class_id, colour in enumerate(palette)]
    result: dict[tuple[int, int, int], int] = {}
    for colour, class_id in items:
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise ValueError(f"invalid palette colour {colour}: expected three integers in 0..255")
        if colour in result:
            raise ValueError(f"palette lists colour {colour} twice")
        result[colour] = class_id
    if sorted(set(result.values())) != list(range(len(set(result.values())))):
        raise ValueError(f"palette class ids {sorted(set(result.values()))} must be 0..n-1 without gaps")
    return result


def pack_colours(rgb: np.ndarray) -> np.ndarray:
    """Pack uint8 RGB triples along the last axis into int32 values 0xRRGGBB."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack_colour(packed: int) -> tuple[int, int, int]:
    return (packed >> 16) & 255, (packed >> 8) & 255, packed & 255


def infer_encoding(values: np.ndarray, lossy: bool) -> str:
    """Choose "index" or "binary" for the distinct stored values of all masks.

    "binary" when the values are {0, 255} or {255}, or when some mask is lossy (JPEG)
    and all values lie within 32 of 0 or 255 with at least one near 255. "index" when
    all values are below AUTO_INDEX_LIMIT (32). Any other set of values raises
    ValueError, because a guess could turn gray levels into hundreds of classes.
    """
    values = np.unique(values)
    if values.size and set(values.tolist()) <= {0, 255} and 255 in values:
        return "binary"
    near_white = values >= 256 - _LOSSY_BAND
    near_black = values < _LOSSY_BAND
    if lossy and near_white.any() and np.all(near_white | near_black):
        return "binary"
    if values.size == 0 or values.max() < AUTO_INDEX_LIMIT:
        return "index"
    listed_values = ", ".join(str(v) for v in values[:12]) + (" ..." if values.size > 12 else "")
    raise ValueError(
        f"cannot infer the mask encoding from the mask values {listed_values}: pass "
        "mask_encoding='index', 'binary', 'binary_inverted' or 'palette' (with palette=)"
    )


def encode_mask(values: np.ndarray, encoding: str, palette: Palette | None, path: Path) -> np.ndarray:
    """Convert stored mask values to a uint8 class-id mask of shape (height, width).

    Raises ValueError naming `path` for a colour missing from the palette or an index
    value above 255.
    """
    if encoding == "binary":
        return (values >= BINARY_THRESHOLD).astype(np.uint8)
    if encoding == "binary_inverted":
        return (values < BINARY_THRESHOLD).astype(np.uint8)
    if encoding == "index":
        if values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError(
                f"mask file {path} has index value {values.max()}: class ids must be 0..255"
            )
        return values.astype(np.uint8)
    if encoding == "palette":
        return _encode_palette(values, palette or {}, path)
    raise ValueError(f"unknown mask encoding {encoding!r}; expected one of {', '.join(MASK_ENCODINGS[1:])}")


def _encode_palette(rgb: np.ndarray, palette: Palette, path: Path) -> np.ndarray:
    keys = np.array(sorted(pack_colours(np.array(colour, dtype=np.uint8)) for colour in palette), dtype=np.int32)
    class_ids = np.array([palette[unpack_colour(int(key))] for key in keys], dtype=np.uint8)
    packed = pack_colours(rgb)
    positions = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[positions] == packed
    if not known.all():
        unknown = [unpack_colour(int(v)) for v in np.unique(packed[~known])[:5]]
        raise ValueError(
            f"mask file {path} has colours not in the palette: {unknown}; add them to palette="
        )
    return class_ids[positions]
