"""Segmentation folders: pairing, checks, mask encodings, holdout, and the folder TFDS builders."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import shared_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from zoo import data
from zoo.data import folder


def _write_pair(root, stem, image, mask, image_suffix=".png", mask_suffix=".png"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{stem}{image_suffix}")
    Image.fromarray(mask).save(root / "masks" / f"{stem}{mask_suffix}")


def _binary_folder(root, stems, size=16, seed=0):
    """Write random RGB images with 0/255 masks of random 4x4 blocks."""
    rng = np.random.default_rng(seed)
    for stem in stems:
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        blocks = rng.integers(0, 2, (size // 4, size // 4), dtype=np.uint8) * 255
        _write_pair(root, stem, image, np.kron(blocks, np.ones((4, 4), dtype=np.uint8)))
    return root


def _all_masks(dataset):
    return np.concatenate([batch[1].numpy().ravel() for batch in dataset])


def test_find_pairs_natural_order(tmp_path):
    _binary_folder(tmp_path, ["10", "2", "1", "20", "3"])
    pairs = data.find_pairs(tmp_path)
    assert [pair.stem for pair in pairs] == ["1", "2", "3", "10", "20"]
    assert pairs[0].image_path == tmp_path / "images" / "1.png"
    assert pairs[0].mask_path == tmp_path / "masks" / "1.png"


def test_find_pairs_matches_across_formats(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    mask = np.zeros((8, 8), dtype=np.uint8)
    _write_pair(tmp_path, "a", image, mask, image_suffix=".jpg", mask_suffix=".png")
    _write_pair(tmp_path, "b", image, mask, image_suffix=".tif", mask_suffix=".gif")
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    assert [pair.stem for pair in data.find_pairs(tmp_path)] == ["a", "b"]


def test_unmatched_names_are_listed(tmp_path):
    _binary_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "masks" / "c.png").rename(tmp_path / "masks" / "d.png")
    with pytest.raises(ValueError, match="images without masks: c") as raised:
        data.load(tmp_path)
    assert "masks without images: d" in str(raised.value)


def test_missing_masks_folder(tmp_path):
    _binary_folder(tmp_path, ["a"])
    (tmp_path / "masks" / "a.png").unlink()
    (tmp_path / "masks").rmdir()
    with pytest.raises(FileNotFoundError, match="masks"):
        data.load(tmp_path)


def test_corrupt_image_names_file(tmp_path):
    _binary_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not image data")
    with pytest.raises(ValueError, match=r"images/b\.png"):
        data.load(tmp_path)


def test_size_mismatch_names_both_files(tmp_path):
    _binary_folder(tmp_path, ["a", "b"])
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "masks" / "b.png")
    with pytest.raises(ValueError, match=r"size mismatch: image .*images/b\.png is 16x16, mask .*masks/b\.png is 12x10"):
        data.load(tmp_path)


def test_binary_mask_resized_with_nearest(tmp_path):
    _binary_folder(tmp_path, ["a", "b"], size=512)
    splits = data.load(tmp_path, image_size=200, batch_size=2, holdout_fraction=0.5, augment=False)
    assert splits.info.mask_encoding == "binary"
    assert splits.info.class_names == ("background", "foreground")
    for dataset in (splits.train, splits.test):
        assert set(np.unique(_all_masks(dataset))) == {0, 1}


def test_binary_inverted_swaps_classes(tmp_path):
    _binary_folder(tmp_path, ["a", "b"])
    plain = data.load(tmp_path, image_size=16, holdout_fraction=0.5, augment=False, mask_encoding="binary")
    inverted = data.load(tmp_path, image_size=16, holdout_fraction=0.5, augment=False, mask_encoding="binary_inverted")
    np.testing.assert_array_equal(_all_masks(inverted.test), 1 - _all_masks(plain.test))


def test_auto_encoding_detects_index_masks(tmp_path):
    rng = np.random.default_rng(0)
    for stem in ["a", "b"]:
        image = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        _write_pair(tmp_path, stem, image, rng.integers(0, 3, (8, 8), dtype=np.uint8))
    splits = data.load(tmp_path, image_size=8, holdout_fraction=0.5, augment=False)
    assert splits.info.mask_encoding == "index"
    assert splits.info.class_names == ("class_0", "class_1", "class_2")
    assert splits.info.channels == 1


def test_auto_encoding_rejects_gray_levels(tmp_path):
    ramp = np.tile(np.arange(0, 200, 25, dtype=np.uint8), (8, 1))
    _write_pair(tmp_path, "a", np.zeros((8, 8), dtype=np.uint8), ramp)
    _write_pair(tmp_path, "b", np.zeros((8, 8), dtype=np.uint8), ramp)
    with pytest.raises(ValueError, match="cannot infer the mask encoding.*0, 25, 50"):
        data.load(tmp_path)


def test_index_value_outside_class_names(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros((8, 8), dtype=np.uint8)
    _write_pair(tmp_path, "a", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), mask)
    mask[2, 3] = 2
    _write_pair(tmp_path, "b", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), mask)
    with pytest.raises(ValueError, match=r"mask value 2 in .*masks/b\.png is not a class id"):
        data.load(tmp_path, mask_encoding="index", class_names=("sky", "tree"))


def test_palette_masks_map_colours(tmp_path):
    palette = [(0, 0, 0), (255, 0, 0), (0, 128, 255)]
    colour_mask = np.zeros((8, 8, 3), dtype=np.uint8)
    colour_mask[:, 4:] = palette[1]
    colour_mask[6:, :] = palette[2]
    for stem in ["a", "b"]:
        _write_pair(tmp_path, stem, np.full((8, 8, 3), 90, dtype=np.uint8), colour_mask)
    splits = data.load(tmp_path, image_size=8, holdout_fraction=0.5, augment=False, mask_encoding="palette", palette=palette)
    expected = np.zeros((8, 8), dtype=np.int32)
    expected[:, 4:] = 1
    expected[6:, :] = 2
    _, masks = next(iter(splits.test))
    np.testing.assert_array_equal(masks[0].numpy(), expected)


def test_palette_unknown_colour_names_file(tmp_path):
    colour_mask = np.zeros((8, 8, 3), dtype=np.uint8)
    _write_pair(tmp_path, "a", colour_mask, colour_mask)
    colour_mask[0, 0] = (10, 20, 30)
    _write_pair(tmp_path, "b", colour_mask, colour_mask)
    with pytest.raises(ValueError, match=r"\(10, 20, 30\) in .*masks/b\.png"):
        data.load(tmp_path, mask_encoding="palette", palette=[(0, 0, 0), (255, 255, 255)])


def test_colour_mask_without_palette_is_rejected(tmp_path):
    colour_mask = np.zeros((8, 8, 3), dtype=np.uint8)
    colour_mask[0, 0] = (255, 0, 0)
    _write_pair(tmp_path, "a", colour_mask, colour_mask)
    _write_pair(tmp_path, "b", colour_mask, colour_mask)
    with pytest.raises(ValueError, match=r"masks/a\.png has colour pixels"):
        data.load(tmp_path, mask_encoding="index")


def test_holdout_rounding():
    pairs = [folder.ImagePair(str(i), None, None) for i in range(30)]
    train, test = data.split_holdout(pairs, 0.2)
    assert [pair.stem for pair in test] == [str(i) for i in range(24, 30)]
    assert len(train) == 24
    with pytest.raises(ValueError, match="holdout_fraction"):
        data.split_holdout(pairs, 1.0)
    with pytest.raises(ValueError, match="keep a training pair"):
        data.split_holdout(pairs[:1], 0.5)


@settings(max_examples=60, deadline=None)
@given(count=st.integers(2, 60), fraction=st.floats(0.01, 0.5))
def test_holdout_keeps_order_and_count(count, fraction):
    pairs = [folder.ImagePair(str(i), None, None) for i in range(count)]
    train, test = data.split_holdout(pairs, fraction)
    assert train + test == pairs
    assert len(test) == max(1, math.floor(count * fraction + 0.5))
    assert len(train) >= 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**6), unique=True, min_size=1, max_size=30))
def test_natural_sort_orders_numbers(numbers):
    names = [f"slice{number}" for number in numbers]
    assert sorted(names, key=data.natural_sort_key) == [f"slice{number}" for number in sorted(numbers)]


def test_unknown_dataset_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'zoo_shapes'") as raised:
        data.load("zoo_shape")
    for name in ("oxford_iiit_pet", "isbi2012_membrane", "segmentation_folder", "zoo_shapes"):
        assert name in str(raised.value)


def test_missing_folder_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        data.load(tmp_path / "absent")


def test_folder_options_rejected_for_tfds_sources():
    with pytest.raises(ValueError, match="mask_encoding apply to folder sources only"):
        data.load("zoo_shapes", mask_encoding="binary")
    with pytest.raises(ValueError, match="holdout_fraction, class_names apply to folder sources only"):
        data.load("zoo_shapes", holdout_fraction=0.3, class_names=("a", "b"))


def test_membrane_holdout_is_last_six_slices():
    membrane = shared_dataset("membrane")
    splits = data.load(
        membrane, image_size=64, batch_size=6, holdout_fraction=0.2, augment=False,
        mask_encoding="binary_inverted", class_names=("cell", "membrane"),
    )
    assert splits.info.train_ids == tuple(str(i) for i in range(24))
    assert splits.info.test_ids == tuple(str(i) for i in range(24, 30))
    images, masks = next(iter(splits.test))
    assert images.shape == (6, 64, 64, 1)
    expected = np.asarray(Image.open(membrane / "images" / "24.png"), dtype=np.float32)[..., None]
    expected = tf.image.resize(expected, [64, 64], antialias=True).numpy() / 255.0
    np.testing.assert_allclose(images[0].numpy(), expected, atol=1 / 255 + 1e-6)
    membrane_fraction = float(np.mean(masks.numpy() == 1))
    assert 0.1 < membrane_fraction < 0.35


def test_kvasir_jpeg_masks_are_binary():
    kvasir = shared_dataset("kvasir_seg")
    splits = data.load(kvasir, image_size=64, batch_size=8, augment=False, cache=False)
    assert splits.info.mask_encoding == "binary"
    assert splits.info.channels == 3
    assert (splits.info.train_size, splits.info.test_size) == (320, 80)
    masks = np.concatenate([batch[1].numpy().ravel() for batch in splits.test.take(2)])
    assert set(np.unique(masks)) == {0, 1}


def test_segmentation_folder_builder(tmp_path):
    source = _binary_folder(tmp_path / "source", ["1", "2", "3", "4", "10"])
    config = data.SegmentationFolderConfig(name="blocks", folder=str(source), mask_encoding="binary", holdout_fraction=0.4)
    train, test = tfds.load(
        "segmentation_folder", split=["train", "test"], data_dir=str(tmp_path / "tfds"), builder_kwargs={"config": config}
    )
    assert sorted(example["file_name"].decode() for example in tfds.as_numpy(test)) == ["10.png", "4.png"]
    masks = np.concatenate([example["segmentation_mask"].ravel() for example in tfds.as_numpy(train)])
    assert set(np.unique(masks)) == {0, 1}

    splits = data.load("segmentation_folder", image_size=8, batch_size=4, data_dir=tmp_path / "tfds", builder_config=config)
    assert splits.info.class_names == ("background", "foreground")
    assert (splits.info.train_size, splits.info.test_size) == (3, 2)
    assert splits.info.validation_is_test


def test_membrane_builder_reads_manual_dir(tmp_path):
    membrane = shared_dataset("membrane")
    builder = tfds.builder("isbi2012_membrane", data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(membrane)))
    train, test = builder.as_dataset(split=["train", "test"])
    train_names = sorted(int(example["file_name"].decode().split(".")[0]) for example in tfds.as_numpy(train))
    test_examples = list(tfds.as_numpy(test))
    assert train_names == list(range(24))
    assert sorted(int(example["file_name"].decode().split(".")[0]) for example in test_examples) == list(range(24, 30))
    example = test_examples[0]
    assert example["image"].shape == (512, 512, 1)
    # Membrane (black in the source masks) is class 1 and covers about 22 % of the pixels.
    assert 0.15 < float(np.mean(example["segmentation_mask"] == 1)) < 0.3
