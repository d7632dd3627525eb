"""Search U-Net knobs with KerasTuner, save the best config and export the best model.

Example:
    python -m recipes.tune --dataset zoo_shapes --tuner bayesian --max-trials 20 \
        --fix depth=3 --choices upsampling=bilinear,transpose2 --range base_filters=8,32 \
        --directory tuning/shapes

With no arguments it runs a small random search on the offline zoo_shapes set. Running the
same command again resumes an interrupted search. After every --trials-per-process trials
the command replaces itself with a fresh copy that resumes, which frees the memory that
TensorFlow keeps per trial. docs/tuning.md covers memory and distributed search.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from recipes import common

TUNERS = ("random", "hyperband", "bayesian")
STRATEGIES = ("default", "mirrored", "multi_worker")
DEFAULT_IMAGE_SIZE = 64
DEFAULT_MAX_TRIALS = 5
DEFAULT_EPOCHS = 2
DEFAULT_STEPS_PER_EPOCH = 20
DEFAULT_TRIALS_PER_PROCESS = 5
# Without --full-space, knobs that the command line leaves open search these smaller ranges,
# which keep the default run short on a CPU.
SMALL_RANGES = {"depth": (2, 3), "base_filters": (8, 16)}

EPILOG = """\
knobs (name, kind, default search values):
{knobs}

Fixing or narrowing knobs:
  --fix depth=3                          search depth 3 only (any UNetConfig field works too,
                                         for example --fix norm=group)
  --choices upsampling=bilinear,transpose2
  --range base_filters=8,32              int and float knobs; base_filters steps by x2
  --range learning_rate=1e-4,1e-3

Outputs in --directory: results.csv and results.md (every trial, best first),
best_config.json (UNetConfig JSON for zoo.build(config=...)), best_hyperparameters.json
(learning rate, loss, score), best_model.keras, search.json (the settings that a resumed
run must match) and the KerasTuner project in unet_search/.
"""


class _HelpParser(argparse.ArgumentParser):
    """Argument parser that adds the knob table to the help text only when help is shown.

    The table comes from zoo.tuning, which imports TensorFlow; argument errors stay fast.
    """

    def format_help(self) -> str:
        self.epilog = EPILOG.format(knobs=_knob_lines())
        return super().format_help()


def parse_args(argv=None) -> argparse.Namespace:
    parser = _HelpParser(
        prog="python -m recipes.tune",
        allow_abbrev=False,  # restart_in_place drops --overwrite by its full name
        description="Search U-Net knobs with KerasTuner, write a results table of every trial, "
                    "save the best config and export the best model as a SavedModel.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.add_data_arguments(parser)
    parser.set_defaults(image_size=DEFAULT_IMAGE_SIZE)
    _add_search_arguments(parser)
    _add_training_arguments(parser)
    _add_output_arguments(parser)
    args = parser.parse_args(argv)
    common.check_positive(parser, args, "max_trials", "epochs", "batch_size", "image_size",
                          "hyperband_factor")
    for name in ("trials_per_process", "steps_per_epoch"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more; received {getattr(args, name)}")
    if args.validation_steps is not None:
        common.check_positive(parser, args, "validation_steps")
    try:
        args.fixed, args.choices, args.ranges = knob_arguments(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def _knob_lines() -> str:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from zoo.tuning import describe_knobs

    return describe_knobs()


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tuner", default="random", choices=TUNERS,
                        help="search algorithm (default: %(default)s)")
    parser.add_argument("--max-trials", type=int, default=DEFAULT_MAX_TRIALS,
                        help="number of trials (model configs) for random and bayesian search; "
                             "hyperband sets its own count from --epochs and --hyperband-factor. "
                             "Raise it and rerun to extend a finished search (default: %(default)s)")
    parser.add_argument("--objective", default="val_mean_iou",
                        help="Keras log entry to optimize, for example val_mean_iou or val_loss "
                             "(default: %(default)s)")
    parser.add_argument("--direction", default="auto", choices=("auto", "min", "max"),
                        help="optimize the objective towards min or max; auto minimizes names "
                             "that contain 'loss' and maximizes the rest (default: %(default)s)")

    parser.add_argument("--fix", action="append", default=[], metavar="KNOB=VALUE",
                        help="hold a knob (or any UNetConfig field) at one value; repeat for more")
    parser.add_argument("--choices", action="append", default=[], metavar="KNOB=V1,V2,...",
                        help="search only these values of a knob; repeat for more")
    parser.add_argument("--range", action="append", default=[], metavar="KNOB=LOW,HIGH",
                        help="search an int or float knob between LOW and HIGH, both included; "
                             "repeat for more")
    parser.add_argument("--full-space", action="store_true",
                        help="search the library's full default ranges; without it, depth and "
                             f"base_filters default to {SMALL_RANGES['depth']} and "
                             f"{SMALL_RANGES['base_filters']} to keep trials short")


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help="training epochs per trial; for hyperband, the maximum epochs of "
                             "one model (default: %(default)s)")
    parser.add_argument("--steps-per-epoch", type=int, default=DEFAULT_STEPS_PER_EPOCH,
                        help="training batches per epoch, drawn from the repeated, reshuffled "
                             "training split; 0 for one full pass (default: %(default)s)")
    parser.add_argument("--validation-steps", type=int, default=None,
                        help="validation batches per evaluation (default: the whole validation split)")
    parser.add_argument("--hyperband-factor", type=int, default=3,
                        help="hyperband's reduction factor between rounds (default: %(default)s)")

    parser.add_argument("--trials-per-process", type=int, default=DEFAULT_TRIALS_PER_PROCESS,
                        help="run at most this many trials in one process, then restart the "
                             "command in place (same process id) to continue the search; "
                             "TensorFlow keeps the traced graphs of every trial (about 50 MiB "
                             "for a tiny U-Net), and nothing else frees them. 0 runs every "
                             "trial in one process "
                             "(default: %(default)s)")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES,
                        help="tf.distribute strategy for training inside a trial: default (one "
                             "device), mirrored (all local GPUs) or multi_worker (a cluster "
                             "described by TF_CONFIG) (default: %(default)s)")
    parser.add_argument("--precision", default="float32", choices=common.PRECISIONS,
                        help="float32, mixed_bfloat16 or mixed_float16 (default: %(default)s)")


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--directory", default="tuning",
                        help="folder for the KerasTuner project, the results table and the best "
                             "config; rerun with the same folder to resume (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the search in --directory, whatever its settings, and start "
                             "again; without it, a search with other settings stops the run "
                             "(ignored on distributed workers)")
    parser.add_argument("--export-dir", default="saved_models",
                        help="SavedModel root; the best model goes to <dir>/<export name>/<next "
                             "version> (default: %(default)s)")
    parser.add_argument("--export-name", default="unet-tuned",
                        help="model name in the export path (default: %(default)s)")
    parser.add_argument("--no-export", action="store_true",
                        help="skip best_model.keras and the SavedModel export")


def _parse_value(text: str):
    """Read a command-line value as JSON (3, 1e-4, true), else as plain text (bilinear)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _split_pair(option: str, pair: str, example: str) -> tuple[str, str]:
    name, separator, text = pair.partition("=")
    if not separator or not name.strip() or not text:
        raise ValueError(f"Invalid {option} {pair!r}. Expected KNOB=VALUE, for example {example}.")
    return name.strip(), text


def knob_arguments(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """Return the fixed, choices and ranges mappings of --fix, --choices, --range and defaults."""
    fixed, choices, ranges = {}, {}, {}
    for pair in args.fix:
        name, text = _split_pair("--fix", pair, "depth=3")
        fixed[name] = _parse_value(text)
    for pair in args.choices:
        name, text = _split_pair("--choices", pair, "upsampling=bilinear,transpose2")
        choices[name] = [_parse_value(value.strip()) for value in text.split(",")]
    for pair in args.range:
        name, text = _split_pair("--range", pair, "base_filters=8,32")
        bounds = [_parse_value(value.strip()) for value in text.split(",")]
        if len(bounds) != 2:
            raise ValueError(
                f"Invalid --range {pair!r}. Expected KNOB=LOW,HIGH, for example base_filters=8,32."
            )
        ranges[name] = tuple(bounds)
    if not args.full_space:
        for name, bounds in SMALL_RANGES.items():
            if not any(name in given for given in (fixed, choices, ranges)):
                ranges[name] = bounds
    return fixed, choices, ranges


def search_settings(args: argparse.Namespace, hypermodel, objective) -> dict:
    """Return everything that gives this search's trials their meaning.

    A rerun must match these settings to resume. --max-trials is left out, so raising it
    extends a search; output and placement options (directories, strategy) are left out too.
    """
    return {
        "space": hypermodel.space_config(),
        "tuner": args.tuner,
        "objective": [objective.name, objective.direction],
        "data": {key: getattr(args, key) for key in (
            "dataset", "image_size", "batch_size", "seed", "no_augment", "mask_encoding",
            "holdout_fraction")},
        "training": {key: getattr(args, key) for key in (
            "epochs", "steps_per_epoch", "validation_steps", "precision")},
        "hyperband_factor": args.hyperband_factor if args.tuner == "hyperband" else None,
    }


def make_hypermodel(args: argparse.Namespace, info=None):
    """Build the UNetHyperModel of the arguments; without data info, for validation only."""
    from zoo import tuning

    return tuning.UNetHyperModel(
        info.num_classes if info else 2, info.channels if info else 3,
        fixed=args.fixed, choices=args.choices, ranges=args.ranges,
        image_size=args.image_size, class_names=info.class_names if info else None,
    )


def fit_datasets(splits, args: argparse.Namespace) -> tuple:
    """Return the training and validation datasets, repeated or cut to the requested steps."""
    train = splits.train.repeat() if args.steps_per_epoch else splits.train
    validation = splits.validation
    if args.validation_steps:
        validation = validation.take(args.validation_steps)
    return train, validation


def trial_printer(objective_name: str):
    """Return the on_trial_end callback that prints one 'Trial ... finished' line per trial."""

    def print_trial(result) -> None:
        score = "no score" if result.score is None else f"{objective_name} {result.score:.4f}"
        print(f"Trial {result.trial_id} finished: {result.status}, {score}, "
              f"{result.seconds:.1f} s, tuner {result.tuner_id}", flush=True)
        if result.message:
            print(f"  error: {result.message}", flush=True)

    return print_trial


def prepare(args: argparse.Namespace, role: str):
    """Validate the space, check the search directory and load the data; return both."""
    from zoo import tuning

    direction = None if args.direction == "auto" else args.direction
    objective = tuning.make_objective(args.objective, direction)
    settings = search_settings(args, make_hypermodel(args), objective)
    if role == "worker" and args.overwrite:
        print("Ignoring --overwrite on a worker: the chief owns the search directory.")
    overwrite = args.overwrite and role != "worker"
    tuning.check_search_directory(args.directory, settings, overwrite=overwrite)
    splits = common.load_data(args)
    info = splits.info
    print(f"Dataset {info.name}: {info.num_classes} classes, {info.channels} channel(s), "
          f"{info.train_size} train / {info.validation_size} validation images of "
          f"{args.image_size}x{args.image_size}")
    return objective, splits


def export_best(tuner, args: argparse.Namespace) -> int:
    """Save the best trial's trained model as best_model.keras and export it for serving."""
    from zoo import export, tuning

    try:
        with warnings.catch_warnings():
            # The trial checkpoint contains Adam's state, which a model used only for export
            # does not need; Keras warns that it skips it.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = tuner.get_best_models(1)[0]
    except OSError as error:
        print(f"Export failed: the best trial's checkpoint could not be read ({error}). In a "
              "distributed search, --directory must be a folder that the workers share with "
              "the chief.", file=sys.stderr)
        return 1
    model_path = Path(args.directory) / tuning.BEST_MODEL_FILE
    model.save(model_path)
    path = export.export_for_serving(model, args.export_dir, name=args.export_name)
    print(f"Best model saved to {model_path}")
    print(f"SavedModel written to {path}")
    return 0


def finish(tuner, hypermodel, objective, args: argparse.Namespace) -> int:
    """Write the results table and the best config, then export the best model."""
    from zoo import tuning

    rows = tuning.trial_rows(tuner)
    csv_path, markdown_path = tuning.write_results(rows, args.directory)
    print(f"\nResults of {len(rows)} trials, best first: {csv_path} and {markdown_path}")
    print("\n".join(markdown_path.read_text(encoding="utf-8").splitlines()[:12]))
    try:
        trial = tuning.best_trial(tuner)
    except RuntimeError as error:
        print(f"Search failed: {error}", file=sys.stderr)
        return 1
    tuning.write_best(hypermodel, trial, args.directory, objective)
    print(f"\nBest trial {trial.trial_id}: {objective.name} {trial.score:.4f}")
    print(f"Best config written to {Path(args.directory) / tuning.BEST_CONFIG_FILE} "
          f"(learning rate and loss in {tuning.BEST_HYPERPARAMETERS_FILE})")
    return 0 if args.no_export else export_best(tuner, args)


def search(tuner, splits, args: argparse.Namespace, role: str) -> None:
    """Run the tuner's search on the prepared datasets, printing the chief's address."""
    train, validation = fit_datasets(splits, args)
    # The training split is shuffled by its pipeline; Keras warns when fit is also asked to.
    fit_options = {"shuffle": False}
    if args.steps_per_epoch:
        fit_options["steps_per_epoch"] = args.steps_per_epoch
    if role == "chief":
        print(f"Chief oracle serving on {os.environ['KERASTUNER_ORACLE_IP']}:"
              f"{os.environ['KERASTUNER_ORACLE_PORT']}; it finishes when every worker has stopped",
              flush=True)
    started = time.perf_counter()
    tuner.search(train, validation_data=validation, epochs=args.epochs,
                 verbose=1 if sys.stdout.isatty() else 2, **fit_options)
    print(f"Search stopped after {time.perf_counter() - started:.0f} s")


def search_unfinished(tuner, role: str) -> bool:
    """Return whether trials remain; a worker or a hyperband search cannot tell, so True."""
    if role == "worker" or tuner.remaining_trials is None:
        return True
    # A trial still RUNNING here is one that a killed run left, which the oracle retries.
    running = [trial for trial in tuner.oracle.trials.values() if trial.status == "RUNNING"]
    return tuner.remaining_trials > 0 or bool(running)


def restart_in_place() -> None:
    """Replace this process with the same command, minus --overwrite, which resumes the search.

    The process id, standard streams and working directory stay the same.
    """
    print("Restarting the process to free TensorFlow's memory; the search continues.", flush=True)
    sys.stderr.flush()
    command = [argument for argument in sys.orig_argv if argument != "--overwrite"]
    os.execv(sys.executable, command)


def main(argv=None, restart_process: bool = False) -> int:
    """Run the recipe; only with `restart_process` does --trials-per-process restart it.

    Called from Python (tests, notebooks), the recipe runs every trial in the caller's
    process instead of replacing it.
    """
    args = parse_args(argv)
    common.setup_logging()
    import keras

    from zoo import training, tuning

    role = tuning.distributed_role()
    # TensorFlow needs a multi-worker strategy created before any other TensorFlow work.
    strategy = tuning.make_strategy(args.strategy)
    training.set_precision(args.precision)
    keras.utils.set_random_seed(args.seed)
    try:
        objective, splits = prepare(args, role)
    except (ValueError, FileNotFoundError) as error:
        print(f"recipes.tune: error: {error}", file=sys.stderr)
        return 2

    hypermodel = make_hypermodel(args, splits.info)
    tuner = tuning.make_tuner(
        args.tuner, hypermodel, args.directory, objective=objective, max_trials=args.max_trials,
        max_epochs=args.epochs, hyperband_factor=args.hyperband_factor,
        # KerasTuner replaces a seed of 0 with a random one, so the oracle gets seed + 1.
        seed=args.seed + 1, distribution_strategy=strategy,
        on_trial_end=trial_printer(objective.name),
        trial_limit=args.trials_per_process if restart_process and args.trials_per_process else None,
    )
    search(tuner, splits, args, role)
    if tuner.reached_trial_limit and search_unfinished(tuner, role):
        restart_in_place()
    if role == "worker":
        print("Worker done; the chief writes the results and exports the best model.")
        return 0
    return finish(tuner, hypermodel, objective, args)


if __name__ == "__main__":
    sys.exit(main(restart_process=True))
