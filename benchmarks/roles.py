"""The timed measurements of one benchmark worker: training, serving and the matrix product.

- `TrainRole` builds one contender and times `train_on_batch` steps and `predict_on_batch`
  calls at any image size.
- `ServeRole` exports the zoo's `unet` as a SavedModel with `zoo.export`, reloads its
  `serving_default` signature, and times it on uint8 images against direct calls of the same
  Keras model on the same images as float32.
- `PeakRole` times a square matrix product, the peak FLOP/s reference.

Peak memory is `ru_maxrss` of the worker process (its peak resident set size). It includes the
TensorFlow runtime and the model, and it only grows. The parent visits the image sizes in
ascending order in the first round, so each size's first reading is that size's peak.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import resource
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import contenders

logger = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    # ru_maxrss is in kibibytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def release_free_memory() -> None:
    """Return freed heap memory to the OS, so an idle worker stays small while others run."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the idle worker keeps its freed memory.


def runtime_info() -> dict:
    """Return the memory, thread settings and library versions of this process."""
    return {
        "rss_mb": current_rss_mb(), "peak_rss_mb": peak_rss_mb(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0]},
    }


def setup_device(device: str) -> None:
    """Hide the GPUs for `device` "cpu". For "gpu", check that one exists and let the workers
    share it."""
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return
    if not gpus:
        raise RuntimeError("--device gpu was requested, but TensorFlow sees no GPU.")
    for gpu in gpus:
        # Without memory growth the first worker reserves all GPU memory and the others fail.
        tf.config.experimental.set_memory_growth(gpu, True)


class GpuMemory:
    """Peak GPU memory of one request through `tf.config.experimental` (GPU only)."""

    def __init__(self, device: str):
        self.enabled = device == "gpu"

    def reset(self) -> None:
        if self.enabled:
            tf.config.experimental.reset_memory_stats("GPU:0")

    def peak_mb(self) -> float | None:
        if not self.enabled:
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def random_batch(batch: int, size: int, channels: int, num_classes: int, seed: int = 0):
    """Return uint8 images and int32 class-id masks of one random batch."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(batch, size, size, channels), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=(batch, size, size), dtype=np.int32)
    return pixels, labels


def timed_calls(function, count: int) -> list[float]:
    """Call `function` `count` times and return each call's wall time in seconds."""
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


class TrainRole:
    """Times training steps and inference calls of one contender at any image size."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.gpu_memory = GpuMemory(args.device)
        self.model = contenders.build(args.contender, (None, None, args.channels),
                                      args.num_classes, args.depth, args.base_filters)
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3),
                           loss=keras.losses.SparseCategoricalCrossentropy(),
                           jit_compile=args.xla == "on")
        self.batches = {}

    def description(self) -> dict:
        """Return the parameter count and the forward FLOPs per image at each of `--sizes`."""
        flops = {str(size): contenders.forward_flops(
                     self.args.contender, (size, size, self.args.channels), self.args.num_classes,
                     self.args.depth, self.args.base_filters)
                 for size in self.args.sizes}
        return {"parameters": self.model.count_params(), "forward_flops": flops}

    def _batch(self, size: int):
        if size not in self.batches:
            pixels, labels = random_batch(self.args.batch_size, size, self.args.channels,
                                          self.args.num_classes)
            # Tensors made once, so no step pays for converting NumPy input.
            self.batches[size] = (tf.constant(pixels.astype("float32") / 255.0),
                                  tf.constant(labels))
        return self.batches[size]

    def _timed(self, request: dict, call) -> dict:
        self.gpu_memory.reset()
        warmup = timed_calls(call, request["warmup"])
        seconds = timed_calls(call, request["steps"])
        return {"warmup_seconds": warmup, "step_seconds": seconds,
                "images": self.args.batch_size * len(seconds),
                "peak_rss_mb": peak_rss_mb(), "gpu_peak_mb": self.gpu_memory.peak_mb()}

    def train(self, request: dict) -> dict:
        images, labels = self._batch(request["size"])
        # train_on_batch returns the loss as a NumPy value, so the step has finished on return.
        return self._timed(request, lambda: self.model.train_on_batch(images, labels))

    def infer(self, request: dict) -> dict:
        images, _ = self._batch(request["size"])
        return self._timed(request, lambda: self.model.predict_on_batch(images))


class ServeRole:
    """Times the exported `serving_default` signature against direct calls of the model."""

    def __init__(self, args: argparse.Namespace):
        from zoo import export

        self.args = args
        self.model = contenders.build(contenders.ZOO, (None, None, args.channels),
                                      args.num_classes, args.depth, args.base_filters)
        path = export.export_for_serving(self.model, base_dir=args.work_dir, name="unet")
        logger.info("Exported the SavedModel to %s", path)
        self.signature = export.load_for_serving(path)
        spec = tf.TensorSpec([None, None, None, args.channels], tf.float32)

        # The direct call as a compiled graph, traced for any shape like the signature, so
        # the difference is the signature's own work: uint8 conversion, argmax, outputs.
        @tf.function(input_signature=[spec], jit_compile=args.xla == "on")
        def forward(images):
            return self.model(images, training=False)

        self.forward = forward
        self.batches = {}

    def _inputs(self, batch: int, size: int):
        if (batch, size) not in self.batches:
            pixels, _ = random_batch(batch, size, self.args.channels, self.args.num_classes)
            self.batches[(batch, size)] = (tf.constant(pixels),
                                           tf.constant(pixels.astype("float32") / 255.0))
        return self.batches[(batch, size)]

    def serve(self, request: dict) -> dict:
        """Time each kind of call in `request["kinds"]`, alternating the kinds."""
        pixels, images = self._inputs(request["batch"], request["size"])
        calls = {
            # .numpy() waits for the result, which a client receives in every case.
            "signature": lambda: self.signature(images=pixels)["probabilities"].numpy(),
            "function": lambda: self.forward(images).numpy(),
            "eager": lambda: self.model(images, training=False).numpy(),
            "predict_on_batch": lambda: self.model.predict_on_batch(images),
        }
        kinds = request["kinds"]
        for kind in kinds:
            timed_calls(calls[kind], request["warmup"])
        latencies = {kind: [] for kind in kinds}
        for repeat in range(request["repeats"]):
            # Rotating the order keeps any drift in machine load from favouring one kind.
            shift = repeat % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                latencies[kind] += timed_calls(calls[kind], 1)
        return {"latency_seconds": latencies, "peak_rss_mb": peak_rss_mb()}


class PeakRole:
    """Times an n x n matrix product, the reference for the achieved training FLOP/s."""

    DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}

    def __init__(self):
        self.operands = {}

        @tf.function(jit_compile=False)
        def product(a, b):
            return tf.linalg.matmul(a, b)

        self.product = product

    def matmul(self, request: dict) -> dict:
        """Time `repeats` runs of `calls` products of two random n x n matrices of `dtype`."""
        n, dtype, calls = request["n"], request["dtype"], request["calls"]
        if (n, dtype) not in self.operands:
            generator = tf.random.Generator.from_seed(0)
            self.operands[(n, dtype)] = tuple(
                tf.cast(generator.normal((n, n)), self.DTYPES[dtype]) for _ in range(2))
        a, b = self.operands[(n, dtype)]

        def run():
            for _ in range(calls):
                result = self.product(a, b)
            # Reading one element waits for the products, without copying the whole result.
            result[0, 0].numpy()

        timed_calls(run, request["warmup"])
        seconds = timed_calls(run, request["repeats"])
        flops = 2 * n**3 * calls
        return {"seconds": seconds, "flops_per_run": flops,
                "flops_per_second": [flops / value for value in seconds]}
