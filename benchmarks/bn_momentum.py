"""Show why U-Nets with Keras's default BatchNormalization momentum fail on a short schedule.

Trains a zoo variant on the fixed membrane protocol (slices 0-23 train, 24-29 held out,
256x256, batch 4, Adam 1e-3, flips and 90-degree rotations, membrane = class 1, seed 0) once
per momentum, then scores the held-out slices twice with the same weights: with the moving
statistics that inference uses, and with each batch's own statistics. When the two disagree,
the moving statistics, not the weights, are what failed.

Example:
    python -m benchmarks.bn_momentum ../shared/data/membrane --epochs 20 --momentum 0.99 0.9
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bn_momentum", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="membrane folder with images/ and masks/ (0.png ... 29.png)")
    parser.add_argument("--model", "--variant", dest="variant", default="unet-spatialdrop", help="zoo variant (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default: %(default)s)")
    parser.add_argument("--momentum", type=float, nargs="+", default=[0.99, 0.9],
                        help="BatchNormalization momentum values to compare (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256,
                        help="image side in pixels; the number of steps, which decides how far the "
                             "moving statistics get, does not depend on it (default: %(default)s)")
    parser.add_argument("--output", default=None, help="write the results as JSON to this file")
    return parser.parse_args(argv)


def load_protocol_data(folder: str, size: int = 256):
    """Return (train images, train masks, held-out images, held-out masks) of the protocol."""
    from PIL import Image

    def load(index):
        image = Image.open(f"{folder}/images/{index}.png").convert("L").resize((size, size), Image.BILINEAR)
        mask = Image.open(f"{folder}/masks/{index}.png").convert("L").resize((size, size), Image.NEAREST)
        return np.asarray(image, np.float32)[..., None] / 255.0, (np.asarray(mask) < 128).astype(np.int32)

    train = [load(i) for i in range(24)]
    test = [load(i) for i in range(24, 30)]
    return (np.stack([x for x, _ in train]), np.stack([y for _, y in train]),
            np.stack([x for x, _ in test]), np.stack([y for _, y in test]))


def membrane_iou(probabilities, masks) -> float:
    predicted = np.asarray(probabilities).argmax(-1) == 1
    truth = masks == 1
    return float((predicted & truth).sum() / max(1, (predicted | truth).sum()))


def batch_statistics_predictions(model, images, batch_size=4):
    """Predict with BatchNormalization on each batch's statistics and dropout switched off.

    Call this after the moving-statistics evaluation: a training-mode call also updates the
    moving statistics.
    """
    import keras

    for layer in model.layers:
        if isinstance(layer, (keras.layers.Dropout, keras.layers.SpatialDropout2D)):
            layer.rate = 0.0  # a rate of 0 makes dropout the identity in training mode too
    outputs = [np.asarray(model(images[start:start + batch_size], training=True))
               for start in range(0, len(images), batch_size)]
    return np.concatenate(outputs)


def run(folder, variant, epochs, momentum, size=256):
    import keras
    import tensorflow as tf

    import zoo

    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = load_protocol_data(folder, size)

    def augment(x, y):
        k = tf.random.uniform([], 0, 4, tf.int32)
        x, y = tf.image.rot90(x, k), tf.image.rot90(y[..., None], k)[..., 0]
        flip = tf.random.uniform([]) > 0.5
        x = tf.cond(flip, lambda: tf.image.flip_left_right(x), lambda: x)
        y = tf.cond(flip, lambda: tf.image.flip_left_right(y[..., None])[..., 0], lambda: y)
        return x, y

    dataset = (tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(24, seed=0)
               .map(augment).batch(4).prefetch(2))
    model = zoo.build(variant, input_shape=(size, size, 1), num_classes=2, norm_momentum=momentum)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy())
    started = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - started
    moving = membrane_iou(model.predict(x_test, batch_size=4, verbose=0), y_test)
    batch = membrane_iou(batch_statistics_predictions(model, x_test), y_test)
    return {"variant": variant, "momentum": momentum, "size": size, "epochs": epochs, "steps": epochs * 6,
            "iou_moving_statistics": round(moving, 4), "iou_batch_statistics": round(batch, 4),
            "moving_init_weight_left": round(momentum ** (epochs * 6), 4),
            "training_seconds": round(seconds, 1)}


def main(argv=None):
    args = parse_args(argv)
    results = []
    for momentum in args.momentum:
        print(f"Training {args.variant} with BatchNormalization momentum {momentum} ...", flush=True)
        result = run(args.folder, args.variant, args.epochs, momentum, args.size)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
