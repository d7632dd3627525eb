"""Unbatched (image, mask) datasets at native size from a TFDS dataset or a folder.

Every dataset returned here yields an image of dtype uint8 and shape (height, width,
channels) and a mask of class ids of shape (height, width). Resizing, caching,
augmentation and batching happen in `zoo.data.pipeline`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import folder, image_files, mask_encoding
from zoo.data.registry import TfdsSegmentationSpec
from zoo.data.splits import DataInfo

logger = logging.getLogger(__name__)


def open_folder(
    path: str | Path,
    holdout_fraction: float,
    encoding: str,
    palette: Sequence[Sequence[int]] | Mapping[Sequence[int], int] | None,
    class_names: Sequence[str] | None,
    allow_rot90: bool,
) -> tuple[dict[str, tf.data.Dataset], DataInfo]:
    """Check a segmentation folder and return its train and test datasets.

    The test split is the last `holdout_fraction` of the pairs in natural order. The
    validation split is the test split, because small folders have too few pairs for
    a third split. Files are decoded by Pillow inside the tf.data pipeline, not through
    the segmentation_folder TFDS builder, so no copy of the data is written and a change
    of holdout_fraction or mask_encoding needs no regeneration.
    """
    scan = folder.scan_folder(path, encoding, palette, class_names)
    train_pairs, test_pairs = folder.split_holdout(scan.pairs, holdout_fraction)
    test = _pairs_dataset(test_pairs, scan)
    datasets = {"train": _pairs_dataset(train_pairs, scan), "validation": test, "test": test}
    info = DataInfo(
        name=str(scan.folder),
        source_kind="folder",
        class_names=scan.class_names,
        channels=scan.channels,
        allow_rot90=allow_rot90,
        train_size=len(train_pairs),
        validation_size=len(test_pairs),
        test_size=len(test_pairs),
        validation_is_test=True,
        mask_encoding=scan.mask_encoding,
        train_ids=tuple(pair.stem for pair in train_pairs),
        test_ids=tuple(pair.stem for pair in test_pairs),
    )
    return datasets, info


def _pairs_dataset(pairs: Sequence[folder.ImagePair], scan: folder.FolderScan) -> tf.data.Dataset:
    def decode(image_path: bytes, mask_path: bytes) -> tuple[np.ndarray, np.ndarray]:
        image = image_files.read_image(Path(image_path.decode()), scan.channels)
        mask_path = Path(mask_path.decode())
        values = image_files.read_mask(
            mask_path,
            colour=scan.mask_encoding == "palette",
            luminance=scan.mask_encoding in ("binary", "binary_inverted"),
        )
        return image, mask_encoding.encode_mask(values, scan.mask_encoding, scan.palette, mask_path)

    def decode_tensors(image_path: tf.Tensor, mask_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask = tf.numpy_function(decode, [image_path, mask_path], [tf.uint8, tf.uint8], stateful=False)
        image.set_shape([None, None, scan.channels])
        mask.set_shape([None, None])
        return image, mask

    paths = (
        [str(pair.image_path) for pair in pairs],
        [str(pair.mask_path) for pair in pairs],
    )
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    return dataset.map(decode_tensors, num_parallel_calls=tf.data.AUTOTUNE)


def open_tfds(
    name: str,
    spec: TfdsSegmentationSpec,
    data_dir: str | Path | None,
    builder_config: tfds.core.BuilderConfig | None,
    manual_dir: str | Path | None,
    allow_rot90: bool | None,
) -> tuple[dict[str, tf.data.Dataset], DataInfo]:
    """Load a registered TFDS dataset with `tfds.load` and map its masks to class ids.

    Generates the dataset first when it is not yet in `data_dir`. `manual_dir` is the
    folder of manually downloaded files for builders that need one.
    """
    load_kwargs = {}
    if builder_config is not None:
        load_kwargs["builder_kwargs"] = {"config": builder_config}
    if manual_dir is not None:
        download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
        load_kwargs["download_and_prepare_kwargs"] = {"download_config": download_config}
    split_names = [spec.train_split, spec.validation_split, spec.test_split]
    loaded, tfds_info = tfds.load(
        name,
        split=split_names,
        data_dir=None if data_dir is None else str(data_dir),
        with_info=True,
        shuffle_files=False,
        **load_kwargs,
    )
    if spec.spec_for_info is not None:
        spec = spec.spec_for_info(tfds_info)
    to_class_ids = _mask_mapper(spec)
    datasets = {
        key: dataset.map(to_class_ids, num_parallel_calls=tf.data.AUTOTUNE)
        for key, dataset in zip(("train", "validation", "test"), loaded)
    }
    if spec.validation_split == spec.test_split:
        datasets["validation"] = datasets["test"]
    sizes = [_split_size(tfds_info, split) for split in split_names]
    info = DataInfo(
        name=name,
        source_kind="tfds",
        class_names=spec.class_names,
        channels=int(tfds_info.features[spec.image_feature].shape[-1]),
        allow_rot90=spec.allow_rot90 if allow_rot90 is None else allow_rot90,
        train_size=sizes[0],
        validation_size=sizes[1],
        test_size=sizes[2],
        validation_is_test=spec.validation_split == spec.test_split,
    )
    return datasets, info


def _mask_mapper(spec: TfdsSegmentationSpec):
    """Return a tf.data map function from a TFDS example to (image, class-id mask).

    Stored mask values missing from the label map fail a tf.debugging assertion whose
    message names the dataset and lists the offending values.
    """
    table_size = max(256, max(spec.label_map) + 1)
    table = np.full(table_size, -1, dtype=np.int32)
    for stored, class_id in spec.label_map.items():
        table[stored] = class_id
    known_values = ", ".join(str(v) for v in sorted(spec.label_map))

    def to_class_ids(example: dict) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.image.convert_image_dtype(example[spec.image_feature], tf.uint8, saturate=True)
        stored = tf.cast(example[spec.mask_feature], tf.int32)
        if stored.shape.rank == 3:
            stored = stored[..., 0]
        in_table = (stored >= 0) & (stored < table_size)
        class_ids = tf.where(in_table, tf.gather(table, tf.clip_by_value(stored, 0, table_size - 1)), -1)
        unknown = tf.unique(tf.boolean_mask(stored, class_ids < 0)).y
        check = tf.debugging.Assert(
            tf.size(unknown) == 0,
            [f"{spec.name}: mask values outside the label map (known stored values {known_values}); found values:", unknown],
            summarize=10,
        )
        with tf.control_dependencies([check]):
            return image, tf.cast(class_ids, tf.uint8)

    return to_class_ids


def _split_size(tfds_info: tfds.core.DatasetInfo, split: str) -> int | None:
    """Return the example count of a split, or None where the metadata does not record it."""
    try:
        count = tfds_info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        return None
    return int(count) if count else None
