"""Segmentation folders: pairing images with masks, holdout splits and up-front checks.

A segmentation folder has an `images/` and a `masks/` subfolder. An image and its mask
share a file stem (`images/12.jpg` pairs with `masks/12.png`). Pairs are ordered by
natural sort of the stem, so `2` comes before `10`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from zoo.data import image_files, mask_encoding

logger = logging.getLogger(__name__)

_MAX_LISTED = 10


@dataclasses.dataclass(frozen=True)
class ImagePair:
    stem: str
    image_path: Path
    mask_path: Path


@dataclasses.dataclass(frozen=True)
class FolderScan:
    """A checked segmentation folder with its resolved mask encoding and classes."""

    folder: Path
    pairs: tuple[ImagePair, ...]
    mask_encoding: str
    palette: dict[tuple[int, int, int], int] | None
    class_names: tuple[str, ...]
    channels: int


def natural_sort_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: "2" < "10", "slice2" < "slice10"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text) if part)


def find_pairs(folder: str | Path) -> list[ImagePair]:
    """List the image/mask pairs of a folder in natural order of their stems.

    Raises FileNotFoundError when the folder or a subfolder is missing, and ValueError
    listing the names when images lack masks, masks lack images, or a stem has two files.
    """
    folder = Path(folder)
    images = _files_by_stem(folder / "images")
    masks = _files_by_stem(folder / "masks")
    images_only = sorted(set(images) - set(masks), key=natural_sort_key)
    masks_only = sorted(set(masks) - set(images), key=natural_sort_key)
    if images_only or masks_only:
        raise ValueError(
            f"unmatched files in {folder}: images without masks: {_listing(images_only)}; "
            f"masks without images: {_listing(masks_only)}. "
            "An image and its mask must have the same file name stem."
        )
    if not images:
        raise ValueError(f"no image files in {folder / 'images'} (accepted suffixes: {', '.join(image_files.IMAGE_SUFFIXES)})")
    stems = sorted(images, key=natural_sort_key)
    return [ImagePair(stem, images[stem], masks[stem]) for stem in stems]


def split_holdout(pairs: Sequence[ImagePair], fraction: float) -> tuple[list[ImagePair], list[ImagePair]]:
    """Split pairs into (train, test), where test is the last `fraction` of the pairs.

    The test count is fraction * len(pairs) rounded half up, at least 1, and at least
    one pair stays in train: 30 pairs with fraction 0.2 give 24 train and 6 test pairs.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout_fraction must be between 0 and 1 (exclusive), got {fraction}")
    test_count = max(1, math.floor(len(pairs) * fraction + 0.5))
    if test_count >= len(pairs):
        raise ValueError(
            f"cannot hold out {fraction:.0%} of {len(pairs)} pairs and keep a training pair; "
            "add pairs or lower holdout_fraction"
        )
    return list(pairs[:-test_count]), list(pairs[-test_count:])


def scan_folder(
    folder: str | Path,
    encoding: str = "auto",
    palette: Sequence[Sequence[int]] | Mapping[Sequence[int], int] | None = None,
    class_names: Sequence[str] | None = None,
) -> FolderScan:
    """Pair and check every file of a segmentation folder before any training work.

    Reads each image header and each full mask. Raises ValueError that names the files
    for unreadable images or masks, image/mask size mismatches, palette colours that
    are missing, and mask values outside `class_names`.
    """
    start = time.perf_counter()
    if encoding not in mask_encoding.MASK_ENCODINGS:
        raise ValueError(f"unknown mask_encoding {encoding!r}; expected one of {', '.join(mask_encoding.MASK_ENCODINGS)}")
    if (encoding == "palette") != (palette is not None):
        raise ValueError("pass palette= exactly when mask_encoding='palette'")
    normalized_palette = mask_encoding.normalize_palette(palette) if palette is not None else None
    pairs = find_pairs(folder)

    values, grayscale = _check_pairs(pairs, encoding, normalized_palette)
    if encoding == "auto":
        lossy = any(pair.mask_path.suffix.lower() in image_files.LOSSY_SUFFIXES for pair in pairs)
        encoding = mask_encoding.infer_encoding(np.array(sorted(values), dtype=np.int64), lossy)
        logger.info("Inferred mask encoding %r for %s", encoding, folder)
    names = _class_names(encoding, values, normalized_palette, class_names)
    logger.info("Checked %d image/mask pairs in %s in %.1f s", len(pairs), folder, time.perf_counter() - start)
    return FolderScan(
        folder=Path(folder),
        pairs=tuple(pairs),
        mask_encoding=encoding,
        palette=normalized_palette,
        class_names=names,
        channels=1 if all(grayscale) else 3,
    )


def _listing(names: Sequence[str]) -> str:
    if not names:
        return "none"
    more = f" (and {len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def _files_by_stem(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"folder {directory} not found: a segmentation folder needs images/ and masks/ subfolders"
        )
    files: dict[str, Path] = {}
    for path in directory.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in image_files.IMAGE_SUFFIXES:
            continue
        if path.stem in files:
            raise ValueError(f"two files in {directory} share the stem {path.stem!r}: {files[path.stem].name}, {path.name}")
        files[path.stem] = path
    return files


def _check_pairs(
    pairs: Sequence[ImagePair], encoding: str, palette: dict | None
) -> tuple[dict[int, Path], list[bool]]:
    """Read every pair and return ({stored mask value: first mask file with it}, grayscale flags).

    For the palette encoding the values are packed RGB colours.
    """
    problems: list[str] = []
    values: dict[int, Path] = {}
    grayscale: list[bool] = []
    for pair in pairs:
        try:
            with image_files.open_image(pair.image_path) as image:
                image_size, is_gray = image.size, image_files.is_grayscale(image)
            mask = image_files.read_mask(
                pair.mask_path,
                colour=encoding == "palette",
                luminance=encoding in ("binary", "binary_inverted"),
            )
        except ValueError as error:
            problems.append(str(error))
            continue
        grayscale.append(is_gray)
        if (mask.shape[1], mask.shape[0]) != image_size:
            problems.append(
                f"size mismatch: image {pair.image_path} is {image_size[0]}x{image_size[1]}, "
                f"mask {pair.mask_path} is {mask.shape[1]}x{mask.shape[0]}"
            )
        stored = mask_encoding.pack_colours(mask) if encoding == "palette" else mask
        for value in np.unique(stored).tolist():
            values.setdefault(int(value), pair.mask_path)
    if problems:
        more = f" (and {len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        raise ValueError("invalid segmentation folder:\n  " + "\n  ".join(problems[:_MAX_LISTED]) + more)
    return values, grayscale


def _class_names(
    encoding: str, values: dict[int, Path], palette: dict | None, class_names: Sequence[str] | None
) -> tuple[str, ...]:
    """Return the class names, checking that every stored mask value maps to one of them."""
    if encoding == "palette":
        unknown = sorted(set(values) - {int(mask_encoding.pack_colours(np.array(c, dtype=np.uint8))) for c in palette})
        if unknown:
            listed = ", ".join(f"{mask_encoding.unpack_colour(v)} in {values[v]}" for v in unknown[:_MAX_LISTED])
            raise ValueError(f"mask colours not in the palette: {listed}")
        num_classes = len(set(palette.values()))
    elif encoding == "index":
        invalid = [v for v in (min(values, default=0), max(values, default=0)) if not 0 <= v <= 255]
        if invalid:
            raise ValueError(
                f"mask value {invalid[0]} in {values[invalid[0]]} is not a class id: index masks support class ids 0..255"
            )
        num_classes = max(values, default=0) + 1
    else:
        num_classes = 2

    if class_names is None:
        if num_classes == 2 and encoding != "index":
            return ("background", "foreground")
        return tuple(f"class_{i}" for i in range(num_classes))
    class_names = tuple(class_names)
    if encoding == "index":
        too_large = [v for v in sorted(values) if v >= len(class_names)]
        if too_large:
            raise ValueError(
                f"mask value {too_large[0]} in {values[too_large[0]]} is not a class id: "
                f"class_names has {len(class_names)} names, so ids must be 0..{len(class_names) - 1}"
            )
    elif len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names, but the {encoding} encoding gives {num_classes} classes")
    return class_names
