"""Segmentation data: TFDS builders, folder reading, augmentation and batched pipelines.

Importing this package registers the TFDS builders zoo_shapes, isbi2012_membrane and
segmentation_folder, and the registry entries that `load` reads them with.
"""

from zoo.data import folder_builder, membrane_builder, shapes_builder
from zoo.data.augment import AugmentConfig, augment_dataset, augment_pair
from zoo.data.folder import ImagePair, find_pairs, natural_sort_key, scan_folder, split_holdout
from zoo.data.folder_builder import SegmentationFolder, SegmentationFolderConfig
from zoo.data.mask_encoding import MASK_ENCODINGS
from zoo.data.membrane_builder import Isbi2012Membrane
from zoo.data.pipeline import load
from zoo.data.registry import TfdsSegmentationSpec, get_spec, register, registered_names
from zoo.data.shapes_builder import ShapesConfig, ZooShapes
from zoo.data.splits import DataInfo, Splits

__all__ = [
    "AugmentConfig",
    "DataInfo",
    "ImagePair",
    "Isbi2012Membrane",
    "MASK_ENCODINGS",
    "SegmentationFolder",
    "SegmentationFolderConfig",
    "ShapesConfig",
    "Splits",
    "TfdsSegmentationSpec",
    "ZooShapes",
    "augment_dataset",
    "augment_pair",
    "find_pairs",
    "get_spec",
    "load",
    "natural_sort_key",
    "register",
    "registered_names",
    "scan_folder",
    "split_holdout",
]
