"""Per-pixel class weighting through sample weights.

Keras rejects `class_weight` for targets of rank above 2, so segmentation class
weights travel as a third element of each example: a float32 weight per pixel, looked
up from the pixel's class id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

ClassWeights = str | Mapping[int, float] | Sequence[float]


def count_pixels(dataset: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Count the pixels of each class over an unbatched (image, mask) dataset."""

    def add(counts: tf.Tensor, example: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        mask = tf.reshape(tf.cast(example[1], tf.int32), [-1])
        return counts + tf.math.bincount(mask, minlength=num_classes, maxlength=num_classes, dtype=tf.int64)

    counts = dataset.reduce(tf.zeros([num_classes], tf.int64), add)
    return counts.numpy()


def balanced_weights(counts: np.ndarray) -> np.ndarray:
    """Return inverse-frequency weights total / (num_classes * count) for pixel counts.

    When all classes have equal pixel counts, each gets weight 1. A class without
    pixels gets weight 0, because no finite weight is the inverse of a zero frequency.
    """
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (len(counts) * counts[present])
    if not present.all():
        logger.warning("Classes %s have no training pixels and get weight 0", np.flatnonzero(~present).tolist())
    return weights.astype(np.float32)


def resolve_class_weights(
    class_weights: ClassWeights, num_classes: int, train: tf.data.Dataset
) -> np.ndarray:
    """Turn "balanced", a {class_id: weight} mapping or a weight list into a weight per class.

    "balanced" counts the pixels of `train`. A mapping gives weight 1 to classes it
    leaves out. Raises ValueError for unknown class ids, wrong lengths or negative weights.
    """
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be 'balanced', a mapping or a sequence, got {class_weights!r}")
        weights = balanced_weights(count_pixels(train, num_classes))
    elif isinstance(class_weights, Mapping):
        unknown = sorted(set(class_weights) - set(range(num_classes)))
        if unknown:
            raise ValueError(f"class_weights has class ids {unknown}, expected ids 0..{num_classes - 1}")
        weights = np.ones(num_classes, dtype=np.float32)
        for class_id, weight in class_weights.items():
            weights[class_id] = weight
    else:
        weights = np.asarray(class_weights, dtype=np.float32)
        if weights.shape != (num_classes,):
            raise ValueError(f"class_weights has {weights.size} values, expected one per class ({num_classes})")
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError(f"class weights must be finite and not negative, got {weights.tolist()}")
    logger.info("Class weights: %s", np.round(weights, 4).tolist())
    return weights.astype(np.float32)


def add_sample_weights(dataset: tf.data.Dataset, weights: np.ndarray) -> tf.data.Dataset:
    """Map (image, mask) elements to (image, mask, per-pixel weight of the mask's class)."""
    table = tf.constant(weights, tf.float32)

    def attach(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return image, mask, tf.gather(table, mask)

    return dataset.map(attach, num_parallel_calls=tf.data.AUTOTUNE)
