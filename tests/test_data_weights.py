"""Per-pixel class weights delivered as sample weights."""

import numpy as np
import pytest
from PIL import Image

from zoo import data


def _quarter_folder(root, count=3, size=8):
    """Write pairs whose masks mark the left quarter of the columns as class 1 (0/255)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[:, : size // 4] = 255
    for index in range(count):
        Image.fromarray(np.full((size, size, 3), 40 * index, dtype=np.uint8)).save(root / "images" / f"{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"{index}.png")
    return root


def _check_weights_follow_masks(dataset, expected_weights):
    for _, masks, sample_weights in dataset.as_numpy_iterator():
        assert sample_weights.dtype == np.float32
        assert sample_weights.shape == masks.shape
        np.testing.assert_allclose(sample_weights, np.asarray(expected_weights, np.float32)[masks], rtol=1e-6)


def test_balanced_weights_are_inverse_frequency(tmp_path):
    folder = _quarter_folder(tmp_path)
    splits = data.load(folder, image_size=8, batch_size=2, class_weights="balanced", holdout_fraction=0.34)
    # Class 1 covers 1/4 of the training pixels: weights 1 / (2 * 3/4) and 1 / (2 * 1/4).
    expected = (2.0 / 3.0, 2.0)
    np.testing.assert_allclose(splits.info.class_weights, expected, rtol=1e-6)
    for dataset in (splits.train, splits.validation, splits.test):
        _check_weights_follow_masks(dataset, expected)


def test_explicit_weights_mapping_and_list(tmp_path):
    folder = _quarter_folder(tmp_path)
    from_mapping = data.load(folder, image_size=8, augment=False, class_weights={1: 5.0}, holdout_fraction=0.34)
    assert from_mapping.info.class_weights == (1.0, 5.0)
    _check_weights_follow_masks(from_mapping.test, (1.0, 5.0))
    from_list = data.load(folder, image_size=8, augment=False, class_weights=[0.5, 3.0], holdout_fraction=0.34)
    _check_weights_follow_masks(from_list.train, (0.5, 3.0))


def test_absent_class_gets_zero_weight(tmp_path):
    folder = _quarter_folder(tmp_path)
    splits = data.load(
        folder, image_size=8, augment=False, class_weights="balanced", holdout_fraction=0.34,
        mask_encoding="binary", class_names=("background", "lesion"),
    )
    assert splits.info.class_weights[1] > 0
    index_root = tmp_path / "index"
    (index_root / "images").mkdir(parents=True)
    (index_root / "masks").mkdir()
    for index in range(3):
        Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(index_root / "images" / f"{index}.png")
        Image.fromarray(np.eye(4, dtype=np.uint8)).save(index_root / "masks" / f"{index}.png")
    splits = data.load(
        index_root, image_size=4, augment=False, class_weights="balanced", holdout_fraction=0.34,
        mask_encoding="index", class_names=("a", "b", "c"),
    )
    assert splits.info.class_weights[2] == 0.0


@pytest.mark.parametrize(
    ("class_weights", "message"),
    [({3: 1.0}, "class ids \\[3\\]"), ([1.0], "expected one per class"), ([1.0, -1.0], "not negative"), ("inverse", "'balanced'")],
)
def test_invalid_class_weights(tmp_path, class_weights, message):
    folder = _quarter_folder(tmp_path)
    with pytest.raises(ValueError, match=message):
        data.load(folder, image_size=8, class_weights=class_weights, holdout_fraction=0.34)


def test_without_weights_elements_are_pairs(tmp_path):
    folder = _quarter_folder(tmp_path)
    splits = data.load(folder, image_size=8, holdout_fraction=0.34)
    assert len(splits.train.element_spec) == 2
    assert splits.info.class_weights is None
