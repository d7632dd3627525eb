"""Paired augmentation of (image, mask) examples with stateless random ops.

Geometric transforms (flips, 90-degree rotations, zoom with a random crop) move image
and mask together. Photometric changes (brightness, contrast, noise) touch the image
only. Every random choice comes from stateless ops seeded per element, so a given
seed reproduces the same sequence of transforms, and each new iteration of the
dataset (each epoch) gets new transforms.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation; a zero range or False turns one off.

    `vertical_flip` and `rot90` take effect only for sources that allow 90-degree
    rotations (DataInfo.allow_rot90). `zoom_range` is the range of the zoom factor:
    a factor z crops a random window of side size / z and resizes it back to size.
    """

    horizontal_flip: bool = True
    vertical_flip: bool = True
    rot90: bool = True
    zoom_range: tuple[float, float] = (1.0, 1.25)
    brightness_delta: float = 0.1
    contrast_range: tuple[float, float] = (0.8, 1.2)
    noise_stddev: float = 0.02

    def __post_init__(self) -> None:
        low, high = self.zoom_range
        if not 1.0 <= low <= high:
            raise ValueError(f"zoom_range must satisfy 1 <= low <= high, got {self.zoom_range}")
        low, high = self.contrast_range
        if not 0.0 < low <= high:
            raise ValueError(f"contrast_range must satisfy 0 < low <= high, got {self.contrast_range}")
        if self.brightness_delta < 0 or self.noise_stddev < 0:
            raise ValueError("brightness_delta and noise_stddev must not be negative")


def augment_pair(
    image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, allow_rot90: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """Augment one square example.

    `image` is float32 (size, size, channels) in [0, 1], `mask` an integer (size, size)
    tensor, and `seed` a shape [2] integer tensor. Equal seeds give equal results.
    """
    seeds = tf.random.split(tf.cast(seed, tf.int64), num=8)
    image, mask = _flip_and_rotate(image, mask, seeds[:3], config, allow_rot90)
    image, mask = _zoom(image, mask, seeds[3], seeds[4], config.zoom_range)
    image = _photometric(image, seeds[5], seeds[6], seeds[7], config)
    return image, mask


def augment_dataset(
    dataset: tf.data.Dataset, seed: int, config: AugmentConfig, allow_rot90: bool
) -> tf.data.Dataset:
    """Augment every (image, mask) element of an unbatched dataset.

    Element i gets the stateless seed (seed, r_i), where r_i is the i-th value of
    `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`. That stream is
    new on every iteration but fixed by `seed`, so each epoch gets new transforms and
    rebuilding the dataset with the same seed repeats them.
    """
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def apply(example: tuple[tf.Tensor, tf.Tensor], random: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask = example
        element_seed = tf.stack([tf.constant(seed, tf.int64), random])
        return augment_pair(image, mask, element_seed, config, allow_rot90)

    zipped = tf.data.Dataset.zip((dataset, randoms))
    return zipped.map(apply, num_parallel_calls=tf.data.AUTOTUNE)


def _coin(seed: tf.Tensor) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed) < 0.5


def _flip_and_rotate(image, mask, seeds, config: AugmentConfig, allow_rot90: bool):
    if config.horizontal_flip:
        flip = _coin(seeds[0])
        image = tf.where(flip, tf.reverse(image, axis=[1]), image)
        mask = tf.where(flip, tf.reverse(mask, axis=[1]), mask)
    if allow_rot90 and config.vertical_flip:
        flip = _coin(seeds[1])
        image = tf.where(flip, tf.reverse(image, axis=[0]), image)
        mask = tf.where(flip, tf.reverse(mask, axis=[0]), mask)
    if allow_rot90 and config.rot90:
        turns = tf.random.stateless_uniform([], seeds[2], minval=0, maxval=4, dtype=tf.int32)
        image = tf.image.rot90(image, turns)
        mask = tf.image.rot90(mask[..., None], turns)[..., 0]
    return image, mask


def _zoom(image, mask, size_seed, offset_seed, zoom_range: tuple[float, float]):
    """Crop a random square window of side size / zoom and resize it back to size.

    The image is resized bilinearly and the mask with nearest neighbour, so the mask
    keeps its class ids and stays aligned with the image.
    """
    low, high = zoom_range
    if high == 1.0:
        return image, mask
    size = tf.shape(image)[0]
    zoom = tf.random.stateless_uniform([], size_seed, minval=low, maxval=high)
    crop = tf.cast(tf.round(tf.cast(size, tf.float32) / zoom), tf.int32)
    crop = tf.clip_by_value(crop, 1, size)
    offsets = tf.random.stateless_uniform([2], offset_seed, minval=0, maxval=size - crop + 1, dtype=tf.int32)
    image = tf.image.crop_to_bounding_box(image, offsets[0], offsets[1], crop, crop)
    mask = tf.image.crop_to_bounding_box(mask[..., None], offsets[0], offsets[1], crop, crop)
    image = tf.image.resize(image, [size, size], method="bilinear")
    mask = tf.image.resize(mask, [size, size], method="nearest")[..., 0]
    return image, mask


def _photometric(image, brightness_seed, contrast_seed, noise_seed, config: AugmentConfig):
    if config.brightness_delta > 0:
        delta = config.brightness_delta
        image = image + tf.random.stateless_uniform([], brightness_seed, minval=-delta, maxval=delta)
    low, high = config.contrast_range
    if (low, high) != (1.0, 1.0):
        factor = tf.random.stateless_uniform([], contrast_seed, minval=low, maxval=high)
        mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
        image = (image - mean) * factor + mean
    if config.noise_stddev > 0:
        image = image + tf.random.stateless_normal(tf.shape(image), noise_seed, stddev=config.noise_stddev)
    return tf.clip_by_value(image, 0.0, 1.0)
