"""Paired augmentation: alignment of image and mask, per-epoch variation and seeding."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from zoo import data

GEOMETRY_ONLY = data.AugmentConfig(brightness_delta=0.0, contrast_range=(1.0, 1.0), noise_stddev=0.0, zoom_range=(1.0, 1.5))


def _block_image(size=32, block=4, seed=0):
    """Return an RGB image of random black and white blocks and its mask (channel 0 is white).

    Channels 1 and 2 hold other block patterns, so that a transform that treated the
    channels differently would break the alignment checks.
    """
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 2, (size // block, size // block, 3)).astype(np.float32)
    image = np.kron(blocks, np.ones((block, block, 1), dtype=np.float32))
    return image, image[..., 0].astype(np.int32)


def _assert_aligned(image, mask):
    """Check that the mask marks exactly the pixels where channel 0 is white.

    Bilinear zoom blends the values at block edges, so only pixels whose value is
    exactly 0 or 1 (no blending) are compared. They must be most of the image.
    """
    channel = image[..., 0]
    decided = (channel == 0.0) | (channel == 1.0)
    assert decided.mean() > 0.6
    np.testing.assert_array_equal(mask[decided], (channel[decided] == 1.0).astype(mask.dtype))
    assert (mask[decided] == 1).any()
    assert (mask[decided] == 0).any()


def _write_block_folder(root, count=6, size=32):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        image, mask = _block_image(size, seed=index)
        Image.fromarray((image * 255).astype(np.uint8)).save(root / "images" / f"{index}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / f"{index}.png")
    return root


def _epoch(dataset):
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([batch[0] for batch in batches]), np.concatenate([batch[1] for batch in batches])


@pytest.mark.parametrize("allow_rot90", [True, False])
def test_augment_pair_keeps_alignment(allow_rot90):
    image, mask = _block_image()
    for step in range(12):
        augmented_image, augmented_mask = data.augment_pair(
            tf.constant(image), tf.constant(mask), tf.constant([3, step]), GEOMETRY_ONLY, allow_rot90
        )
        _assert_aligned(augmented_image.numpy(), augmented_mask.numpy())


def test_augment_pair_same_seed_same_result():
    image, mask = _block_image()
    config = data.AugmentConfig()
    first = data.augment_pair(tf.constant(image), tf.constant(mask), tf.constant([1, 2]), config, True)
    second = data.augment_pair(tf.constant(image), tf.constant(mask), tf.constant([1, 2]), config, True)
    other = data.augment_pair(tf.constant(image), tf.constant(mask), tf.constant([1, 3]), config, True)
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), second[1].numpy())
    assert not np.array_equal(first[0].numpy(), other[0].numpy())


def test_photometric_changes_leave_mask_alone():
    image, mask = _block_image()
    photometric_only = data.AugmentConfig(
        horizontal_flip=False, vertical_flip=False, rot90=False, zoom_range=(1.0, 1.0), noise_stddev=0.05
    )
    augmented_image, augmented_mask = data.augment_pair(
        tf.constant(image), tf.constant(mask), tf.constant([0, 5]), photometric_only, True
    )
    np.testing.assert_array_equal(augmented_mask.numpy(), mask)
    assert not np.allclose(augmented_image.numpy(), image)
    assert augmented_image.numpy().min() >= 0.0
    assert augmented_image.numpy().max() <= 1.0


def test_rot90_only_where_allowed():
    image, mask = _block_image()
    no_zoom = data.AugmentConfig(zoom_range=(1.0, 1.0), brightness_delta=0.0, contrast_range=(1.0, 1.0), noise_stddev=0.0)
    upright = [mask.tobytes(), mask[:, ::-1].copy().tobytes()]
    outputs = {True: set(), False: set()}
    for allow_rot90 in (True, False):
        for step in range(24):
            _, augmented_mask = data.augment_pair(
                tf.constant(image), tf.constant(mask), tf.constant([9, step]), no_zoom, allow_rot90
            )
            outputs[allow_rot90].add(augmented_mask.numpy().tobytes())
    assert outputs[False] <= set(upright)
    assert len(outputs[True] - set(upright)) > 0


def test_load_train_stays_aligned(tmp_path):
    folder = _write_block_folder(tmp_path)
    splits = data.load(folder, image_size=32, batch_size=3, augment=GEOMETRY_ONLY, allow_rot90=True, holdout_fraction=0.34)
    assert splits.info.train_size == 4
    images, masks = _epoch(splits.train)
    for image, mask in zip(images, masks):
        _assert_aligned(image, mask)


def test_epochs_differ_and_seed_repeats_them(tmp_path):
    folder = _write_block_folder(tmp_path)

    def two_epochs(seed):
        splits = data.load(folder, image_size=32, batch_size=4, seed=seed, holdout_fraction=0.34)
        return _epoch(splits.train), _epoch(splits.train)

    first_run = two_epochs(seed=0)
    second_run = two_epochs(seed=0)
    other_seed = two_epochs(seed=1)
    (epoch_one, _), (epoch_two, _) = first_run
    assert not np.allclose(epoch_one, epoch_two)
    for epoch, repeated in zip(first_run, second_run):
        np.testing.assert_array_equal(epoch[0], repeated[0])
        np.testing.assert_array_equal(epoch[1], repeated[1])
    assert not np.allclose(first_run[0][0], other_seed[0][0])


def test_evaluation_splits_are_not_augmented(tmp_path):
    folder = _write_block_folder(tmp_path)
    splits = data.load(folder, image_size=32, batch_size=4, holdout_fraction=0.34)
    first_images, first_masks = _epoch(splits.test)
    second_images, _ = _epoch(splits.test)
    np.testing.assert_array_equal(first_images, second_images)
    expected_image, expected_mask = _block_image(seed=4)
    np.testing.assert_allclose(first_images[0], expected_image, atol=1e-6)
    np.testing.assert_array_equal(first_masks[0], expected_mask)


def test_augment_config_rejects_shrinking_zoom():
    with pytest.raises(ValueError, match="zoom_range"):
        data.AugmentConfig(zoom_range=(0.5, 1.0))
