"""Reading image and mask files with Pillow.

Pillow reads every format the folder sources accept (PNG, JPEG, TIFF, GIF, BMP) and,
unlike tf.io.decode_png, returns the palette indices of a palette ("P" mode) mask,
which is how many class-index masks are stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")
LOSSY_SUFFIXES = (".jpg", ".jpeg")
_GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")

# Errors Pillow raises for missing, truncated or invalid files.
READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


def open_image(path: Path) -> Image.Image:
    """Open an image file and check its data, raising ValueError that names the file.

    `Image.verify` checks PNG chunk checksums and file structure without decoding
    pixels. NOTE: it cannot detect every damaged JPEG. Truncated JPEG data can still
    fail later, when the pixels are decoded, and that error names the file too.
    """
    try:
        with Image.open(path) as probe:
            probe.verify()
        return Image.open(path)
    except READ_ERRORS as error:
        raise ValueError(f"cannot read image file {path}: {error}") from error


def is_grayscale(image: Image.Image) -> bool:
    return image.mode in _GRAYSCALE_MODES


def read_image(path: Path, channels: int) -> np.ndarray:
    """Decode an image to a uint8 array of shape (height, width, channels).

    `channels` is 1 (grayscale) or 3 (RGB). Colour images are converted to grayscale
    or grayscale to RGB as needed, and an alpha channel is dropped. NOTE: 16-bit
    images are scaled to 8 bits (value / 257), so finer intensity steps are lost.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I"):
                array = _sixteen_bit_to_uint8(np.asarray(image), path)
                image = Image.fromarray(array)
            converted = image.convert("L" if channels == 1 else "RGB")
    except READ_ERRORS as error:
        raise ValueError(f"cannot decode image file {path}: {error}") from error
    array = np.asarray(converted, dtype=np.uint8)
    return array.reshape(array.shape[0], array.shape[1], channels)


def read_mask(path: Path, colour: bool, luminance: bool) -> np.ndarray:
    """Decode a mask file to its stored values without interpreting them.

    Returns an (height, width, 3) uint8 RGB array when `colour` is set (palette
    encoding), else an (height, width) integer array. Palette-mode files give their
    palette indices unless `luminance` is set, which converts them to gray levels as
    the binary encodings need. A colour mask whose channels differ is converted to gray
    levels when `luminance` is set and rejected otherwise.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return _mask_values(image, path, colour, luminance)
    except READ_ERRORS as error:
        raise ValueError(f"cannot decode mask file {path}: {error}") from error


def _mask_values(image: Image.Image, path: Path, colour: bool, luminance: bool) -> np.ndarray:
    if colour:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if image.mode == "P":
        return np.asarray(image.convert("L") if luminance else image)
    if image.mode in ("1", "LA"):
        return np.asarray(image.convert("L"))
    if image.mode.startswith("I") or image.mode == "L":
        return np.asarray(image)
    rgb = np.asarray(image.convert("RGB"))
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    if luminance:
        return np.asarray(image.convert("L"))
    raise ValueError(
        f"mask file {path} has colour pixels (its R, G and B channels differ): pass "
        "mask_encoding='palette' with a palette of class colours, or mask_encoding='binary' "
        "for a black and white mask saved with colour JPEG compression"
    )


def _sixteen_bit_to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.min() < 0 or array.max() > 65535:
        raise ValueError(f"image file {path} has values outside 0..65535, which is not supported")
    return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
