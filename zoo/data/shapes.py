"""Procedural drawing of the zoo_shapes segmentation images.

Every image has a textured, noisy background and several filled shapes. Shape fill
colours and background colours come from the same distribution, so a model must use
shape and context, not colour, to tell the classes apart. All drawing is vectorised
numpy on a pixel-centre grid, and each example depends only on the generator it gets.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("background", "disk", "square", "triangle", "ring")
"""Class names of zoo_shapes, indexed by class id."""

# Smallest Euclidean RGB distance between a shape's fill colour and the mean colour of
# the background, so that no shape is invisible.
_MIN_COLOUR_DISTANCE = 60.0
_NOISE_STDDEV = 8.0
_MIN_SHAPES = 4
_MAX_SHAPES = 6


def draw_example(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image and its mask.

    Returns a uint8 RGB image of shape (size, size, 3) and a uint8 mask of shape
    (size, size) with class ids indexing CLASS_NAMES. The first four shapes are one of
    each shape class in random order, so every class is drawn in every image, although
    a later shape may partly or fully cover an earlier one.
    """
    background_low = _random_colour(rng)
    background_high = _random_colour(rng)
    background_mean = (background_low + background_high) / 2.0
    blend = _texture(rng, size)[..., None]
    image = background_low + blend * (background_high - background_low)
    mask = np.zeros((size, size), dtype=np.uint8)

    shape_ids = list(rng.permutation(np.arange(1, len(CLASS_NAMES))))
    extra_count = int(rng.integers(0, _MAX_SHAPES - _MIN_SHAPES + 1))
    shape_ids += list(rng.integers(1, len(CLASS_NAMES), size=extra_count))
    for class_id in shape_ids:
        window, region = _shape_region(rng, int(class_id), size)
        fill = _fill_colour(rng, background_mean)
        shading = 0.85 + 0.3 * _texture(rng, size, window)[..., None]
        image[window] = np.where(region[..., None], fill * shading, image[window])
        mask[window][region] = class_id

    image = image + _NOISE_STDDEV * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, mask


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, size=3).astype(np.float32)


def _fill_colour(rng: np.random.Generator, background_mean: np.ndarray) -> np.ndarray:
    """Draw a fill colour from the shared distribution that contrasts with the background."""
    colour = _random_colour(rng)
    for _ in range(20):
        if np.linalg.norm(colour - background_mean) >= _MIN_COLOUR_DISTANCE:
            break
        colour = _random_colour(rng)
    return colour


def _texture(rng: np.random.Generator, size: int, window: tuple[slice, slice] | None = None) -> np.ndarray:
    """Return a smooth random field in [0, 1] made of three plane waves.

    The field covers the (size, size) image, or only `window` of it when given. Each
    wave sin(a * row + b * col + phase) is expanded with the angle-sum identity into
    outer products of 1-D sines and cosines, so sin is evaluated on 1-D arrays only.
    """
    rows, cols = window if window is not None else (slice(0, size), slice(0, size))
    row_centres = np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5
    col_centres = np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5
    field = np.zeros((len(row_centres), len(col_centres)), dtype=np.float32)
    for _ in range(3):
        angle = rng.uniform(0.0, np.pi)
        frequency = 2.0 * np.pi * rng.uniform(1.0, 6.0) / size
        phase = rng.uniform(0.0, 2.0 * np.pi)
        row_angle = frequency * np.sin(angle) * row_centres + phase
        col_angle = frequency * np.cos(angle) * col_centres
        field += np.outer(np.sin(row_angle), np.cos(col_angle))
        field += np.outer(np.cos(row_angle), np.sin(col_angle))
    return (field / 3.0 + 1.0) / 2.0


def _shape_region(
    rng: np.random.Generator, class_id: int, size: int
) -> tuple[tuple[slice, slice], np.ndarray]:
    """Place one random shape of the given class.

    Returns the (row, column) slices of the shape's bounding window in the image and
    the boolean pixel region of the shape inside that window.
    """
    radius = rng.uniform(0.07, 0.16) * size
    centre_row, centre_col = rng.uniform(radius, size - radius, size=2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    # The triangle reaches 1.15 * radius from the centre, the other shapes less.
    reach = 1.15 * radius + 1.0
    top, bottom = max(0, int(centre_row - reach)), min(size, int(centre_row + reach) + 1)
    left, right = max(0, int(centre_col - reach)), min(size, int(centre_col + reach) + 1)
    rows, cols = np.mgrid[top:bottom, left:right].astype(np.float32) + 0.5

    # Coordinates in the shape's own frame: rotated by `angle` around its centre.
    d_row = rows - centre_row
    d_col = cols - centre_col
    u = d_col * np.cos(angle) + d_row * np.sin(angle)
    v = -d_col * np.sin(angle) + d_row * np.cos(angle)
    distance_squared = d_row**2 + d_col**2
    window = (slice(top, bottom), slice(left, right))

    name = CLASS_NAMES[class_id]
    if name == "disk":
        return window, distance_squared <= radius**2
    if name == "ring":
        inner = radius * rng.uniform(0.45, 0.65)
        return window, (distance_squared <= radius**2) & (distance_squared >= inner**2)
    if name == "square":
        half_side = 0.85 * radius
        return window, (np.abs(u) <= half_side) & (np.abs(v) <= half_side)
    if name == "triangle":
        # Equilateral triangle: inside all three edges, whose outward normals are 120
        # degrees apart and which lie at half the circumradius from the centre.
        circumradius = 1.15 * radius
        inside = np.ones_like(rows, dtype=bool)
        for edge in range(3):
            normal_angle = 2.0 * np.pi * edge / 3.0
            inside &= u * np.cos(normal_angle) + v * np.sin(normal_angle) <= circumradius / 2.0
        return window, inside
    raise ValueError(f"class id {class_id} ({name!r}) is not a shape class")
