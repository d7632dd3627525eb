"""Benchmark the zoo's `unet` against a hand-written U-Net and two PyPI U-Net packages.

It measures, interleaved so that machine load affects every model alike:
- training images/s and peak memory (peak RSS of the model's process) of the zoo's `unet`,
  the hand-written equivalent and the peers keras-unet and keras-unet-collection;
- inference images/s (`predict_on_batch`);
- SavedModel serving latency at batch 1 and batch 8 against direct Keras calls;
- float32 against mixed precision, with the achieved training FLOP/s next to the measured
  FLOP/s of an n x n matrix product in TensorFlow (the peak reference).

Each model runs in its own worker process (`benchmarks/worker.py`), and only one computes at a
time; `benchmarks/schedule.py` has the order of the requests. Run from the repository root:

    python -m benchmarks.unet_speed                 # the full CPU run
    python -m benchmarks.unet_speed --write-docs    # the same, then fill docs/benchmarks.md
    python -m benchmarks.unet_speed --quick         # a smoke run at a trivial size
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import contenders, docs_blocks, machine, report, summary  # noqa: E402
from benchmarks.schedule import Schedule, plan_workers  # noqa: E402
from benchmarks.worker_pool import REPO_ROOT, WorkerPool  # noqa: E402

PRECISIONS = tuple(summary.MATMUL_DTYPES)
DEFAULT_DOCS = REPO_ROOT / "docs" / "benchmarks.md"

# Defaults of the options that --quick changes; an option given on the command line wins.
FULL_DEFAULTS = {
    "sizes": [256, 128], "mixed_sizes": None, "batch_size": 8, "steps": 3, "mixed_steps": 1,
    "warmup_steps": 1, "rounds": 3, "depth": 4, "base_filters": 32, "matmul_size": 4096,
    "matmul_repeats": 1, "latency_repeats": 5, "latency_batches": [1, 8],
}
QUICK_DEFAULTS = {
    "sizes": [32], "mixed_sizes": None, "batch_size": 2, "steps": 2, "mixed_steps": 1,
    "warmup_steps": 1, "rounds": 2, "depth": 2, "base_filters": 4, "matmul_size": 256,
    "matmul_repeats": 1, "latency_repeats": 2, "latency_batches": [1, 2],
}


class _HelpFormatter(argparse.HelpFormatter):
    """Append the default to an option's help, unless it is a flag or written in the help."""

    def _get_help_string(self, action):
        if action.default in (None, argparse.SUPPRESS) or isinstance(action.default, bool):
            return action.help
        return f"{action.help} (default: %(default)s)"


def _full_default(name: str) -> str:
    return f"(default: {FULL_DEFAULTS[name]}; --quick: {QUICK_DEFAULTS[name]})"


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="device to run on; cpu hides any GPU from the workers")
    parser.add_argument("--contenders", nargs="+", choices=contenders.CONTENDERS,
                        default=list(contenders.CONTENDERS), help="models to train in float32")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS,
                        default=["float32", "mixed_bfloat16"],
                        help="Keras dtype policies; float32 is always measured")
    parser.add_argument("--mixed-contenders", nargs="+", choices=contenders.CONTENDERS,
                        default=[contenders.ZOO],
                        help="models to train under each mixed precision policy")
    parser.add_argument("--xla", choices=("off", "on", "both"), default="off",
                        help="jit_compile of the training and inference functions")
    parser.add_argument("--channels", type=int, default=3, help="input channels")
    parser.add_argument("--num-classes", type=int, default=2, help="output classes")
    parser.add_argument("--depth", type=int, help=f"U-Net stages {_full_default('depth')}")
    parser.add_argument("--base-filters", type=int,
                        help=f"filters of the first stage {_full_default('base_filters')}")


def _add_timing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+",
                        help=f"image heights and widths in pixels (square images) "
                             f"{_full_default('sizes')}")
    parser.add_argument("--mixed-sizes", type=int, nargs="+",
                        help="image sizes for mixed precision training (default: the smallest "
                             "of --sizes, because on a CPU without bfloat16 instructions a "
                             "mixed_bfloat16 step is much slower than a float32 step)")
    parser.add_argument("--batch-size", type=int,
                        help=f"training and inference batch {_full_default('batch_size')}")
    parser.add_argument("--steps", type=int,
                        help="timed steps per float32 model and round, taken in turn with the "
                             f"other models {_full_default('steps')}")
    parser.add_argument("--mixed-steps", type=int,
                        help="timed steps per mixed precision model and round "
                             f"{_full_default('mixed_steps')}")
    parser.add_argument("--warmup-steps", type=int,
                        help="untimed steps when a worker first sees an image size, after the "
                             f"first call, which traces the graph {_full_default('warmup_steps')}")
    parser.add_argument("--rounds", type=int,
                        help="rounds over all measurements; each ratio is computed per round "
                             f"{_full_default('rounds')}")
    parser.add_argument("--matmul-size", type=int,
                        help=f"n of the n x n matrix product {_full_default('matmul_size')}")
    parser.add_argument("--matmul-repeats", type=int,
                        help="timed products per dtype after each cycle of training steps (one "
                             f"step of every model) {_full_default('matmul_repeats')}")
    parser.add_argument("--matmul-calls", type=int,
                        help="products per timed repeat (default: 1 on cpu, 50 on gpu)")


def _add_serving_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-serve", dest="serve", action="store_false",
                        help="skip the SavedModel latency measurement")
    parser.add_argument("--serve-precisions", nargs="+", choices=PRECISIONS, default=["float32"],
                        help="dtype policies of the model behind the SavedModel")
    parser.add_argument("--latency-batches", type=int, nargs="+",
                        help=f"batches for the serving latency {_full_default('latency_batches')}")
    parser.add_argument("--latency-repeats", type=int,
                        help="timed calls per kind of call and round "
                             f"{_full_default('latency_repeats')}")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peers-dir", type=Path, default=contenders.DEFAULT_PEERS_DIR,
                        help="folder that pip installs the peers into (pip install --target)")
    parser.add_argument("--no-install-peers", dest="install_peers", action="store_false",
                        help="skip the peers that are not already in --peers-dir instead of "
                             "installing them")
    parser.add_argument("--task-timeout", type=float, default=3600.0,
                        help="seconds to wait for one reply of a worker before stopping it")
    parser.add_argument("--output", type=Path,
                        help="JSON file for the results; the Markdown report (.md) and the "
                             "workers' log (.log) are written beside it (default: "
                             "runs/benchmarks/unet_speed-<time>.json)")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the generated blocks of --docs with the goals and tables "
                             "of this run; the rest of the file is kept as it is")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS,
                        help="Markdown page for --write-docs")
    parser.add_argument("--from-results", type=Path, metavar="JSON",
                        help="measure nothing: rebuild the report from the results file of an "
                             "earlier run, print it, and with --write-docs write it to --docs")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.unet_speed",
        description="Benchmark the zoo's unet against a hand-written U-Net and the PyPI packages "
                    "keras-unet and keras-unet-collection: training and inference images/s, "
                    "peak memory, SavedModel latency and mixed precision. "
                    "See docs/benchmarks.md.",
        formatter_class=_HelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 32x32 images, batch 2, depth 2, 4 base filters, 2 rounds, "
                             "256x256 matrix product; it cannot be combined with --write-docs")
    _add_model_options(parser)
    _add_timing_options(parser)
    _add_serving_options(parser)
    _add_run_options(parser)
    args = parser.parse_args(argv)

    for name, value in (QUICK_DEFAULTS if args.quick else FULL_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.mixed_sizes is None:
        args.mixed_sizes = [min(args.sizes)]
    if args.matmul_calls is None:
        args.matmul_calls = 50 if args.device == "gpu" else 1
    if "float32" not in args.precisions:
        args.precisions.insert(0, "float32")
    _check_args(parser, args)
    return args


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.write_docs and args.quick:
        parser.error("--write-docs records a full run in the docs, so it cannot be combined "
                     "with --quick")
    if args.from_results is not None and not args.from_results.is_file():
        parser.error(f"--from-results file not found: {args.from_results}")
    multiple = 2**args.depth
    for size in [*args.sizes, *args.mixed_sizes]:
        if size < multiple or size % multiple:
            parser.error(f"invalid image size {size}: the hand-written U-Net needs a multiple "
                         f"of 2**depth = {multiple}")
    positive = ("batch_size", "steps", "mixed_steps", "rounds", "depth", "base_filters",
                "matmul_size", "matmul_repeats", "matmul_calls", "latency_repeats", "channels")
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"invalid --{name.replace('_', '-')} {getattr(args, name)}: expected >= 1")
    if any(batch < 1 for batch in args.latency_batches):
        parser.error(f"invalid --latency-batches {args.latency_batches}: expected values >= 1")
    if args.warmup_steps < 0:
        parser.error(f"invalid --warmup-steps {args.warmup_steps}: expected >= 0")
    if args.num_classes < 2:
        parser.error(f"invalid --num-classes {args.num_classes}: the models end in a softmax, "
                     "so expected >= 2")
    if args.task_timeout <= 0:
        parser.error(f"invalid --task-timeout {args.task_timeout}: expected > 0")


def prepare_peers(args: argparse.Namespace) -> dict:
    """Install the requested peers that are missing, and return {peer: reason} for those skipped."""
    requested = {name for name in [*args.contenders, *args.mixed_contenders]
                 if name in contenders.PEERS}
    missing = [name for name in contenders.missing_peers(args.peers_dir) if name in requested]
    if not missing:
        return {}
    if not args.install_peers:
        reason = f"not installed in {args.peers_dir}, and --no-install-peers was given"
        return {name: reason for name in missing}
    print(f"Installing {', '.join(contenders.PEERS[name] for name in missing)} into "
          f"{args.peers_dir} ...", flush=True)
    error = contenders.install_peers(args.peers_dir, missing)
    if error is None:
        return {}
    return {name: f"pip install failed: {error.splitlines()[-1]}" for name in missing}


def start_workers(pool: WorkerPool, workers: list, skipped: dict) -> None:
    """Start the workers one after another, and record each training worker that fails in
    `skipped`."""
    for worker in workers:
        started = time.perf_counter()
        pool.start(worker)
        if worker.error is None:
            print(f"Started {worker.label()} in {time.perf_counter() - started:.0f} s", flush=True)
        elif worker.role == "train":
            skipped[f"{worker.contender} ({worker.precision}, XLA {worker.xla})"] = worker.error


def measure(args: argparse.Namespace, log_path: Path, command: str) -> dict:
    """Run every round and return the results: settings, machine, workers and raw records."""
    started = time.time()
    info = machine.machine_info()
    print(f"Machine: {info.get('cpu_model', 'unknown CPU')}, {info.get('usable_cpus')} usable "
          f"CPUs, load average {info['load_average_start'][0]:.2f}", flush=True)
    print(f"Workers' log: {log_path}", flush=True)
    skipped = prepare_peers(args)
    for name, reason in skipped.items():
        print(f"Skipping {name}: {reason}", flush=True)

    work_dir = Path(tempfile.mkdtemp(prefix="unet_speed-"))
    pool = WorkerPool(log_path, args.task_timeout, args.device)
    workers = plan_workers(args, work_dir, skipped)
    schedule = Schedule(args, pool, workers)
    interrupted = False
    try:
        print(f"Starting {len(workers)} worker processes, one at a time ...", flush=True)
        start_workers(pool, workers, skipped)
        for round_index in range(args.rounds):
            round_started = time.time()
            schedule.run_round(round_index)
            print(f"round {round_index + 1}/{args.rounds} took "
                  f"{time.time() - round_started:.0f} s", flush=True)
    except KeyboardInterrupt:
        # The records so far are kept, so a long run stopped with Ctrl+C still has a report.
        interrupted = True
        print("Interrupted: the report covers the requests finished so far.", flush=True)
    finally:
        pool.stop()
        shutil.rmtree(work_dir, ignore_errors=True)

    info["load_average_end"] = os.getloadavg()
    return {
        "command": command,
        "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": info, "wall_seconds": round(time.time() - started, 1),
        "workers": {w.key: {"description": w.description, "error": w.error} for w in workers},
        "skipped": skipped, "records": schedule.records, "interrupted": interrupted,
    }


def failures(results: dict) -> list[str]:
    """Return the failed workers and requests, leaving out the peers (which are only skipped)."""
    failed = [f"{key}: {worker['error']}" for key, worker in results["workers"].items()
              if worker["error"] and not any(f":{peer}:" in key for peer in contenders.PEERS)]
    failed += [f"{record['task']} {record.get('worker', record.get('dtype'))}: {record['error']}"
               for record in results["records"]
               if "error" in record and record.get("contender") not in contenders.PEERS]
    if results.get("interrupted"):
        failed.append("the run was interrupted before its last round finished")
    return failed


def output_paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """Return the JSON, Markdown and log paths of this run, creating their folder."""
    if args.output is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.output = REPO_ROOT / "runs" / "benchmarks" / f"unet_speed-{stamp}.json"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    return args.output, args.output.with_suffix(".md"), args.output.with_suffix(".log")


def _check_docs(path: Path) -> None:
    """Raise ValueError now, before a long run, if `path` lacks the generated blocks."""
    if not path.is_file():
        raise ValueError(f"--docs file not found: {path}")
    docs_blocks.replace_in_text(path.read_text(encoding="utf-8"),
                                dict.fromkeys(report.DOCS_BLOCKS, ""))


def write_docs(args: argparse.Namespace, results: dict, failed: list[str]) -> bool:
    """Fill the generated blocks of `args.docs`. Return False, writing nothing, on a problem."""
    if failed:
        print(f"Not writing {args.docs}: the run has failures, listed above.", flush=True)
        return False
    if results["config"].get("quick"):
        print(f"Not writing {args.docs}: the results come from a --quick run.", flush=True)
        return False
    docs_blocks.replace_blocks(args.docs, report.docs_blocks(results))
    print(f"Goals and tables written to {args.docs}", flush=True)
    return True


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(levelname)s %(name)s: %(message)s")
    command = shlex.join(["python", "-m", "benchmarks.unet_speed",
                          *(sys.argv[1:] if argv is None else argv)])
    if args.write_docs:
        try:
            _check_docs(args.docs)
        except ValueError as error:
            print(f"Cannot write the docs: {error}", file=sys.stderr)
            return 2

    if args.from_results:
        results = json.loads(args.from_results.read_text())
    else:
        json_path, markdown_path, log_path = output_paths(args)
        results = measure(args, log_path, command)
    results["summary"] = summary.summarize(results)
    text = report.markdown(results)
    print("\n" + text, flush=True)
    if not args.from_results:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        markdown_path.write_text(text)
        print(f"Results written to {json_path} and {markdown_path}", flush=True)

    failed = failures(results)
    for failure in failed:
        print(f"Failed: {failure}", flush=True)
    if args.write_docs and not write_docs(args, results, failed):
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
