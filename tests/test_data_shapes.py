"""zoo_shapes: the procedurally generated TFDS dataset."""

import logging
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import data
from zoo.data import shapes

logger = logging.getLogger(__name__)


def _generate(data_dir):
    start = time.perf_counter()
    splits = tfds.load("zoo_shapes/small", split=["train", "test"], data_dir=str(data_dir))
    logger.info("Generated zoo_shapes/small in %.1f s", time.perf_counter() - start)
    return [list(tfds.as_numpy(split)) for split in splits]


@pytest.fixture(scope="module")
def first_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("first")


@pytest.fixture(scope="module")
def generated(first_data_dir, tmp_path_factory):
    """Two independent builds of zoo_shapes/small, in two data directories."""
    return _generate(first_data_dir), _generate(tmp_path_factory.mktemp("second"))


def test_shapes_features_and_counts(generated):
    train, test = generated[0]
    assert len(train) == 64
    assert len(test) == 16
    example = train[0]
    assert example["image"].shape == (32, 32, 3)
    assert example["image"].dtype == np.uint8
    assert example["segmentation_mask"].shape == (32, 32, 1)
    assert example["segmentation_mask"].dtype == np.uint8
    names = sorted(example["file_name"].decode() for example in train)
    assert names == [f"train_{index:05d}" for index in range(64)]


def test_shapes_builds_are_identical(generated):
    first, second = generated
    for first_split, second_split in zip(first, second):
        for a, b in zip(first_split, second_split):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["segmentation_mask"], b["segmentation_mask"])


def test_shapes_all_classes_present(generated):
    train, _ = generated[0]
    values = np.unique(np.concatenate([example["segmentation_mask"].ravel() for example in train]))
    assert values.tolist() == list(range(len(shapes.CLASS_NAMES)))


def test_shapes_splits_differ(generated):
    train, test = generated[0]
    assert not np.array_equal(train[0]["image"], test[0]["image"])


def test_shapes_default_config_is_128_pixels(tmp_path):
    builder = tfds.builder("zoo_shapes", data_dir=str(tmp_path))
    assert builder.builder_config.name == "default"
    assert builder.info.features["image"].shape == (128, 128, 3)
    assert builder.builder_config.train_examples == 600
    assert builder.builder_config.test_examples == 120


def test_shapes_colour_does_not_reveal_class():
    means = {class_id: [] for class_id in range(len(shapes.CLASS_NAMES))}
    for index in range(64):
        image, mask = shapes.draw_example(np.random.default_rng([7, index]), 32)
        for class_id in means:
            if (mask == class_id).any():
                means[class_id].append(image[mask == class_id].mean(axis=0))
    class_means = np.array([np.mean(values, axis=0) for values in means.values()])
    spread = class_means.max(axis=0) - class_means.min(axis=0)
    assert np.all(spread < 35), f"mean RGB per class differ by {spread}"


def test_shapes_load_gives_batches(generated, first_data_dir):
    splits = data.load("zoo_shapes/small", image_size=24, batch_size=8, data_dir=first_data_dir)
    assert splits.info.class_names == shapes.CLASS_NAMES
    assert splits.info.allow_rot90 is True
    assert (splits.info.train_size, splits.info.validation_size, splits.info.test_size) == (58, 6, 16)
    images, masks = next(iter(splits.train))
    assert images.shape == (8, 24, 24, 3)
    assert images.dtype == tf.float32
    assert masks.shape == (8, 24, 24)
    assert masks.dtype == tf.int32
    assert int(tf.reduce_max(masks)) <= 4
