"""oxford_iiit_pet through the real tfds.load code path, with examples from tfds.testing.mock_data."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import data

# Example counts of the mocked splits; the sizes vary like the real photos do.
_SPLIT_LENGTHS = {"train": 10, "test": 4}
_SIZES = [(37, 52), (64, 48), (23, 81), (50, 50), (41, 33)]


def _trimap(height: int, width: int, outside_value: int) -> np.ndarray:
    """Return a trimap with background (2) on the left, pet (1) on the right and border (3) between.

    `outside_value` replaces the top-left pixel, to inject an invalid trimap value.
    """
    trimap = np.full((height, width, 1), 2, dtype=np.uint8)
    middle = width // 2
    trimap[:, middle:] = 1
    trimap[:, middle - 2 : middle + 2] = 3
    trimap[0, 0] = outside_value
    return trimap


def _mock_as_dataset(outside_value: int = 2):
    """Return an as_dataset_fn that yields realistic pet examples for any split spec."""

    def as_dataset(self, split, **kwargs):
        del kwargs
        split_infos = {
            name: tfds.core.SplitInfo(name=name, shard_lengths=[count], num_bytes=0)
            for name, count in _SPLIT_LENGTHS.items()
        }
        (instruction,) = tfds.core.ReadInstruction.from_spec(split).to_absolute(split_infos)
        indices = range(_SPLIT_LENGTHS[instruction.splitname])[instruction.from_ : instruction.to]

        def generate():
            for index in indices:
                rng = np.random.default_rng(index)
                height, width = _SIZES[index % len(_SIZES)]
                yield {
                    "image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                    "label": index % 37,
                    "species": index % 2,
                    "file_name": f"pet_{index}.jpg",
                    "segmentation_mask": _trimap(height, width, outside_value),
                    "head_bbox": np.array([0.1, 0.2, 0.6, 0.7], dtype=np.float32),
                }

        dataset = tf.data.Dataset.from_generator(generate, output_signature=self.info.features.get_tensor_spec())
        return dataset.apply(tf.data.experimental.assert_cardinality(len(indices)))

    return as_dataset


def _load_pets(outside_value: int = 2, **kwargs):
    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=_mock_as_dataset(outside_value)
    ):
        return data.load("oxford_iiit_pet", image_size=32, batch_size=4, **kwargs)


def test_pets_masks_map_to_three_classes():
    splits = _load_pets()
    images, masks = next(iter(splits.test))
    assert images.dtype == tf.float32
    assert images.shape == (4, 32, 32, 3)
    assert masks.dtype == tf.int32
    assert masks.shape == (4, 32, 32)
    assert float(tf.reduce_min(images)) >= 0.0
    assert float(tf.reduce_max(images)) <= 1.0
    assert set(np.unique(masks.numpy())) == {0, 1, 2}
    # Trimap 2 (background, left edge) is class 0 and trimap 1 (pet, right edge) class 1.
    assert np.all(masks.numpy()[:, :, 0] == 0)
    assert np.all(masks.numpy()[:, :, -1] == 1)


def test_pets_info_and_split_sizes():
    splits = _load_pets()
    assert splits.info.class_names == ("background", "pet", "border")
    assert splits.info.num_classes == 3
    assert splits.info.channels == 3
    assert splits.info.allow_rot90 is False
    train_count = sum(int(batch[0].shape[0]) for batch in splits.train)
    validation_count = sum(int(batch[0].shape[0]) for batch in splits.validation)
    test_count = sum(int(batch[0].shape[0]) for batch in splits.test)
    assert (train_count, validation_count, test_count) == (9, 1, 4)


def test_pets_augmented_train_batches_keep_classes():
    splits = _load_pets(class_weights="balanced")
    for images, masks, sample_weights in splits.train:
        assert images.shape[1:] == (32, 32, 3)
        assert set(np.unique(masks.numpy())) <= {0, 1, 2}
        assert sample_weights.shape == masks.shape


@pytest.mark.parametrize("outside_value", [0, 4])
def test_pets_invalid_trimap_value_names_it(outside_value):
    splits = _load_pets(outside_value=outside_value)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"found values:\]? \[?{outside_value}\b"):
        next(iter(splits.test))
