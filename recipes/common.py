"""Command-line pieces shared by the recipes: arguments, config overrides, data and reports."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from pathlib import Path

DEFAULT_DATASET = "zoo_shapes"
DEFAULT_MODEL = "unet-spatialdrop"
# Sized so the README main job (zoo_shapes at 64x64) stays within 5 minutes on 2 cores. There,
# three epochs at 64x64 took 280 s in all (about 80 s each), so two leave time for setup.
DEFAULT_EPOCHS = 2
DEFAULT_IMAGE_SIZE = 64
MASK_ENCODINGS = ("auto", "index", "binary", "binary_inverted")
# The same names as zoo.training.PRECISIONS, repeated so --help needs no TensorFlow import.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def setup_logging() -> None:
    """Show the library's INFO logs and keep TensorFlow's C++ start-up lines quiet."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="variant name; `python -c 'import zoo; print(zoo.names())'` lists "
                             "them (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one config field, for example --set depth=3 or "
                             "--set dropout_stages='[\"decoder\"]'; repeat for more")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="a registered TFDS name (zoo_shapes, oxford_iiit_pet, "
                             "isbi2012_membrane) or a folder with images/ and masks/ "
                             "(default: %(default)s, generated offline)")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help="side in pixels that images and masks are resized to "
                             "(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="images per training step (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of weights, shuffling and augmentation (default: %(default)s)")
    parser.add_argument("--mask-encoding", default="auto", choices=MASK_ENCODINGS,
                        help="how folder masks map to class ids: index (pixel value = class), "
                             "binary (>= 128 is class 1), binary_inverted (< 128 is class 1), "
                             "auto (binary for 0/255 masks, else index); folders only "
                             "(default: %(default)s)")
    parser.add_argument("--holdout-fraction", type=float, default=None,
                        help="share of a folder's pairs, last in natural name order, held out "
                             "for evaluation (default: 0.2; folders only)")
    parser.add_argument("--data-dir", default=None,
                        help="TFDS data folder (default: TFDS's own, ~/tensorflow_datasets)")
    parser.add_argument("--no-augment", action="store_true",
                        help="train without flips, rotations, scale and photometric changes")


def check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """Stop with a usage error if any of the named integer arguments is below 1."""
    for name in names:
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; received {value}")


def parse_overrides(pairs: list[str]) -> dict:
    """Turn `FIELD=VALUE` strings into config overrides; VALUE is read as JSON, else as text.

    Values are never evaluated as code: `depth=3` gives 3, `residual=true` gives True,
    `upsampling=bilinear` gives the string "bilinear".
    """
    overrides = {}
    for pair in pairs:
        field, separator, text = pair.partition("=")
        if not separator or not field:
            raise ValueError(f"Invalid --set {pair!r}. Expected FIELD=VALUE, for example depth=3.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        overrides[field.strip()] = value
    return overrides


def dataset_label(dataset: str) -> str:
    """Return a short name for a dataset argument, used in run folder names."""
    path = Path(dataset)
    return path.resolve().name if path.is_dir() else dataset.replace("/", "_")


def load_data(args: argparse.Namespace):
    """Load the dataset that the recipe arguments describe, through `zoo.data.load`.

    Folder-only options are passed only when given, because TFDS sources reject them.
    """
    from zoo import data

    folder_options = {}
    if args.holdout_fraction is not None:
        folder_options["holdout_fraction"] = args.holdout_fraction
    if args.mask_encoding != "auto":
        folder_options["mask_encoding"] = args.mask_encoding
    return data.load(
        args.dataset,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seed=args.seed,
        augment=not args.no_augment,
        data_dir=args.data_dir,
        **folder_options,
    )


def print_report(report: dict) -> None:
    """Print the held-out IoU figures of `report` as a small table."""
    print(f"\nHeld-out results ({report.get('dataset')}, {report.get('model')}):")
    print(f"  mean IoU        {report['mean_iou']:.4f}")
    print(f"  pixel accuracy  {report['pixel_accuracy']:.4f}")
    for name, value in report["per_class_iou"].items():
        shown = "absent" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
        print(f"  IoU {name:<12}{shown}")
