"""Worker plan and request order of `benchmarks.unet_speed`.

A round visits the image sizes in ascending order. At each size, every training worker first
gets its untimed calls (only in the first round), then the models take one timed step each in
turn, and that cycle repeats `--steps` times. The matrix-product peak is timed after every cycle
of training steps, so it runs under the same machine load as the steps around it. The order of
the models rotates by one each round. Inference follows the same pattern, then the SavedModel
latency. Each request waits for its reply, so only one worker computes at a time.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks import contenders, summary
from benchmarks.worker_pool import Worker, WorkerPool, worker_command


def _model_options(args: argparse.Namespace) -> list[str]:
    return ["--device", args.device, "--channels", str(args.channels),
            "--num-classes", str(args.num_classes), "--depth", str(args.depth),
            "--base-filters", str(args.base_filters)]


def _train_workers(args: argparse.Namespace, skipped: dict) -> list[Worker]:
    xla_settings = ["off", "on"] if args.xla == "both" else [args.xla]
    workers = []
    for xla in xla_settings:
        for precision in args.precisions:
            mixed = precision != "float32"
            sizes = sorted(args.mixed_sizes if mixed else args.sizes)
            for contender in args.mixed_contenders if mixed else args.contenders:
                if contender in skipped:
                    continue
                command = worker_command(
                    "--role", "train", "--contender", contender, "--precision", precision,
                    "--xla", xla, "--batch-size", str(args.batch_size),
                    "--peers-dir", str(args.peers_dir), "--sizes", *map(str, sizes),
                    *_model_options(args))
                workers.append(Worker(f"train:{contender}:{precision}:{xla}", "train", contender,
                                      precision, xla, sizes, command))
    return workers


def plan_workers(args: argparse.Namespace, work_dir: Path, skipped: dict) -> list[Worker]:
    """Return one worker per model, precision and XLA setting, the serving workers and the
    matrix-product worker. Contenders named in `skipped` get no worker."""
    workers = _train_workers(args, skipped)
    if args.serve:
        for precision in args.serve_precisions:
            command = worker_command("--role", "serve", "--precision", precision, "--xla", "off",
                                     "--work-dir", str(work_dir / precision), *_model_options(args))
            workers.append(Worker(f"serve:zoo:{precision}:off", "serve", contenders.ZOO,
                                  precision, "off", sorted(args.sizes), command))
    command = worker_command("--role", "peak", "--device", args.device)
    workers.append(Worker("peak", "peak", "", "", "off", [], command))
    return workers


def rotated(items: list, shift: int) -> list:
    """Return `items` rotated left by `shift` places."""
    if not items:
        return items
    shift %= len(items)
    return items[shift:] + items[:shift]


def _describe_throughput(record: dict) -> str:
    if "error" in record:
        return f"error: {record['error']}"
    memory = f"peak RSS {record['peak_rss_mb']:.0f} MB"
    if not record["step_seconds"]:
        calls = ", ".join(f"{value:.1f}" for value in record["warmup_seconds"])
        return f"untimed calls {calls} s, {memory}"
    steps = " ".join(f"{value:.2f}" for value in record["step_seconds"])
    return f"{summary.images_per_second(record):8.2f} images/s  ({steps} s, {memory})"


def _describe_latency(record: dict) -> str:
    if "error" in record:
        return f"error: {record['error']}"
    return ", ".join(f"{kind} {statistics.median(values) * 1000:.1f} ms"
                     for kind, values in record["latency_seconds"].items())


def _describe_matmul(record: dict) -> str:
    if "error" in record:
        return f"error: {record['error']}"
    return f"{statistics.median(record['flops_per_second']) / 1e9:.1f} GFLOP/s"


class Schedule:
    """Sends the requests of each round to the workers and collects the replies as records."""

    def __init__(self, args: argparse.Namespace, pool: WorkerPool, workers: list[Worker]):
        self.args = args
        self.pool = pool
        self.train_workers = [w for w in workers if w.role == "train"]
        self.serve_workers = [w for w in workers if w.role == "serve"]
        self.peak_worker = next(w for w in workers if w.role == "peak")
        self.records: list[dict] = []
        self.round_index = 0

    def run_round(self, round_index: int) -> None:
        """Run every measurement once, interleaved step by step across the models."""
        self.round_index = round_index
        # Ascending sizes, so that in the first round each size's peak RSS reading is its own.
        for size in sorted(set(self.args.sizes) | set(self.args.mixed_sizes)):
            active = [w for w in self.train_workers if size in w.sizes and w.alive]
            active = rotated(active, round_index)
            for task in ("train", "infer"):
                self._untimed_calls(task, size, active)
                self._interleaved_steps(task, size, active)
            self._serve_latency(size)

    def _progress(self, size: int, text: str) -> None:
        print(f"round {self.round_index + 1}/{self.args.rounds}  {size}x{size}  {text}", flush=True)

    def _record(self, task: str, worker: Worker, size: int, batch: int, reply: dict) -> dict:
        record = {"task": task, "round": self.round_index, "worker": worker.key,
                  "contender": worker.contender, "precision": worker.precision,
                  "xla": worker.xla, "size": size, "batch": batch, **reply}
        self.records.append(record)
        return record

    def _untimed_calls(self, task: str, size: int, active: list[Worker]) -> None:
        """Trace the graph and warm up each worker that has not yet run `task` at `size`."""
        for worker in active:
            if (task, size) in worker.seen:
                continue
            worker.seen.add((task, size))
            reply = self.pool.request(worker, {"task": task, "size": size, "steps": 0,
                                               "warmup": 1 + self.args.warmup_steps})
            record = self._record(task, worker, size, self.args.batch_size, reply)
            self._progress(size, f"{task:<5}  warm-up    {worker.label():<42} "
                                 f"{_describe_throughput(record)}")

    def _interleaved_steps(self, task: str, size: int, active: list[Worker]) -> None:
        """Give each model one timed step in turn, so a change in load hits all of them."""
        steps = {w.key: self.args.steps if w.precision == "float32" else self.args.mixed_steps
                 for w in active}
        for step in range(max(steps.values(), default=0)):
            stepped = [w for w in active if w.alive and step < steps[w.key]]
            for worker in stepped:
                reply = self.pool.request(worker, {"task": task, "size": size, "steps": 1,
                                                   "warmup": 0})
                record = self._record(task, worker, size, self.args.batch_size, reply)
                self._progress(size, f"{task:<5}  step {step + 1}/{steps[worker.key]}   "
                                     f"{worker.label():<42} {_describe_throughput(record)}")
            if task == "train":
                dtypes = {summary.MATMUL_DTYPES[w.precision] for w in stepped}
                for dtype in sorted(dtypes, key=list(summary.MATMUL_DTYPES.values()).index):
                    self._measure_peak(dtype, size)

    def _measure_peak(self, dtype: str, size: int) -> None:
        """Time the matrix product of `dtype`. `size` records which training steps it followed."""
        worker = self.peak_worker
        warmup = 0 if dtype in worker.seen else 1
        worker.seen.add(dtype)
        reply = self.pool.request(worker, {
            "task": "matmul", "dtype": dtype, "n": self.args.matmul_size,
            "calls": self.args.matmul_calls, "warmup": warmup, "repeats": self.args.matmul_repeats})
        record = {"task": "matmul", "round": self.round_index, "size": size, "dtype": dtype,
                  "n": self.args.matmul_size, **reply}
        self.records.append(record)
        n = self.args.matmul_size
        self._progress(size, f"matmul {n}x{n} {dtype:<9} {_describe_matmul(record)}")

    def _serve_latency(self, size: int) -> None:
        """Time the SavedModel signature against direct calls at every latency batch."""
        for worker in self.serve_workers:
            if size not in worker.sizes or not worker.alive:
                continue
            for batch in self.args.latency_batches:
                # The eager call and predict_on_batch are slow references, timed at batch 1 only.
                kinds = ["signature", "function"]
                if batch == 1:
                    kinds += ["eager", "predict_on_batch"]
                warmup = 0 if ("serve", size, batch) in worker.seen else 1
                worker.seen.add(("serve", size, batch))
                reply = self.pool.request(worker, {
                    "task": "serve", "size": size, "batch": batch, "warmup": warmup,
                    "repeats": self.args.latency_repeats, "kinds": kinds})
                record = self._record("serve", worker, size, batch, reply)
                self._progress(size, f"serve  batch {batch:<4} {worker.label():<42} "
                                     f"{_describe_latency(record)}")
