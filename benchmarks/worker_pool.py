"""The parent's side of the benchmark workers: start them, send requests, stop them.

Each worker (`benchmarks/worker.py`) is one process that reads one JSON request per line on
stdin and writes one JSON reply per line on stdout. `WorkerPool.request` writes a request and
blocks until the reply, and the workers are started one after another, so at most one worker
computes at any moment. The workers' stderr goes to one log file.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Worker:
    """One worker process and the parent's record of it.

    `role` is "train", "serve" or "peak". `seen` contains the (task, size, ...) keys that the
    worker has already traced, so only their first call is untimed.
    """

    key: str
    role: str
    contender: str
    precision: str
    xla: str
    sizes: list
    command: list
    process: subprocess.Popen | None = None
    description: dict = field(default_factory=dict)
    error: str | None = None
    seen: set = field(default_factory=set)

    @property
    def alive(self) -> bool:
        return self.error is None and self.process is not None

    def label(self) -> str:
        if self.role == "peak":
            return "matmul peak"
        if self.role == "serve":
            return f"SavedModel {self.precision}"
        return f"{self.contender} {self.precision} xla {self.xla}"


def worker_environment(device: str) -> dict:
    """Return the workers' environment: unbuffered output, quiet TensorFlow, the repository
    on PYTHONPATH, and no visible GPU for `device` "cpu"."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    paths = [str(REPO_ROOT), os.environ.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


class WorkerPool:
    """Starts the workers, sends them requests one at a time and stops them at the end."""

    def __init__(self, log_path: Path, timeout: float, device: str):
        self.log = open(log_path, "a", encoding="utf-8")
        self.timeout = timeout
        self.env = worker_environment(device)
        self.workers: list[Worker] = []

    def start(self, worker: Worker) -> None:
        """Start `worker` and wait until it is ready or has failed (then `worker.error` is set).

        The start-up (imports, building the model, counting FLOPs, exporting) computes too,
        so the caller starts the workers one after another.
        """
        # A session of its own keeps Ctrl+C in the terminal from reaching the worker, so the
        # parent can stop it with "quit". A worker also exits when its stdin closes.
        worker.process = subprocess.Popen(
            worker.command, cwd=REPO_ROOT, env=self.env, text=True, bufsize=1,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            start_new_session=True)
        self.workers.append(worker)
        message = self._read(worker)
        if message.get("ready"):
            worker.description = message
        elif worker.error is None:
            self._fail(worker, message.get("error", "no start-up message"))

    def request(self, worker: Worker, message: dict) -> dict:
        """Send one request to `worker` and return its reply. A worker that fails is stopped."""
        if not worker.alive:
            return {"error": worker.error}
        try:
            worker.process.stdin.write(json.dumps(message) + "\n")
            worker.process.stdin.flush()
        except OSError as error:  # BrokenPipeError included: the worker has exited
            self._fail(worker, f"sending the request failed: {error}")
            return {"error": worker.error}
        return self._read(worker)

    def _read(self, worker: Worker) -> dict:
        ready, _, _ = select.select([worker.process.stdout], [], [], self.timeout)
        if not ready:
            self._fail(worker, f"no reply within --task-timeout {self.timeout:.0f} s")
            return {"error": worker.error}
        line = worker.process.stdout.readline()
        if not line:
            code = worker.process.wait()
            self._fail(worker, f"the worker exited with code {code}; see {self.log.name}")
            return {"error": worker.error}
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            self._fail(worker, f"invalid reply line {line[:200]!r}")
            return {"error": worker.error}

    def _fail(self, worker: Worker, error: str) -> None:
        worker.error = error
        if worker.process is not None and worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        logger.error("%s (pid %s) failed: %s", worker.label(),
                     worker.process.pid if worker.process else None, error)

    def stop(self) -> None:
        """Ask every running worker to quit, kill those that do not within 60 s, close the log."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is not None:
                continue
            try:
                process.stdin.write(json.dumps({"task": "quit"}) + "\n")
                process.stdin.close()
                process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired) as error:
                logger.warning("%s (pid %s) did not quit (%r), so it was killed",
                               worker.label(), process.pid, error)
                process.kill()
                process.wait()
        self.log.close()


def worker_command(*options: str) -> list[str]:
    """Return the command line of one worker process with `options`."""
    return [sys.executable, "-m", "benchmarks.worker", *options]
