"""Intersection over union (IoU) on class ids, for training and for evaluation.

`MeanIoU` and `ClassIoU` are Keras metrics for `model.compile`. They accept predictions as
class scores (probabilities or logits, shape (batch, height, width, classes)), which they
reduce with argmax, or as class ids (shape (batch, height, width) or (batch, height, width, 1)).
Masks are class ids. `MeanIoU` is named `mean_iou`, so `fit` logs `val_mean_iou`, which can
serve as a KerasTuner objective.

`confusion_matrix` and `iou_report` evaluate a trained model on a dataset with NumPy.

A class absent from both the masks and the predictions has no IoU (0 / 0). Both the Keras
metrics (as `keras.metrics.IoU` does) and `iou_report` leave it out of the mean, and
`iou_report` reports its IoU as None.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
from keras import ops

logger = logging.getLogger(__name__)

PACKAGE = "zoo"


def _class_ids(y_true, y_pred):
    """Return (y_true, y_pred) as class ids, reducing class scores in `y_pred` by argmax.

    `y_pred` contains class scores when it has one axis more than the mask and that axis has
    more than one entry. A single-channel `y_pred` is read as class ids.
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    true_rank = len(y_true.shape)
    if y_true.shape[-1] == 1 and true_rank == len(y_pred.shape):
        true_rank -= 1
    if len(y_pred.shape) == true_rank + 1 and y_pred.shape[-1] != 1:
        y_pred = ops.argmax(y_pred, axis=-1)
    return y_true, y_pred


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanIoU(keras.metrics.MeanIoU):
    """Mean IoU over the classes present in the masks or the predictions, named `mean_iou`.

    Example:
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...               metrics=[MeanIoU(num_classes=3)])
    """

    def __init__(self, num_classes, name="mean_iou", dtype=None, ignore_class=None):
        super().__init__(num_classes=num_classes, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=True, sparse_y_pred=True)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _class_ids(y_true, y_pred)
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "name": self.name,
            "dtype": self._dtype,
            "ignore_class": self.ignore_class,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassIoU(keras.metrics.IoU):
    """IoU of one class, named `iou_<class_id>` unless `name` is given.

    It reports 0 while the class is absent from both the masks and the predictions seen so far.
    """

    def __init__(self, num_classes, class_id, name=None, dtype=None, ignore_class=None):
        if not 0 <= class_id < num_classes:
            raise ValueError(
                f"Invalid class_id: {class_id!r}. Expected an int in [0, {num_classes})."
            )
        super().__init__(num_classes=num_classes, target_class_ids=[class_id],
                         name=name or f"iou_{class_id}", dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=True, sparse_y_pred=True)
        self.class_id = class_id

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _class_ids(y_true, y_pred)
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "class_id": self.class_id,
            "name": self.name,
            "dtype": self._dtype,
            "ignore_class": self.ignore_class,
        }


def class_iou_metrics(num_classes: int, class_names=None) -> list[ClassIoU]:
    """Create one `ClassIoU` per class, named `iou_<class name>` (default: the class id)."""
    names = _class_names(num_classes, class_names)
    return [ClassIoU(num_classes, class_id, name=f"iou_{name}") for class_id, name in
            enumerate(names)]


def _class_names(num_classes, class_names):
    if class_names is None:
        return [str(class_id) for class_id in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"Received {len(names)} class names for {num_classes} classes: {names}. "
            "Give one name per class, in class-id order."
        )
    return names


def _unpack_batch(batch):
    """Split a dataset element into (images, masks, sample weights or None)."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError(
            "Invalid dataset element: expected (images, masks) or (images, masks, "
            f"sample_weights), received {type(batch).__name__}."
        )
    images, masks = batch[0], batch[1]
    weights = batch[2] if len(batch) == 3 else None
    return images, masks, weights


def _predicted_ids(model, images, num_classes):
    scores = np.asarray(model.predict_on_batch(images))
    if scores.shape[-1] != num_classes:
        raise ValueError(
            f"The model returns {scores.shape[-1]} class scores per pixel but num_classes is "
            f"{num_classes}. Pass the model's number of classes."
        )
    return np.argmax(scores, axis=-1)


def confusion_matrix(model, dataset, num_classes: int) -> np.ndarray:
    """Count pixels by true and predicted class over `dataset` into an int64 (K, K) matrix.

    Row i, column j counts pixels of class i that the model assigned to class j. `dataset`
    yields (images, masks) or (images, masks, sample_weights) batches, for example a batched
    `tf.data.Dataset`. Pixels with sample weight 0 are skipped, and other weights count as 1.
    A mask value outside [0, num_classes) raises ValueError.
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for batch in dataset:
        images, masks, weights = _unpack_batch(batch)
        predicted = _predicted_ids(model, images, num_classes)
        truth = np.asarray(masks).astype(np.int64).reshape(predicted.shape)
        keep = np.ones(truth.shape, dtype=bool)
        if weights is not None:
            keep = np.asarray(weights).reshape(truth.shape) > 0

        truth, predicted = truth[keep], predicted[keep]
        invalid = truth[(truth < 0) | (truth >= num_classes)]
        if invalid.size:
            raise ValueError(
                f"Mask contains class id {invalid[0]} outside [0, {num_classes}). Remap the "
                "labels, or give such pixels sample weight 0 to skip them."
            )
        matrix += np.bincount(truth * num_classes + predicted,
                              minlength=num_classes * num_classes).reshape(matrix.shape)
    logger.info("Confusion matrix over %d pixels", matrix.sum())
    return matrix


def iou_report(confusion, class_names=None) -> dict:
    """Compute mean IoU, IoU per class and pixel accuracy from a confusion matrix.

    `confusion[i, j]` counts pixels of true class i predicted as class j. A class with no
    pixels in either its row or its column has IoU None and is left out of `mean_iou`.
    `mean_iou` and `pixel_accuracy` are None when the matrix counts no pixels at all.

    Returns:
        {"mean_iou": float | None, "per_class_iou": {name: float | None},
         "pixel_accuracy": float | None}, keyed by `class_names` (default "0", "1", ...).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"Invalid confusion matrix shape {confusion.shape}. Expected (K, K).")
    names = _class_names(confusion.shape[0], class_names)

    true_positives = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positives
    per_class = {
        name: (float(true_positives[i] / union[i]) if union[i] > 0 else None)
        for i, name in enumerate(names)
    }
    present = [value for value in per_class.values() if value is not None]
    total = confusion.sum()
    return {
        "mean_iou": float(np.mean(present)) if present else None,
        "per_class_iou": per_class,
        "pixel_accuracy": float(true_positives.sum() / total) if total > 0 else None,
    }
