"""Generic TFDS builder for a segmentation folder (images/ and masks/ with matching stems).

Configure it with a SegmentationFolderConfig:

    config = SegmentationFolderConfig(name="polyps", folder="/data/polyps", mask_encoding="binary")
    train, test = tfds.load("segmentation_folder", split=["train", "test"],
                            builder_kwargs={"config": config}, data_dir=...)

The generated dataset stores class-id masks, and its metadata stores the class names,
so readers need neither the mask encoding nor the original files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import tensorflow_datasets as tfds

from zoo.data import folder, image_files, mask_encoding, registry


@dataclasses.dataclass(eq=False)
class SegmentationFolderConfig(tfds.core.BuilderConfig):
    """Location and encoding of one segmentation folder.

    `folder` is the path of the folder, or empty to read the TFDS manual directory.
    `mask_encoding`, `palette` and `class_names` are as in zoo.data.folder.scan_folder.
    `holdout_fraction` is the last fraction of pairs (natural order) that form the test
    split. Images are stored with `channels` channels (1 or 3). `allow_rot90` is
    stored in the metadata for zoo.data.load, as in TfdsSegmentationSpec.
    NOTE: TFDS keeps generated data under data_dir by config name and version, so a
    config with a new folder or encoding needs a new name to be generated again.
    """

    folder: str = ""
    mask_encoding: str = "auto"
    palette: tuple[tuple[int, int, int], ...] | None = None
    class_names: tuple[str, ...] | None = None
    holdout_fraction: float = 0.2
    channels: int = 3
    allow_rot90: bool = False


def generate_examples(
    pairs: Sequence[folder.ImagePair], scan: folder.FolderScan, channels: int
) -> Iterator[tuple[str, dict]]:
    """Yield (stem, example) with a uint8 image and a (height, width, 1) class-id mask."""
    for pair in pairs:
        image = image_files.read_image(pair.image_path, channels)
        values = image_files.read_mask(
            pair.mask_path,
            colour=scan.mask_encoding == "palette",
            luminance=scan.mask_encoding in ("binary", "binary_inverted"),
        )
        mask = mask_encoding.encode_mask(values, scan.mask_encoding, scan.palette, pair.mask_path)
        yield pair.stem, {"image": image, "segmentation_mask": mask[..., None], "file_name": pair.image_path.name}


def segmentation_features(channels: int) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(None, None, channels)),
            "segmentation_mask": tfds.features.Image(shape=(None, None, 1)),
            "file_name": tfds.features.Text(),
        }
    )


class SegmentationFolder(tfds.core.GeneratorBasedBuilder):
    """Semantic segmentation pairs read from a folder with images/ and masks/."""

    name = "segmentation_folder"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIG_CLASS = SegmentationFolderConfig
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Pass SegmentationFolderConfig(folder=...), or leave `folder` empty and put the data
    in the manual directory: images in `images/` and masks in `masks/`, where a mask has
    the same file name stem as its image (PNG, JPEG, TIFF, GIF or BMP).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        if config is None:
            raise ValueError("segmentation_folder needs a SegmentationFolderConfig: pass builder_kwargs={'config': ...}")
        return self.dataset_info_from_configs(
            description=self.__doc__,
            features=segmentation_features(config.channels),
            supervised_keys=("image", "segmentation_mask"),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config
        source = Path(config.folder) if config.folder else Path(dl_manager.manual_dir)
        scan = folder.scan_folder(source, config.mask_encoding, config.palette, config.class_names)
        train, test = folder.split_holdout(scan.pairs, config.holdout_fraction)
        self.info.metadata["class_names"] = list(scan.class_names)
        self.info.metadata["mask_encoding"] = scan.mask_encoding
        self.info.metadata["allow_rot90"] = config.allow_rot90
        return {"train": self._generate_examples(train, scan), "test": self._generate_examples(test, scan)}

    def _generate_examples(self, pairs: Sequence[folder.ImagePair], scan: folder.FolderScan):
        return generate_examples(pairs, scan, self.builder_config.channels)


def spec_from_info(info: tfds.core.DatasetInfo) -> registry.TfdsSegmentationSpec:
    """Return the registry entry of a generated segmentation_folder dataset from its metadata."""
    class_names = tuple(info.metadata["class_names"])
    return registry.TfdsSegmentationSpec(
        name=SegmentationFolder.name,
        image_feature="image",
        mask_feature="segmentation_mask",
        label_map={class_id: class_id for class_id in range(len(class_names))},
        class_names=class_names,
        allow_rot90=bool(info.metadata["allow_rot90"]),
        train_split="train",
        validation_split="test",
        test_split="test",
    )


registry.register(
    registry.TfdsSegmentationSpec(
        name=SegmentationFolder.name,
        image_feature="image",
        mask_feature="segmentation_mask",
        label_map={},  # Classes come from the generated metadata, through spec_for_info.
        class_names=(),
        allow_rot90=False,
        train_split="train",
        validation_split="test",
        test_split="test",
        spec_for_info=spec_from_info,
    )
)
