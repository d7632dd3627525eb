"""One benchmark worker process: it builds one model, then handles timing requests one at a time.

`benchmarks.unet_speed` starts one worker per model, precision and XLA setting, plus one
serving worker and one matrix-product worker (`benchmarks/roles.py` has the measurements).
A worker reads one JSON request per line on stdin and writes one JSON reply per line on
stdout. Everything else that would reach stdout (a peer package's banner, TensorFlow's
messages) goes to stderr instead, so it cannot break a reply. The first reply reports whether the
worker is ready. Log messages go to stderr, which the parent writes to its log file.

    {"task": "train", "size": 256, "steps": 1, "warmup": 0}   ->  {"step_seconds": [...], ...}
    {"task": "quit"}                                          ->  the worker exits
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import contenders  # noqa: E402  (no TensorFlow import)

logger = logging.getLogger("benchmarks.worker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.worker",
        description="One process of benchmarks.unet_speed. It reads JSON requests on stdin.")
    parser.add_argument("--role", choices=("train", "serve", "peak"), required=True)
    parser.add_argument("--contender", choices=contenders.CONTENDERS, default=contenders.ZOO)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--xla", choices=("off", "on"), default="off")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--base-filters", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="*", default=[],
                        help="image sizes at which to count the model's FLOPs at start-up")
    parser.add_argument("--peers-dir", type=Path, default=contenders.DEFAULT_PEERS_DIR)
    parser.add_argument("--work-dir", type=Path, help="folder for the SavedModel (role serve)")
    return parser.parse_args(argv)


def take_over_stdout():
    """Return a stream to the original stdout for the replies, and point stdout at stderr."""
    sys.stdout.flush()
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return replies


def reply(stream, message: dict) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def start_role(args: argparse.Namespace):
    """Build the role's model, and return its request handlers and its start-up description."""
    from benchmarks import roles  # imports TensorFlow

    roles.setup_device(args.device)
    if args.role == "peak":
        role = roles.PeakRole()
        return {"matmul": role.matmul}, {}

    from zoo import training

    # The dtype policy must be set before the model is built.
    training.set_precision(args.precision)
    if args.role == "serve":
        role = roles.ServeRole(args)
        return {"serve": role.serve}, {"parameters": role.model.count_params()}
    contenders.add_peers_to_path(args.peers_dir)
    role = roles.TrainRole(args)
    return {"train": role.train, "infer": role.infer}, role.description()


def serve_forever(stream, handlers: dict) -> None:
    """Handle requests from stdin until "quit" or the end of input."""
    from benchmarks import roles

    for line in sys.stdin:
        request = json.loads(line)
        task = request.get("task")
        if task == "quit":
            break
        if task not in handlers:
            reply(stream, {"error": f"unknown task {task!r} for this worker; expected one of "
                                    f"{sorted(handlers)} or 'quit'"})
            continue
        logger.info("%s %s", task, json.dumps({k: v for k, v in request.items() if k != "task"}))
        # Wall-clock times, comparable across processes, so a test can check that no two
        # workers computed at the same time.
        started = time.time()
        try:
            result = handlers[task](request)
        except Exception as error:  # noqa: BLE001  (reported to the parent, which goes on)
            logger.exception("%s failed", task)
            result = {"error": f"{type(error).__name__}: {error}"}
        # Before the reply, so the trim does not overlap the next worker's request.
        roles.release_free_memory()
        reply(stream, {**result, "request_started": started, "request_finished": time.time()})


def main(argv=None) -> int:
    args = parse_args(argv)
    stream = take_over_stdout()
    label = {"train": f"train {args.contender} {args.precision} xla {args.xla}",
             "serve": f"serve {args.precision}", "peak": "peak"}[args.role]
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"%(asctime)s worker {os.getpid()} ({label}) %(levelname)s "
                               "%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        handlers, description = start_role(args)
    except Exception as error:  # noqa: BLE001  (for example a peer that fails to import or build)
        logger.exception("start-up failed")
        reply(stream, {"ready": False, "error": f"{type(error).__name__}: {error}"})
        return 1

    from benchmarks import roles

    roles.release_free_memory()
    reply(stream, {"ready": True, "pid": os.getpid(), **description, **roles.runtime_info()})
    serve_forever(stream, handlers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
