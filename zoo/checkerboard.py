"""Checkerboard artifacts of a model's decoder, measured with `zoo.analysis.checkerboard_score`.

Odena et al. (Distill, 2016, "Deconvolution and Checkerboard Artifacts") trace checkerboard
patterns to the uneven overlap of transposed convolutions whose kernel size is not divisible by
the stride. At initialisation, random kernels also give the four output phases of any stride-2
transposed convolution different weights, so 2x2 and 4x4 kernels start with a period-2 pattern
too. Resize-convolution and ICNR-initialised pixel shuffle start without one. This module scores
two signals of a model built by `zoo.build`:

- `features`: the output of the last upsampling layer, `dec1_up`, before the skip joins it;
- `output`: the class probabilities of the head.

Each is scored on a constant grey image, where any period-2 pattern can only come from the
model, and on real images. Borders are cropped first, because zero padding adds structure there.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

import zoo
from zoo.analysis import checkerboard_score

logger = logging.getLogger(__name__)

UPSAMPLING_LAYER = "dec1_up"
CONSTANT_LEVEL = 0.5
SIGNALS = ("constant_features", "constant_output", "heldout_features", "heldout_output")


def decoder_probe(model: keras.Model) -> keras.Model:
    """Return a model that maps the input to [last upsampling output, class probabilities]."""
    try:
        upsampled = model.get_layer(UPSAMPLING_LAYER).output
    except ValueError as error:
        raise ValueError(
            f"Model '{model.name}' has no layer named '{UPSAMPLING_LAYER}'. Build it with zoo.build."
        ) from error
    return keras.Model(model.input, [upsampled, model.output])


def _interior(maps: np.ndarray, margin: int) -> np.ndarray:
    """Crop `margin` pixels from each side of (batch, height, width, channels) maps."""
    if margin == 0:
        return maps
    return maps[:, margin:-margin, margin:-margin, :]


def _border_margin(size: int) -> int:
    """Return the crop for a side of `size` pixels: an eighth, rounded down to an even number."""
    return (size // 8) // 2 * 2


def _mean_score(maps: np.ndarray) -> float:
    margin = _border_margin(maps.shape[1])
    return float(np.mean([checkerboard_score(image) for image in _interior(maps, margin)]))


def constant_image(images) -> np.ndarray:
    """Return one grey image of the height, width and channels of `images`."""
    _, height, width, channels = np.shape(images)
    return np.full((1, height, width, channels), CONSTANT_LEVEL, dtype="float32")


def measure(model: keras.Model, heldout_images) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Score the checkerboard pattern of `model` on a grey image and on `heldout_images`.

    Returns (scores, maps). `scores` has the keys of `SIGNALS`, each the mean
    `checkerboard_score` over images, itself averaged over channels. `maps` contains
    float32 arrays for figures: the `dec1_up` output on the grey image and on the first
    held-out image, and that image's highest class probability per pixel (the confidence).
    """
    probe = decoder_probe(model)
    images = np.asarray(heldout_images, dtype="float32")
    constant_features, constant_output = (np.asarray(x, "float32") for x in
                                          probe(constant_image(images), training=False))
    heldout_features, heldout_output = (np.asarray(x, "float32") for x in
                                        probe(images, training=False))
    scores = {
        "constant_features": _mean_score(constant_features),
        "constant_output": _mean_score(constant_output),
        "heldout_features": _mean_score(heldout_features),
        "heldout_output": _mean_score(heldout_output),
    }
    maps = {
        "constant_features": constant_features[0],
        "heldout_features": heldout_features[0],
        "heldout_confidence": heldout_output[0].max(axis=-1),
    }
    return scores, maps


def rank_at_init(variants, input_shape: tuple, num_classes: int = 2, seed: int = 0,
                 **overrides) -> list[tuple[str, dict[str, float]]]:
    """Build each variant with seed `seed` and rank them by `constant_features`, highest first.

    The held-out signals use random uniform images. Every variant gets the same weights seed,
    so two variants that share a layer shape also share its initial weights.
    """
    rows = []
    images = np.random.default_rng(seed).random((2, *input_shape), dtype="float32")
    for variant in variants:
        keras.utils.set_random_seed(seed)
        model = zoo.build(variant, input_shape=input_shape, num_classes=num_classes, **overrides)
        scores, _ = measure(model, images)
        logger.info("%s at initialisation: %s", variant, scores)
        rows.append((variant, scores))
    return sorted(rows, key=lambda row: row[1]["constant_features"], reverse=True)
