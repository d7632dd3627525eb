"""`load`: batched train, validation and test pipelines for one segmentation source."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import augment as augment_lib
from zoo.data import registry, sources, weights
from zoo.data.splits import DataInfo, Splits

logger = logging.getLogger(__name__)

DEFAULT_HOLDOUT_FRACTION = 0.2
# Shuffle buffer when TFDS does not record the training set size.
_FALLBACK_SHUFFLE_BUFFER = 1024
# The buffer keeps its examples in memory next to the cache, so it stops growing here.
_MAX_SHUFFLE_BUFFER = 10_000


def load(
    source: str | Path,
    image_size: int = 128,
    batch_size: int = 8,
    seed: int = 0,
    augment: bool | augment_lib.AugmentConfig = True,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    mask_encoding: str = "auto",
    data_dir: str | Path | None = None,
    *,
    palette: Sequence[Sequence[int]] | Mapping[Sequence[int], int] | None = None,
    class_names: Sequence[str] | None = None,
    class_weights: weights.ClassWeights | None = None,
    allow_rot90: bool | None = None,
    builder_config: tfds.core.BuilderConfig | None = None,
    manual_dir: str | Path | None = None,
    cache: bool = True,
) -> Splits:
    """Build batched, prefetched train, validation and test datasets for one source.

    `source` is a registered TFDS name ("zoo_shapes", "zoo_shapes/small",
    "oxford_iiit_pet", "isbi2012_membrane", "segmentation_folder") or a folder with
    images/ and masks/ subfolders. Folder sources check every file first and hold out
    the last `holdout_fraction` of the pairs, in natural order, as test split.
    `holdout_fraction`, `mask_encoding`, `palette` and `class_names` apply to folders
    only, where `mask_encoding` is one of zoo.data.MASK_ENCODINGS. TFDS sources use
    the splits and classes of their registry entry and raise ValueError when one of
    these options differs from its default.

    Images are resized to image_size x image_size (bilinear, antialiased) and masks
    with nearest neighbour, without keeping the aspect ratio. Decoded, resized
    examples are cached in memory when `cache` is set. `augment` is True for the
    default AugmentConfig, an AugmentConfig, or False. `class_weights` ("balanced", a {class_id: weight} mapping or one weight per
    class) adds per-pixel sample weights to every split. `allow_rot90` overrides the
    source's setting (False for folders). `data_dir`, `builder_config` and `manual_dir`
    go to tfds.load for TFDS sources.
    """
    _check_arguments(image_size, batch_size, augment)
    datasets, info = _open_source(
        source, holdout_fraction, mask_encoding, palette, class_names, allow_rot90,
        data_dir, builder_config, manual_dir,
    )
    prepared = {
        "train": _prepare(datasets["train"], image_size, cache),
        "test": _prepare(datasets["test"], image_size, cache),
    }
    # A validation split that is the test split is prepared and cached only once.
    if datasets["validation"] is datasets["test"]:
        prepared["validation"] = prepared["test"]
    else:
        prepared["validation"] = _prepare(datasets["validation"], image_size, cache)

    weight_table = None
    if class_weights is not None:
        weight_table = weights.resolve_class_weights(class_weights, info.num_classes, prepared["train"])
    info = dataclasses.replace(
        info,
        image_size=image_size,
        class_weights=None if weight_table is None else tuple(float(w) for w in weight_table),
    )

    config = augment_lib.AugmentConfig() if augment is True else augment or None
    finished = {
        "train": _training_pipeline(prepared["train"], info, seed, config),
        "validation": _to_float(prepared["validation"]),
        "test": _to_float(prepared["test"]),
    }
    for split, dataset in finished.items():
        if weight_table is not None:
            dataset = weights.add_sample_weights(dataset, weight_table)
        finished[split] = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    logger.info(
        "Loaded %s: %s classes, train %s, validation %s, test %s examples",
        info.name, info.num_classes, info.train_size, info.validation_size, info.test_size,
    )
    return Splits(info=info, **finished)


def _check_arguments(image_size: int, batch_size: int, augment) -> None:
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(augment, (bool, augment_lib.AugmentConfig)):
        raise TypeError(f"augment must be a bool or an AugmentConfig, got {type(augment).__name__}")


def _open_source(
    source, holdout_fraction, mask_encoding, palette, class_names, allow_rot90,
    data_dir, builder_config, manual_dir,
) -> tuple[dict[str, tf.data.Dataset], DataInfo]:
    """Open a folder path or a registered TFDS name, rejecting options that do not apply.

    A registered name wins over a folder of the same name in the working directory,
    unless `source` is a Path.
    """
    if (isinstance(source, Path) or not registry.is_registered(str(source))) and Path(source).is_dir():
        return sources.open_folder(
            source, holdout_fraction, mask_encoding, palette, class_names, bool(allow_rot90)
        )
    name = str(source)
    if not registry.is_registered(name) and _looks_like_path(source):
        raise FileNotFoundError(
            f"folder {name} not found, and {name!r} is not a registered dataset name. "
            + registry.describe_known_names(name)
        )
    spec = registry.get_spec(name)
    folder_options = {
        "holdout_fraction": holdout_fraction != DEFAULT_HOLDOUT_FRACTION,
        "mask_encoding": mask_encoding != "auto",
        "palette": palette is not None,
        "class_names": class_names is not None,
    }
    options_given = [option for option, is_given in folder_options.items() if is_given]
    if options_given:
        raise ValueError(
            f"{', '.join(options_given)} apply to folder sources only; {spec.name!r} is a TFDS dataset "
            "with splits, mask values and classes fixed by its registry entry"
        )
    return sources.open_tfds(name, spec, data_dir, builder_config, manual_dir, allow_rot90)


def _looks_like_path(source: str | Path) -> bool:
    text = str(source)
    return isinstance(source, Path) or text.startswith((".", "~", "/")) or os.sep in text or "\\" in text


def _prepare(dataset: tf.data.Dataset, image_size: int, cache: bool) -> tf.data.Dataset:
    """Resize to image_size x image_size and cache uint8 images with uint8 class-id masks."""

    def resize(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
        image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
        mask = tf.image.resize(tf.cast(mask, tf.uint8)[..., None], [image_size, image_size], method="nearest")
        return image, mask[..., 0]

    dataset = dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.cache() if cache else dataset


def _to_float(dataset: tf.data.Dataset) -> tf.data.Dataset:
    def convert(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(image, tf.float32) / 255.0, tf.cast(mask, tf.int32)

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def _training_pipeline(
    dataset: tf.data.Dataset, info: DataInfo, seed: int, config: augment_lib.AugmentConfig | None
) -> tf.data.Dataset:
    """Shuffle (anew each iteration, fixed by seed), then augment when a config is given."""
    buffer = min(info.train_size or _FALLBACK_SHUFFLE_BUFFER, _MAX_SHUFFLE_BUFFER)
    dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = _to_float(dataset)
    if config is None:
        return dataset
    dataset = augment_lib.augment_dataset(dataset, seed, config, info.allow_rot90)
    shape = [info.image_size, info.image_size]

    def restore_shape(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.ensure_shape(image, shape + [info.channels])
        return image, tf.ensure_shape(mask, shape)

    return dataset.map(restore_shape)
