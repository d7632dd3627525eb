"""Train a zoo variant, evaluate it on the held-out split, and export it for serving.

Example:
    python -m recipes.train --model unet-spatialdrop --dataset ../shared/data/membrane \
        --mask-encoding binary_inverted --image-size 256 --batch-size 4 --epochs 20

Rerunning with the same --run-dir resumes an interrupted run from its last finished epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from recipes import common


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.train",
        description="Train a U-Net variant, report held-out IoU and export a SavedModel.",
    )
    common.add_model_arguments(parser)
    common.add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=common.DEFAULT_EPOCHS,
                        help="number of passes over the training split (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--loss", default="crossentropy",
                        help="crossentropy, dice, focal or ce_dice (default: %(default)s)")
    parser.add_argument("--precision", default="float32", choices=common.PRECISIONS,
                        help="float32, mixed_bfloat16 or mixed_float16 (default: %(default)s)")
    parser.add_argument("--run-dir", default=None,
                        help="folder for checkpoints, history and metrics; rerun with the same "
                             "folder to resume (default: runs/<model>-<dataset>, a new suffix "
                             "after finished runs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in --run-dir instead of stopping")
    parser.add_argument("--export-dir", default="saved_models",
                        help="SavedModel root; the model goes to <dir>/<model>/<next version> "
                             "(default: %(default)s)")
    parser.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    args = parser.parse_args(argv)
    common.check_positive(parser, args, "epochs", "batch_size", "image_size")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.setup_logging()
    try:
        model, splits, run_dir, overrides = prepare(args)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return train_and_export(args, model, splits, run_dir, overrides)


def prepare(args):
    """Check the config and load the data, then create the run folder, so bad input leaves none."""
    # Heavy imports after argument parsing, so --help and argument errors return at once.
    import keras

    import zoo
    from zoo import training

    overrides = common.parse_overrides(args.set)
    zoo.config_of(args.model, **overrides)  # invalid overrides fail before data is read
    training.set_precision(args.precision)
    keras.utils.set_random_seed(args.seed)
    run_dir = training.resolve_run_dir(
        args.run_dir, f"{args.model}-{common.dataset_label(args.dataset)}", overwrite=args.overwrite
    )
    splits = common.load_data(args)
    info = splits.info
    print(f"Dataset {info.name}: {info.num_classes} classes {list(info.class_names)}, "
          f"{info.channels} channel(s), {info.train_size} train / {info.test_size} held-out images")
    model = zoo.build(args.model, input_shape=(None, None, info.channels),
                      num_classes=info.num_classes, **overrides)

    if args.overwrite and run_dir.exists():
        print(f"Removing the earlier run in {run_dir} (--overwrite)")
        training.remove_run(run_dir)
    resuming = training.is_interrupted(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"{'Resuming' if resuming else 'Starting'} run in {run_dir}")
    return model, splits, run_dir, overrides


def train_and_export(args, model, splits, run_dir, overrides) -> int:
    """Train, evaluate on the held-out split, save, export, and write metrics.json last."""
    import zoo
    from zoo import export, metrics, training

    info = splits.info
    training.compile_model(model, info.num_classes, args.learning_rate, args.loss, info.class_names)
    training.write_json(run_dir / "config.json", {
        "model": args.model, "overrides": overrides, "config": zoo.config_of(args.model, **overrides).to_dict(),
        "arguments": vars(args),
    })

    started = time.perf_counter()
    model.fit(splits.train, validation_data=splits.validation, epochs=args.epochs,
              callbacks=training.callbacks(run_dir), verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.perf_counter() - started
    model.save(run_dir / "model.keras")

    confusion = metrics.confusion_matrix(model, splits.test, info.num_classes)
    report = metrics.iou_report(confusion, info.class_names)
    report.update(model=args.model, dataset=info.name, epochs=args.epochs,
                  parameters=model.count_params(), training_seconds=round(seconds, 1),
                  precision=args.precision, seed=args.seed)
    common.print_report(report)

    if not args.no_export:
        path = export.export_for_serving(model, args.export_dir, name=args.model)
        report["saved_model"] = str(path)
    training.write_json(run_dir / training.FINISHED_MARKER, report)
    print(f"Metrics written to {run_dir / training.FINISHED_MARKER}")
    if not args.no_export:
        print(f"SavedModel written to {report['saved_model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
