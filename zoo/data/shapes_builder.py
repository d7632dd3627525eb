"""TFDS builder of zoo_shapes, the project's offline synthetic segmentation dataset.

Importing this module registers the builder, so `tfds.load("zoo_shapes")` generates the
data on first use without any download.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import tensorflow_datasets as tfds

from zoo.data import registry, shapes

logger = logging.getLogger(__name__)

# Base of the per-example seed. Changing it changes every image, so bump VERSION with it.
_SEED = 20240601
_SPLIT_SEEDS = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
    """Image size and example counts of one zoo_shapes configuration."""

    image_size: int = 128
    train_examples: int = 600
    test_examples: int = 120


class ZooShapes(tfds.core.GeneratorBasedBuilder):
    """Synthetic multi-class shapes on textured, noisy backgrounds.

    Classes (mask values): 0 background, 1 disk, 2 square, 3 triangle, 4 ring. Example
    `i` of a split is drawn from a numpy generator seeded with (seed, split, i), so
    every build yields identical data.
    """

    name = "zoo_shapes"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        ShapesConfig(
            name="default",
            description="128x128 images, 600 train and 120 test examples.",
        ),
        ShapesConfig(
            name="small",
            description="32x32 images, 64 train and 16 test examples, for quick tests.",
            image_size=32,
            train_examples=64,
            test_examples=16,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    "segmentation_mask": tfds.features.Image(shape=(size, size, 1)),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "segmentation_mask"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing to download: the data is drawn here.
        return {
            "train": self._generate_examples("train", self.builder_config.train_examples),
            "test": self._generate_examples("test", self.builder_config.test_examples),
        }

    def _generate_examples(self, split: str, count: int):
        size = self.builder_config.image_size
        start = time.perf_counter()
        for index in range(count):
            rng = np.random.default_rng([_SEED, _SPLIT_SEEDS[split], index])
            image, mask = shapes.draw_example(rng, size)
            key = f"{split}_{index:05d}"
            yield key, {"image": image, "segmentation_mask": mask[..., None], "file_name": key}
        logger.info(
            "Drew %d zoo_shapes %s examples of %dx%d in %.1f s",
            count, split, size, size, time.perf_counter() - start,
        )


registry.register(
    registry.TfdsSegmentationSpec(
        name=ZooShapes.name,
        image_feature="image",
        mask_feature="segmentation_mask",
        label_map={class_id: class_id for class_id in range(len(shapes.CLASS_NAMES))},
        class_names=shapes.CLASS_NAMES,
        allow_rot90=True,
    )
)
