"""Result types of `zoo.data.load`."""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """Description of a loaded segmentation dataset.

    Sizes are example counts, or None where TFDS does not record them (for example
    under `tfds.testing.mock_data`). `train_ids` and `test_ids` are the file stems of a
    folder source in split order, and empty for TFDS sources. `class_weights` contains the
    per-class weights behind the sample weights, or None without class weighting.
    """

    name: str
    source_kind: str  # "tfds" or "folder"
    class_names: tuple[str, ...]
    channels: int
    allow_rot90: bool
    train_size: int | None
    validation_size: int | None
    test_size: int | None
    validation_is_test: bool
    image_size: int | None = None
    mask_encoding: str | None = None
    class_weights: tuple[float, ...] | None = None
    train_ids: tuple[str, ...] = ()
    test_ids: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Batched datasets of one source.

    Elements are (image, mask) or, with class weighting, (image, mask, sample_weight):
    image float32 (batch, size, size, channels) in [0, 1], mask int32 (batch, size,
    size) of class ids, sample_weight float32 (batch, size, size). `train` is shuffled
    and augmented anew on each iteration and covers one epoch per iteration.
    `validation` and `test` are neither shuffled nor augmented. When
    `info.validation_is_test` is True they hold the same examples.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    info: DataInfo
