"""The effective receptive field: which input pixels move one output pixel, and by how much.

The theoretical receptive field (`zoo.analysis.receptive_field`) bounds the input window that
can reach an output pixel. The effective receptive field (Luo et al., NIPS 2016, "Understanding
the Effective Receptive Field in Deep Convolutional Neural Networks") is the gradient of that
output pixel with respect to the input. That paper finds it roughly Gaussian and only a
fraction of the theoretical field.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

LOGITS_LAYER = "head_conv"


def effective_receptive_field(model: keras.Model, images) -> np.ndarray:
    """Return the effective receptive field of the centre output pixel, shape (height, width).

    For each class k, the gradient of the class score (logit) z_k at pixel
    (height // 2, width // 2) is taken with respect to the input. The map is the sum over
    classes and input channels of the absolute gradients, averaged over `images`
    (batch, height, width, channels) and scaled to sum to 1. The model runs in inference
    mode, so BatchNormalization uses its moving statistics and each image is independent.
    Logits are used because a softmax output sums to 1, so the gradient of that sum is 0.
    """
    logits_model = keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)
    inputs = tf.convert_to_tensor(np.asarray(images, dtype="float32"))
    _, height, width, _ = inputs.shape
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        logits = tf.cast(logits_model(inputs, training=False), tf.float32)
        centre = logits[:, height // 2, width // 2, :]
        # Summing over the batch is safe: each image's score depends on that image only.
        class_sums = [tf.reduce_sum(centre[:, k]) for k in range(centre.shape[-1])]

    magnitude = np.zeros((height, width), dtype="float64")
    for class_sum in class_sums:
        gradient = tape.gradient(class_sum, inputs).numpy()
        magnitude += np.abs(gradient).sum(axis=-1).mean(axis=0)
    del tape

    total = magnitude.sum()
    if total <= 0:
        logger.warning("The centre pixel of %s has zero gradient, so the map is all zeros", model.name)
        return magnitude
    return magnitude / total


def mass_radius(field: np.ndarray, fraction: float = 0.95) -> float:
    """Return the radius, in pixels, of the smallest centred disc with `fraction` of the mass of `field`.

    The centre is (height // 2, width // 2), the pixel that `effective_receptive_field`
    differentiates. A field that is all zeros has radius 0.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"Invalid fraction: {fraction!r}. Expected a number in (0, 1].")
    field = np.asarray(field, dtype="float64")
    total = field.sum()
    if total <= 0:
        return 0.0
    rows, cols = np.indices(field.shape)
    distance = np.hypot(rows - field.shape[0] // 2, cols - field.shape[1] // 2).ravel()
    order = np.argsort(distance, kind="stable")
    cumulative = np.cumsum(field.ravel()[order])
    index = int(np.searchsorted(cumulative, fraction * total * (1 - 1e-9)))
    return float(distance[order][min(index, distance.size - 1)])


def support_extent(field: np.ndarray) -> tuple[int, int]:
    """Return the (height, width) of the smallest box that contains every nonzero pixel of `field`."""
    rows, cols = np.nonzero(np.asarray(field))
    if rows.size == 0:
        return 0, 0
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
