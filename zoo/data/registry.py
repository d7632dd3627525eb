"""Registry of TFDS datasets that `zoo.data.load` can read as semantic segmentation data.

Each entry names the features that contain the image and the mask and the splits to
use. It also gives the mapping from stored mask values to class ids, the class names,
and whether 90-degree rotations are realistic for the images. Adding a TFDS
segmentation dataset takes one `register` call.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping

import tensorflow_datasets as tfds


@dataclasses.dataclass(frozen=True)
class TfdsSegmentationSpec:
    """How to read one TFDS dataset as (image, class-id mask) pairs.

    `label_map` maps every stored mask value to a class id in 0..len(class_names)-1.
    A stored value missing from it is an error when the pipeline reads it.
    `allow_rot90` is True when 90-degree rotations and vertical flips keep the images
    realistic (microscopy, synthetic shapes) and False for upright natural photos.
    `spec_for_info`, when set, returns the entry to use for a loaded dataset whose
    classes are only known from its generated metadata (the segmentation_folder
    builder). Such an entry leaves `label_map` and `class_names` empty.
    """

    name: str
    image_feature: str
    mask_feature: str
    label_map: Mapping[int, int]
    class_names: tuple[str, ...]
    allow_rot90: bool
    train_split: str = "train[:90%]"
    validation_split: str = "train[90%:]"
    test_split: str = "test"
    spec_for_info: Callable[[tfds.core.DatasetInfo], TfdsSegmentationSpec] | None = None

    def __post_init__(self) -> None:
        class_ids = set(self.label_map.values())
        expected = set(range(len(self.class_names)))
        if class_ids != expected:
            raise ValueError(
                f"label_map of {self.name!r} maps to class ids {sorted(class_ids)}, "
                f"expected exactly {sorted(expected)} for class names {self.class_names}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


_REGISTRY: dict[str, TfdsSegmentationSpec] = {}


def register(spec: TfdsSegmentationSpec) -> None:
    """Add a dataset to the registry, replacing an entry of the same name."""
    _REGISTRY[spec.name] = spec


def registered_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def base_name(name: str) -> str:
    """Return the dataset part of a TFDS name: "zoo_shapes/small:1.0.0" -> "zoo_shapes"."""
    return name.split("/", 1)[0].split(":", 1)[0]


def is_registered(name: str) -> bool:
    return base_name(name) in _REGISTRY


def get_spec(name: str) -> TfdsSegmentationSpec:
    """Return the registry entry of a dataset name such as "zoo_shapes" or "zoo_shapes/small".

    Raises ValueError for an unknown name, listing the known names and the closest one.
    """
    if is_registered(name):
        return _REGISTRY[base_name(name)]
    raise ValueError(f"unknown dataset {name!r}. {describe_known_names(name)}")


def describe_known_names(name: str) -> str:
    """Return a sentence with the closest registered name to `name` and the known names."""
    known = registered_names()
    close = difflib.get_close_matches(base_name(name), known, n=1)
    suggestion = f"Did you mean {close[0]!r}? " if close else ""
    return (
        f"{suggestion}Known datasets: {', '.join(known)}. Pass an existing folder path with "
        "images/ and masks/ subfolders, or register a TFDS dataset with zoo.data.register()."
    )


# Oxford-IIIT Pet trimaps store 1 = pet, 2 = background, 3 = border (not classified).
# Background becomes class 0, as in zoo_shapes and in the binary folder encodings.
OXFORD_IIIT_PET = TfdsSegmentationSpec(
    name="oxford_iiit_pet",
    image_feature="image",
    mask_feature="segmentation_mask",
    label_map={2: 0, 1: 1, 3: 2},
    class_names=("background", "pet", "border"),
    allow_rot90=False,
)

register(OXFORD_IIIT_PET)
