"""Export a saved `.keras` model as a SavedModel for TensorFlow Serving.

    python -m recipes.export runs/unet/model.keras --export-dir saved_models

The SavedModel goes to `<export-dir>/<name>/<version>/`. After writing it, the recipe reloads
it and compares its probabilities with the Keras model's on a random uint8 batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np

import zoo  # noqa: F401  (registers the zoo's custom layers, needed by safe_mode loading)
from zoo.export import export_for_serving, verify_export

# Height and width of the random check images for models that accept any size. Odd sizes
# exercise the padding and cropping inside zoo models.
CHECK_HEIGHT, CHECK_WIDTH = 67, 93


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.export",
        description="Export a .keras model as a TensorFlow Serving SavedModel, then check that "
                    "the SavedModel reproduces the model's probabilities.",
    )
    parser.add_argument("model", type=Path, help="path of the .keras model file to export")
    parser.add_argument("--export-dir", "--base-dir", dest="base_dir", type=Path, default=Path("saved_models"),
                        help="directory that contains one folder per model name "
                             "(default: saved_models)")
    parser.add_argument("--name", default=None,
                        help="model folder name under --export-dir (default: the model's name)")
    parser.add_argument("--version", type=int, default=None,
                        help="version folder number, an int >= 1; an existing version is an "
                             "error (default: one more than the largest existing version)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="max allowed absolute difference of probabilities, in probability "
                             "units from 0 to 1, between the SavedModel and the Keras model "
                             "(default: 1e-4)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random check images (default: 0)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"model file not found: {args.model}")
    return args


def random_images(model: keras.Model, seed: int) -> np.ndarray:
    """Return two random uint8 images of the model's input size, or 67x93 if it has none."""
    _, height, width, channels = model.input_shape
    shape = (2, height or CHECK_HEIGHT, width or CHECK_WIDTH, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"Loading {args.model}")
    # compile=False: serving needs only the weights and the graph, not the optimizer or loss.
    try:
        model = keras.saving.load_model(args.model, compile=False, safe_mode=True)
    except ValueError as error:
        print(f"error: could not load {args.model}: {error}", file=sys.stderr)
        return 1

    print(f"Exporting {model.name!r} ({model.count_params():,} parameters)")
    try:
        path = export_for_serving(model, base_dir=args.base_dir, name=args.name,
                                  version=args.version)
    except (FileExistsError, ValueError) as error:
        print(f"error: export failed: {error}", file=sys.stderr)
        return 1

    difference = verify_export(model, path, random_images(model, args.seed))
    print(f"Parity check: max abs difference of probabilities {difference:.3g}")
    if not difference <= args.tolerance:
        print(f"error: parity check failed: {difference:.3g} > tolerance {args.tolerance:g}. "
              f"Do not serve {path}; delete it and check the model's custom layers.",
              file=sys.stderr)
        return 1
    print(f"SavedModel written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
