"""Export a segmentation model as a SavedModel for TensorFlow Serving.

The export is written to `<base_dir>/<name>/<version>/`, the layout TensorFlow Serving scans.
Its `serving_default` signature takes a batch of uint8 images, shape (batch, height, width,
channels) with any height and width, and returns

    {"class_ids": int32 (batch, height, width),
     "probabilities": float32 (batch, height, width, classes)}

at the input size. Scaling to [0, 1], resizing for fixed-size models and the softmax for
logit heads all run inside the graph, so a client sends raw pixels.

Example:
    >>> path = export_for_serving(model, base_dir="saved_models")
    >>> serve = load_for_serving(path)
    >>> serve(images=tf.zeros((1, 97, 131, 3), tf.uint8))["class_ids"].shape
    TensorShape([1, 97, 131])
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

SIGNATURE_NAME = "serving_default"
HEAD_LAYER_NAME = "head"
SUPPORTED_ACTIVATIONS = ("softmax", "sigmoid", "linear")


def output_activation(model: keras.Model) -> str:
    """Return the final activation of `model`: "softmax", "sigmoid" or "linear" (logits).

    It reads the layer named `head` (the zoo's naming scheme) or else the model's last layer.
    """
    try:
        layer = model.get_layer(HEAD_LAYER_NAME)
    except ValueError:
        layer = model.layers[-1]
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = layer.get_config().get("activation")
    if activation not in SUPPORTED_ACTIVATIONS:
        raise ValueError(
            f"Unsupported output activation {activation!r} of layer {layer.name!r}. Expected one "
            f"of {SUPPORTED_ACTIVATIONS}; name the model's final activation layer 'head'."
        )
    return activation


def _probabilities(scores, activation, num_classes):
    """Return float32 probabilities from the model output, applying the missing activation."""
    scores = tf.cast(scores, tf.float32)
    if activation != "linear":
        return scores
    # A single logit channel is a binary sigmoid head, because a softmax over it is always 1.
    return tf.nn.sigmoid(scores) if num_classes == 1 else tf.nn.softmax(scores, axis=-1)


def _class_ids(probabilities, num_classes):
    if num_classes == 1:
        return tf.cast(probabilities[..., 0] >= 0.5, tf.int32)
    return tf.argmax(probabilities, axis=-1, output_type=tf.int32)


def make_serving_function(model: keras.Model):
    """Return a function from uint8 images (B, H, W, C) to the serving output dict.

    Models with a fixed input height or width get the images resized (bilinear) to that size,
    and their probabilities resized back (bilinear) before the argmax. Probabilities are cast
    to float32, so a mixed precision model still returns float32. A single-channel output is
    read as a binary sigmoid head: class id 1 where the probability is at least 0.5.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs, but export supports only one image input and one score output."
        )
    _, fixed_height, fixed_width, channels = model.input_shape
    num_classes = model.output_shape[-1]
    activation = output_activation(model)

    def serve(images):
        # A served signature does not check the static channel count, so check it at run time.
        tf.debugging.assert_equal(
            tf.shape(images)[-1], channels,
            message=f"Invalid images: expected {channels} channel(s), as the model was built. "
                    f"Convert the images to {channels} channel(s) before sending them.")
        inputs = tf.cast(images, tf.float32) / 255.0
        input_size = tf.shape(images)[1:3]
        resize = fixed_height is not None or fixed_width is not None
        if resize:
            model_size = tf.stack([
                input_size[0] if fixed_height is None else fixed_height,
                input_size[1] if fixed_width is None else fixed_width,
            ])
            inputs = tf.image.resize(inputs, model_size, method="bilinear")

        scores = model(inputs, training=False)
        probabilities = _probabilities(scores, activation, num_classes)
        if resize:
            probabilities = tf.image.resize(probabilities, input_size, method="bilinear")
        return {"class_ids": _class_ids(probabilities, num_classes),
                "probabilities": probabilities}

    return serve


def _image_spec(model):
    channels = model.input_shape[-1]
    return tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")


def _checked_name(name):
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(
            f"Invalid export name: {name!r}. Expected one directory name without path "
            "separators, for example 'unet'."
        )
    return name


def _existing_versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return [int(entry.name) for entry in model_dir.iterdir()
            if entry.is_dir() and re.fullmatch(r"[0-9]+", entry.name)]


def _checked_version(model_dir: Path, version) -> int:
    """Return `version`, or the next free version when it is None.

    An existing `version` raises FileExistsError, so an export never replaces one.
    """
    if version is None:
        return max(_existing_versions(model_dir), default=0) + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"Invalid version: {version!r}. Expected an int >= 1.")
    target = model_dir / str(version)
    if target.exists():
        raise FileExistsError(
            f"Export version {target} already exists and is never overwritten. Pass another "
            "version, or omit it to use the next free one."
        )
    return version


def _sync_tree(root: Path) -> None:
    """Flush the files and directories under `root` to disk, so a rename publishes them whole."""
    for directory, _, files in os.walk(root):
        for file_name in files:
            with open(os.path.join(directory, file_name), "rb") as handle:
                os.fsync(handle.fileno())
        _sync_directory(directory)


def _sync_directory(path) -> None:
    if os.name != "posix":
        return  # NOTE: directory entries are not flushed on Windows, which has no directory fsync.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_archive(model: keras.Model, path: Path) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_NAME,
        fn=make_serving_function(model),
        input_signature=[_image_spec(model)],
    )
    archive.write_out(str(path), verbose=False)


def export_for_serving(model: keras.Model, base_dir="saved_models", name: str | None = None,
                       version: int | None = None) -> Path:
    """Write `model` as a SavedModel to `base_dir/<name>/<version>/` and return that path.

    `name` defaults to `model.name`, and `version` to one more than the largest numeric
    subdirectory (1 for the first export). An existing version raises FileExistsError.
    The SavedModel is written to a hidden temporary directory beside the versions and then
    renamed into place, so a failed export leaves no version directory. TensorFlow Serving
    treats only integer directory names as versions, so it ignores the temporary one.
    """
    model_dir = Path(base_dir) / _checked_name(name or model.name)
    version = _checked_version(model_dir, version)
    target = model_dir / str(version)
    model_dir.mkdir(parents=True, exist_ok=True)

    # The archive writer creates this directory, with the usual permissions (umask).
    temporary = model_dir / f".{version}.partial-{uuid.uuid4().hex[:12]}"
    try:
        _write_archive(model, temporary)
        _sync_tree(temporary)
        try:
            os.rename(temporary, target)
        except OSError as error:
            raise FileExistsError(
                f"Export version {target} was created by another process during this export. "
                "Export again without a version to use the next free one."
            ) from error
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _sync_directory(model_dir)
    logger.info("Exported model %r to %s", model.name, target)
    return target


def load_for_serving(path):
    """Load the SavedModel at `path` and return its `serving_default` signature.

    Call the result with a keyword argument: `serve(images=uint8_batch)`.
    """
    return tf.saved_model.load(str(path)).signatures[SIGNATURE_NAME]


def verify_export(model: keras.Model, path, images) -> float:
    """Reload the export at `path` and return the max abs difference of its probabilities.

    The reference runs the same preprocessing eagerly on `model`. `images` is a uint8 array
    of shape (batch, height, width, channels).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"Invalid images: dtype {images.dtype}, shape {images.shape}. Expected uint8 "
            "(batch, height, width, channels)."
        )
    serve = load_for_serving(path)
    exported = serve(images=tf.constant(images))["probabilities"].numpy()
    expected = make_serving_function(model)(tf.constant(images))["probabilities"].numpy()
    difference = float(np.max(np.abs(exported - expected)))
    logger.info("Export %s: max abs difference of probabilities %.3g", path, difference)
    return difference
