"""Time every layer of one model alone, forward and forward+backward, and sum by layer kind.

The breakdown explains a training throughput: which layers take the time, and how close the
convolutions come to the FLOP/s of a matrix product. Each layer runs in its own compiled
`tf.function` on random inputs of the shapes and dtypes it has inside the model, in training
mode, with the gradients of its inputs and weights for the backward pass. The sum over layers
leaves out what only the whole step has (the loss, the optimizer update, graph-level fusion),
so it is printed next to a measured `train_on_batch` step. It runs on the CPU, with any GPU
hidden.

    python -m benchmarks.layer_profile --precision float32 --size 128
    python -m benchmarks.layer_profile --precision mixed_bfloat16 --size 128 --batch-size 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import contenders, docs_blocks  # noqa: E402
from benchmarks.roles import setup_device  # noqa: E402
from benchmarks.summary import TRAINING_FLOPS_PER_FORWARD  # noqa: E402

DEFAULT_DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.layer_profile",
        description="Time each layer of a model alone (forward, and forward+backward) and sum "
                    "the times by layer kind.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--contender", choices=contenders.CONTENDERS, default=contenders.ZOO,
                        help="model to profile")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"),
                        default="float32", help="Keras dtype policy")
    parser.add_argument("--size", type=int, default=128, help="image height and width in pixels")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--base-filters", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per layer")
    parser.add_argument("--top", type=int, default=12, help="slowest single layers to list")
    parser.add_argument("--peers-dir", type=Path, default=contenders.DEFAULT_PEERS_DIR)
    parser.add_argument("--output", type=Path, help="JSON file for the per-layer times")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the generated block layer-profile-<precision> of --docs "
                             "with the Markdown tables; the rest of the file is kept as it is")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS,
                        help="Markdown page for --write-docs")
    return parser.parse_args(argv)


def layer_kind(layer) -> str:
    """Return a short name that groups layers doing the same work, e.g. `Conv2D 3x3`."""
    name = type(layer).__name__
    # In Keras 3, Conv2DTranspose is not a subclass of Conv2D.
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        kernel = "x".join(map(str, layer.kernel_size))
        mixed = keras.mixed_precision.global_policy().compute_dtype != "float32"
        float32_head = mixed and layer.dtype_policy.compute_dtype == "float32"
        return f"{name} {kernel}{', float32 head' if float32_head else ''}"
    return name


def layer_flops(layer, batch: int) -> int:
    """Return the forward FLOPs (2 x multiply-adds) of a convolution layer for `batch` images."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        _, height, width, in_channels = layer.input.shape
    elif isinstance(layer, keras.layers.Conv2D):
        _, height, width, _ = layer.output.shape
        in_channels = layer.input.shape[-1] // layer.groups
    else:
        return 0
    kh, kw = layer.kernel_size
    return 2 * kh * kw * in_channels * layer.filters * height * width * batch


def _random_input(symbolic, batch: int, generator):
    shape = (batch, *symbolic.shape[1:])
    return tf.cast(generator.uniform(shape), symbolic.dtype)


def _median_seconds(function, repeats: int) -> float:
    function()  # traces the graph and warms up the kernels
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def profile_layer(layer, batch: int, repeats: int, generator) -> dict:
    symbolic = layer.input
    inputs = ([_random_input(t, batch, generator) for t in symbolic]
              if isinstance(symbolic, (list, tuple)) else _random_input(symbolic, batch, generator))

    @tf.function
    def forward(values):
        return layer(values, training=True)

    @tf.function
    def forward_backward(values):
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs = layer(values, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32))
        sources = [values, [weight.value for weight in layer.trainable_weights]]
        return tape.gradient(loss, sources)

    def sync(result):
        # Reading one value of each output waits until the layer has finished.
        for tensor in tf.nest.flatten(result):
            if tensor is not None:
                tf.reshape(tensor, [-1])[0].numpy()

    return {
        "forward": _median_seconds(lambda: sync(forward(inputs)), repeats),
        "forward_backward": _median_seconds(lambda: sync(forward_backward(inputs)), repeats),
    }


def measure_step(model, batch: int, size: int, channels: int, num_classes: int,
                 repeats: int) -> float:
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((batch, size, size, channels), dtype=np.float32))
    labels = tf.constant(rng.integers(0, num_classes, (batch, size, size), dtype=np.int32))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(), jit_compile=False)
    return _median_seconds(lambda: model.train_on_batch(images, labels), repeats)


def markdown(rows: list, step: float, args: argparse.Namespace) -> str:
    """Return the times summed by layer kind and the slowest single layers as Markdown."""
    totals = defaultdict(lambda: {"count": 0, "forward": 0.0, "forward_backward": 0.0, "flops": 0})
    for row in rows:
        total = totals[row["kind"]]
        total["count"] += 1
        for key in ("forward", "forward_backward", "flops"):
            total[key] += row[key]
    summed = sum(row["forward_backward"] for row in rows)
    lines = [
        f"Per-layer profile: {args.contender}, {args.precision}, {args.size}x{args.size}, batch "
        f"{args.batch_size}. Sum of forward+backward over layers {summed:.2f} s; measured "
        f"train_on_batch step {step:.2f} s.",
        "",
        "| layer kind | layers | forward (ms) | forward+backward (ms) | share of sum | "
        "GFLOP/s forward+backward |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind, total in sorted(totals.items(), key=lambda item: -item[1]["forward_backward"]):
        # Forward+backward FLOPs are estimated as for the training FLOP/s of the benchmark.
        training_flops = TRAINING_FLOPS_PER_FORWARD * total["flops"]
        rate = f"{training_flops / total['forward_backward'] / 1e9:.1f}" if total["flops"] else ""
        lines.append(f"| {kind} | {total['count']} | {total['forward'] * 1000:.1f} | "
                     f"{total['forward_backward'] * 1000:.1f} | "
                     f"{100 * total['forward_backward'] / summed:.1f} % | {rate} |")
    lines += ["", f"Slowest {args.top} layers (forward+backward):", "",
              "| layer | kind | forward (ms) | forward+backward (ms) |",
              "| --- | --- | --- | --- |"]
    for row in sorted(rows, key=lambda item: -item["forward_backward"])[:args.top]:
        lines.append(f"| {row['layer']} | {row['kind']} | {row['forward'] * 1000:.1f} | "
                     f"{row['forward_backward'] * 1000:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    block = f"layer-profile-{args.precision}"
    if args.write_docs:
        # Fails now, before the profile runs, when the page lacks the block.
        docs_blocks.replace_in_text(args.docs.read_text(encoding="utf-8"), {block: ""})
    setup_device("cpu")
    # Every layer gets its own tf.function, which TensorFlow would warn about as retracing.
    tf.get_logger().setLevel(logging.ERROR)
    keras.mixed_precision.set_global_policy(args.precision)
    contenders.add_peers_to_path(args.peers_dir)
    model = contenders.build(args.contender, (args.size, args.size, args.channels),
                             args.num_classes, args.depth, args.base_filters)
    print(f"Profiling {args.contender} ({args.precision}) at {args.size}x{args.size}, batch "
          f"{args.batch_size}, {len(model.layers)} layers, median of {args.repeats} calls each",
          flush=True)

    generator = tf.random.Generator.from_seed(0)
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        times = profile_layer(layer, args.batch_size, args.repeats, generator)
        row = {"layer": layer.name, "kind": layer_kind(layer),
               "flops": layer_flops(layer, args.batch_size), **times}
        rows.append(row)
        print(f"  {layer.name:<24} {row['kind']:<28} forward {times['forward'] * 1000:9.1f} ms   "
              f"forward+backward {times['forward_backward'] * 1000:9.1f} ms", flush=True)

    step = measure_step(model, args.batch_size, args.size, args.channels, args.num_classes,
                        args.repeats)
    text = markdown(rows, step, args)
    print(text)
    if args.write_docs:
        docs_blocks.replace_blocks(args.docs, {block: text})
        print(f"Profile written to {args.docs}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()},
                                           "layers": rows, "train_step_seconds": step}, indent=2))
        print(f"Per-layer times written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
