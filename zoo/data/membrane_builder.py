"""TFDS builder of the ISBI 2012 EM membrane segmentation training stack (manual download).

The 30 serial sections are 512x512 grayscale electron micrographs of the Drosophila
first-instar larva ventral nerve cord (Cardona et al., PLoS Biol 8(10): e1000502, 2010).
Their masks draw membranes (cell boundaries) in black (0) and cell interiors in white
(255). This builder stores membrane as class 1 and cell interior as class 0.
"""

from __future__ import annotations

import re
from pathlib import Path

import tensorflow_datasets as tfds

from zoo.data import folder, folder_builder, registry

CLASS_NAMES = ("cell", "membrane")
# Slices 0..23 form the train split and slices 24..29 the test split.
FIRST_TEST_SLICE = 24


class Isbi2012Membrane(tfds.core.GeneratorBasedBuilder):
    """ISBI 2012 EM membrane segmentation: 24 train and 6 test slices."""

    name = "isbi2012_membrane"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put the 30 slices of the ISBI 2012 training stack into the manual directory as PNG
    files: `images/0.png` ... `images/29.png` (grayscale sections) and
    `masks/0.png` ... `masks/29.png` (0 = membrane, 255 = cell interior). The number in
    each file name is the slice index. Slices 0-23 become the train split and 24-29
    the test split. The challenge data is at http://brainiac2.mit.edu/isbi_challenge/.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=folder_builder.segmentation_features(channels=1),
            supervised_keys=("image", "segmentation_mask"),
            homepage="http://brainiac2.mit.edu/isbi_challenge/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        scan = folder.scan_folder(Path(dl_manager.manual_dir), "binary_inverted", class_names=CLASS_NAMES)
        train = [pair for pair in scan.pairs if slice_index(pair.stem) < FIRST_TEST_SLICE]
        test = [pair for pair in scan.pairs if slice_index(pair.stem) >= FIRST_TEST_SLICE]
        return {"train": self._generate_examples(train, scan), "test": self._generate_examples(test, scan)}

    def _generate_examples(self, pairs: list[folder.ImagePair], scan: folder.FolderScan):
        return folder_builder.generate_examples(pairs, scan, channels=1)


def slice_index(stem: str) -> int:
    """Return the slice index in a file stem such as "12" or "slice_12"."""
    match = re.search(r"(\d+)$", stem)
    if match is None:
        raise ValueError(f"file name {stem!r} has no slice index: expected a number at the end of the name")
    return int(match.group(1))


registry.register(
    registry.TfdsSegmentationSpec(
        name=Isbi2012Membrane.name,
        image_feature="image",
        mask_feature="segmentation_mask",
        label_map={0: 0, 1: 1},
        class_names=CLASS_NAMES,
        allow_rot90=True,
        train_split="train",
        # NOTE: 30 slices leave no room for a separate validation split.
        validation_split="test",
        test_split="test",
    )
)
