"""Benchmark the training input pipeline against the training speed of the default model.

For each dataset and image size, the train pipeline is built as `python -m recipes.train`
builds it: the recipe's own argument defaults, the same `zoo.data.load` call and the same
augmentation and batch size. The script then measures two rates in images/s:

- pipeline: whole epochs of the train pipeline iterated alone, with no model. One untimed
  epoch first fills the in-memory cache, so the figure is the steady state of every epoch
  after the first. Each timed epoch includes its start: a new iterator, filling the shuffle
  buffer and the augmentation.
- training: `train_on_batch` of the recipe's default model, compiled as the recipe compiles
  it, on one batch of that pipeline kept in memory. The first call traces the graph, so it
  and one more call are untimed. Each round also starts with untimed steps (--warmup-steps),
  because a model's first step after another model has trained was seen to take up to 4x as
  long as the next ones.

The two measurements alternate in rounds, so a change in machine load affects both alike.
The ratio pipeline / training is computed per round. A case passes when its lowest ratio
over the rounds reaches the target (10x by default). Run from the repository root:

    python -m benchmarks.pipeline_speed            # 128 and 256 px, zoo_shapes and membrane
    python -m benchmarks.pipeline_speed --quick    # a smoke run at 32 px
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import machine as machine_lib  # noqa: E402
from benchmarks import docs_blocks, report, summary  # noqa: E402
from recipes import common  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_PATH = REPO_ROOT / "docs" / "benchmarks.md"
DOCS_BLOCK = "pipeline-speed"
SHARED_DATA = Path(os.environ.get("UNET_ZOO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
# In the ISBI 2012 membrane masks the membrane is dark (0) and the cell interior white (255).
MEMBRANE = f"{SHARED_DATA / 'membrane'}=binary_inverted"
TARGET_RATIO = 10.0

# Defaults of the options that --quick changes; an option given on the command line wins.
FULL_DEFAULTS = {"sizes": [128, 256], "rounds": 5, "train_steps": 3, "warmup_steps": 1,
                 "min_pipeline_seconds": 3.0,
                 "offline_dataset": "zoo_shapes"}
QUICK_DEFAULTS = {"sizes": [32], "rounds": 1, "train_steps": 1, "warmup_steps": 1,
                  "min_pipeline_seconds": 0.2,
                  "offline_dataset": "zoo_shapes/small"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline_speed",
        description="Measure the images/s of the train recipe's input pipeline against the "
                    "training images/s of its default model, in interleaved rounds, and check "
                    f"that the pipeline is at least {TARGET_RATIO:g}x faster.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 32 px images, zoo_shapes/small, 1 round, 1 timed "
                             "training step, 0.2 s of pipeline per measurement")

    parser.add_argument("--sizes", type=int, nargs="+",
                        help=f"image sizes in pixels (default: {FULL_DEFAULTS['sizes']})")
    parser.add_argument("--datasets", nargs="+", metavar="SOURCE",
                        help="registered TFDS names or folders with images/ and masks/. Append "
                             "=ENCODING to a folder to set its --mask-encoding (default: "
                             f"{FULL_DEFAULTS['offline_dataset']}, and {MEMBRANE} when that "
                             "folder exists)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per batch (default: the train recipe's default)")
    parser.add_argument("--model", default=common.DEFAULT_MODEL,
                        help="variant to train (default: %(default)s, the train recipe's default)")

    parser.add_argument("--rounds", type=int,
                        help=f"rounds of both measurements (default: {FULL_DEFAULTS['rounds']})")
    parser.add_argument("--train-steps", type=int,
                        help=f"timed training steps per round (default: {FULL_DEFAULTS['train_steps']})")
    parser.add_argument("--warmup-steps", type=int,
                        help="untimed training steps per round before the timed ones, because the "
                             "other cases ran on the same cores in between "
                             f"(default: {FULL_DEFAULTS['warmup_steps']})")
    parser.add_argument("--min-pipeline-seconds", type=float,
                        help="whole epochs are iterated per round until this many seconds have "
                             f"passed (default: {FULL_DEFAULTS['min_pipeline_seconds']})")
    parser.add_argument("--target", type=float, default=TARGET_RATIO,
                        help="lowest pipeline / training ratio that passes (default: %(default)s)")

    parser.add_argument("--data-dir", default=None,
                        help="TFDS data folder (default: TFDS's own, ~/tensorflow_datasets)")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"replace the '{DOCS_BLOCK}' block of docs/benchmarks.md with the "
                             "results (not with --quick)")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "runs" / "benchmarks",
                        help="folder for the JSON results and the Markdown section, written "
                             "under new timestamped names (default: runs/benchmarks)")

    args = parser.parse_args(argv)
    _apply_defaults(args)
    _check_args(parser, args)
    return args


def _apply_defaults(args: argparse.Namespace) -> None:
    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    for name, value in defaults.items():
        if name != "offline_dataset" and getattr(args, name) is None:
            setattr(args, name, value)
    if args.datasets is None:
        args.datasets = [defaults["offline_dataset"]]
        if (SHARED_DATA / "membrane" / "images").is_dir():
            args.datasets.append(MEMBRANE)


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("rounds", "train_steps"):
        if getattr(args, name) < 1:
            parser.error(f"invalid --{name.replace('_', '-')} {getattr(args, name)}: expected >= 1")
    if args.warmup_steps < 0:
        parser.error(f"invalid --warmup-steps {args.warmup_steps}: expected >= 0")
    for size in args.sizes:
        if size < 1:
            parser.error(f"invalid image size {size} in --sizes: expected >= 1")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"invalid --batch-size {args.batch_size}: expected >= 1")
    if args.min_pipeline_seconds < 0:
        parser.error(f"invalid --min-pipeline-seconds {args.min_pipeline_seconds}: expected >= 0")
    if args.target <= 0:
        parser.error(f"invalid --target {args.target}: expected > 0")


def recipe_arguments(dataset: str, size: int, args: argparse.Namespace) -> argparse.Namespace:
    """Return the train recipe's parsed arguments for one dataset and size.

    Only the dataset, the size and the options given here are set, so everything else
    (seed, augmentation, learning rate, loss, precision) keeps the recipe's defaults.
    """
    from recipes import train

    source, _, encoding = dataset.rpartition("=")
    if encoding in common.MASK_ENCODINGS:
        argv = ["--dataset", source, "--mask-encoding", encoding]
    else:
        argv = ["--dataset", dataset]
    argv += ["--image-size", str(size), "--model", args.model]
    if args.batch_size is not None:
        argv += ["--batch-size", str(args.batch_size)]
    if args.data_dir is not None:
        argv += ["--data-dir", args.data_dir]
    return train.parse_args(argv)


def iterate_epochs(dataset, min_seconds: float) -> dict:
    """Iterate whole epochs of `dataset`, at least one, until `min_seconds` have passed."""
    images = epochs = 0
    start = time.perf_counter()
    while True:
        for batch in dataset:
            images += int(batch[0].shape[0])
        epochs += 1
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            return {"images": images, "epochs": epochs, "seconds": seconds}


def train_steps(model, batch, steps: int) -> dict:
    """Time `steps` calls of `train_on_batch` on the same in-memory batch."""
    step_seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(*batch)
        step_seconds.append(time.perf_counter() - start)
    return {"images": steps * int(batch[0].shape[0]), "seconds": sum(step_seconds),
            "step_seconds": step_seconds}


class Case:
    """One dataset at one image size: its train pipeline, a compiled model and a batch."""

    def __init__(self, dataset: str, size: int, args: argparse.Namespace):
        self.recipe = recipe_arguments(dataset, size, args)
        self.dataset = common.dataset_label(self.recipe.dataset)
        self.size = size
        self.setup_seconds = {}

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.size}x{self.size}"

    def prepare(self) -> None:
        """Load the pipeline, fill its cache, and build, compile and trace the model."""
        import keras

        import zoo
        from zoo import training

        start = time.perf_counter()
        self.splits = common.load_data(self.recipe)
        self.setup_seconds["load"] = time.perf_counter() - start
        self.setup_seconds["first_epoch"] = iterate_epochs(self.splits.train, 0.0)["seconds"]
        self.batch = self.splits.train.take(1).get_single_element()

        info = self.splits.info
        training.set_precision(self.recipe.precision)
        keras.utils.set_random_seed(self.recipe.seed)
        self.model = zoo.build(self.recipe.model, input_shape=(None, None, info.channels),
                               num_classes=info.num_classes)
        training.compile_model(self.model, info.num_classes, self.recipe.learning_rate,
                               self.recipe.loss, info.class_names)
        # The first call traces the training function, and the second runs the traced graph.
        self.setup_seconds["first_steps"] = train_steps(self.model, self.batch, 2)["step_seconds"]

    def describe(self) -> dict:
        info = self.splits.info
        return {"dataset": self.dataset, "source": self.recipe.dataset, "size": self.size,
                "batch_size": self.recipe.batch_size, "model": self.recipe.model,
                "mask_encoding": info.mask_encoding, "channels": info.channels,
                "classes": info.num_classes, "train_images": info.train_size,
                "augment": not self.recipe.no_augment, "precision": self.recipe.precision,
                "setup_seconds": self.setup_seconds}


def prepare_cases(args: argparse.Namespace) -> list[Case]:
    cases = []
    for dataset in args.datasets:
        for size in args.sizes:
            case = Case(dataset, size, args)
            print(f"Preparing {case.label}: loading, filling the cache, tracing {case.recipe.model} ...",
                  flush=True)
            case.prepare()
            first_steps = ", ".join(f"{value:.1f}" for value in case.setup_seconds["first_steps"])
            print(f"  first epoch {case.setup_seconds['first_epoch']:.1f} s, first training "
                  f"steps {first_steps} s", flush=True)
            cases.append(case)
    return cases


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def measure(cases: list[Case], index: int, kind: str, round_index: int,
            args: argparse.Namespace) -> dict:
    case = cases[index]
    if kind == "pipeline":
        result = iterate_epochs(case.splits.train, args.min_pipeline_seconds)
        detail = _count(result["epochs"], "epoch")
    else:
        warmup = train_steps(case.model, case.batch, args.warmup_steps)
        result = train_steps(case.model, case.batch, args.train_steps)
        result["warmup_seconds"] = warmup["step_seconds"]
        steps = " ".join(f"{value:.2f}" for value in result["step_seconds"])
        detail = f"{_count(args.train_steps, 'step')} of {steps} s"
    result["images_per_second"] = result["images"] / result["seconds"]
    print(f"round {round_index + 1}/{args.rounds}  {case.label:<24} {kind:<8} "
          f"{result['images_per_second']:10.1f} images/s  ({result['images']} images, {detail}, "
          f"{result['seconds']:.2f} s)", flush=True)
    return {"round": round_index, "case": index, "dataset": case.dataset, "size": case.size,
            "kind": kind, **result}


def run_rounds(cases: list[Case], args: argparse.Namespace) -> list[dict]:
    """Measure every case in each round, swapping which of the two goes first each round."""
    records = []
    for round_index in range(args.rounds):
        kinds = ("pipeline", "training") if round_index % 2 == 0 else ("training", "pipeline")
        for index in range(len(cases)):
            for kind in kinds:
                records.append(measure(cases, index, kind, round_index, args))
    return records


def summarize(cases: list[Case], records: list[dict], target: float) -> list[dict]:
    """Return one row per case: medians and ranges of both rates and of their per-round ratio."""
    rows = []
    for index, case in enumerate(cases):
        pipeline = _rates_by_round(records, index, "pipeline")
        training = _rates_by_round(records, index, "training")
        ratio = summary.stats([pipeline[i] / training[i] for i in sorted(training)])
        rows.append({**case.describe(),
                     "pipeline_images_per_second": summary.stats(pipeline.values()),
                     "training_images_per_second": summary.stats(training.values()),
                     "ratio": ratio, "passed": ratio["min"] >= target})
    return rows


def _rates_by_round(records: list[dict], index: int, kind: str) -> dict[int, float]:
    return {record["round"]: record["images_per_second"] for record in records
            if record["case"] == index and record["kind"] == kind}


def markdown(results: dict) -> str:
    """Return the section for docs/benchmarks.md: method, machine, command and table."""
    machine, target = results["machine"], results["target_ratio"]
    rows = results["summary"]
    lines = [
        "## Input pipeline against training", "",
        f"Measured by `benchmarks/pipeline_speed.py` on {results['date']}, in "
        f"{_count(results['rounds'], 'round')}. Each round takes two measurements of every case, "
        "in alternating order. One iterates whole epochs of the train pipeline alone, for at least "
        f"{results['config']['min_pipeline_seconds']:g} s. That pipeline is built as "
        "`python -m recipes.train` builds it: the same `zoo.data.load` call, augmentation and batch "
        "size. One untimed epoch filled the in-memory cache first, so the figure is the steady "
        "state of each later epoch. It includes each epoch's start (new iterator, full shuffle "
        f"buffer). The other trains `{rows[0]['model']}`, compiled as the recipe compiles it, on one "
        "batch of that pipeline held in memory. It times "
        f"{_count(results['config']['train_steps'], '`train_on_batch` step')} after "
        f"{_count(results['config']['warmup_steps'], 'untimed step')}. Figures are the "
        "median (min-max) over rounds, and the ratio is computed per round. A case passes when "
        f"its lowest ratio reaches {target:g}x. The two measurements never ran at the same time, "
        "but during `fit` the pipeline and the model share the cores. A ratio r therefore means that "
        "the pipeline takes roughly 1/(r+1) of an epoch's CPU time (an estimate, not measured).",
        "",
        f"Machine: {machine.get('cpu_model', 'unknown CPU')}, {machine.get('logical_cpus')} logical "
        f"CPUs ({machine.get('usable_cpus')} usable), load average {machine['load_average_start'][0]:.2f} "
        f"at the start. TensorFlow {results['tensorflow']}, Keras {results['keras']}, "
        f"Python {machine['python']}.",
        "",
        f"Command: `{results['command']}`",
        "",
        "| dataset | size | batch | train images | pipeline images/s | training images/s "
        f"| pipeline / training | {target:g}x |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['size']} | {row['batch_size']} | {row['train_images']} "
            f"| {report.format_stats(row['pipeline_images_per_second'], 0)} "
            f"| {report.format_stats(row['training_images_per_second'], 1)} "
            f"| {report.format_stats(row['ratio'], 1)} | {'PASS' if row['passed'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"


def write_new_file(folder: Path, stem: str, suffix: str, text: str) -> Path:
    """Write `text` to folder/stem.suffix, or to stem-2, stem-3, ... if that file exists."""
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = folder / (f"{stem}{suffix}" if attempt == 1 else f"{stem}-{attempt}{suffix}")
        try:
            with open(path, "x", encoding="utf-8") as file:
                file.write(text)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free file name for {stem}{suffix} in {folder}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.write_docs:
        if args.quick:
            print("error: --write-docs cannot be combined with --quick", file=sys.stderr)
            return 2
        # Check the markers now, so a long run never ends with nowhere to write.
        docs_blocks.replace_in_text(DOCS_PATH.read_text(encoding="utf-8"), {DOCS_BLOCK: ""})
    common.setup_logging()
    import keras
    import tensorflow as tf

    started = time.time()
    machine = machine_lib.machine_info()
    print(f"Machine: {machine.get('cpu_model', 'unknown CPU')}, {machine.get('usable_cpus')} usable "
          f"CPUs, load average {machine['load_average_start'][0]:.2f}", flush=True)
    cases = prepare_cases(args)
    records = run_rounds(cases, args)
    machine["load_average_end"] = os.getloadavg()

    now = datetime.datetime.now()
    results = {
        "benchmark": "pipeline_speed", "date": now.strftime("%Y-%m-%d"),
        "command": " ".join(["python -m benchmarks.pipeline_speed",
                             *(argv if argv is not None else sys.argv[1:])]),
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "rounds": args.rounds, "target_ratio": args.target, "machine": machine,
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "wall_seconds": round(time.time() - started, 1), "records": records,
        "summary": summarize(cases, records, args.target),
    }
    results["passed"] = all(row["passed"] for row in results["summary"])
    text = markdown(results)
    stem = f"pipeline_speed-{now.strftime('%Y%m%d-%H%M%S')}"
    json_path = write_new_file(args.output_dir, stem, ".json", json.dumps(results, indent=2) + "\n")
    markdown_path = write_new_file(args.output_dir, json_path.stem, ".md", text)
    print("\n" + text, flush=True)
    print(f"Results written to {json_path} and {markdown_path}", flush=True)
    if args.write_docs:
        body = text.split("\n", 2)[2]  # the section without its heading, which the page keeps
        docs_blocks.replace_blocks(DOCS_PATH, {DOCS_BLOCK: body})
        print(f"Updated the '{DOCS_BLOCK}' block of {DOCS_PATH}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
