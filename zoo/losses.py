"""Segmentation losses on sparse class-id masks: Dice, focal and cross-entropy + Dice.

Every loss takes masks of class ids, shape (batch, height, width) or (batch, height, width, 1),
and softmax probabilities of shape (batch, height, width, classes), or logits when
`from_logits=True`. The classes are taken to be mutually exclusive (a softmax head).

Sample weights may be per image, shape (batch,), or per pixel, shape (batch, height, width).
Per-pixel weights scale each pixel's share of the Dice sums and of the cross-entropy mean.

The losses are registered as serializable, so a compiled model saved to `.keras` reloads with
`keras.saving.load_model(path, safe_mode=True)` once `zoo.losses` has been imported.

Example:
    >>> model.compile(optimizer="adam", loss=zoo.losses.get("ce_dice"))
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

PACKAGE = "zoo"


def _class_ids(y_true, y_pred):
    """Return `y_true` as int32 class ids with the shape of `y_pred` minus its class axis."""
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    return ops.cast(y_true, "int32")


def _probabilities(y_pred, from_logits):
    y_pred = ops.cast(y_pred, "float32")
    return ops.softmax(y_pred, axis=-1) if from_logits else y_pred


def _log_probabilities(y_pred, from_logits):
    y_pred = ops.cast(y_pred, "float32")
    if from_logits:
        return ops.log_softmax(y_pred, axis=-1)
    return ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))


def _split_sample_weight(sample_weight, y_pred):
    """Split `sample_weight` into (pixel weights or None, per-image weights or None)."""
    if sample_weight is None:
        return None, None
    sample_weight = ops.convert_to_tensor(sample_weight, dtype="float32")
    rank = len(sample_weight.shape)
    if rank == len(y_pred.shape) and sample_weight.shape[-1] == 1:
        return ops.squeeze(sample_weight, axis=-1), None
    if rank == len(y_pred.shape) - 1:
        return sample_weight, None
    if rank <= 1:
        return None, sample_weight
    raise ValueError(
        f"Invalid sample_weight shape {tuple(sample_weight.shape)} for predictions of shape "
        f"{tuple(y_pred.shape)}. Expected a scalar, (batch,) or (batch, height, width)."
    )


def _reduce_per_image(values, reduction):
    """Reduce per-image loss values the way `keras.losses.Loss` (Keras 3.15) reduces them.

    The pixel weights are already inside `values`, so "mean_with_sample_weight" divides by the
    batch size like "sum_over_batch_size". The mean reductions are also divided by the number of
    `tf.distribute` replicas, as Keras does, because the per-replica losses are summed.
    """
    if reduction in (None, "none"):
        return values
    total = ops.sum(values)
    if reduction == "sum":
        return total
    mean = total / ops.cast(ops.shape(values)[0], total.dtype)
    replicas = _replica_count()
    return mean / replicas if replicas > 1 else mean


def _replica_count():
    """Return the number of replicas of the current `tf.distribute` strategy (1 off TensorFlow)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


class _PerImageLoss(keras.losses.Loss):
    """Base of the losses that reduce each image to one value before the batch reduction.

    Per-pixel weights cannot be applied after such a reduction, so `__call__` passes them into
    `per_image_loss` and reduces the result itself. Per-image weights take the Keras path.
    """

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        pixel_weight, image_weight = _split_sample_weight(sample_weight, y_pred)
        if pixel_weight is None:
            return super().__call__(y_true, y_pred, sample_weight=image_weight)
        with keras.name_scope(self.name):
            values = self.per_image_loss(ops.convert_to_tensor(y_true), y_pred, pixel_weight)
            return _reduce_per_image(values, self.reduction)

    def call(self, y_true, y_pred):
        return self.per_image_loss(y_true, y_pred, None)

    def per_image_loss(self, y_true, y_pred, pixel_weight):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


def soft_dice_per_image(y_true, probabilities, pixel_weight=None, smooth=1.0):
    """Return 1 - soft Dice per image, averaged over the classes, shape (batch,).

    Dice of class c is (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth), summed over the
    pixels of one image. A class absent from both the mask and the prediction therefore scores
    Dice 1 (loss 0), and a class absent from the mask but predicted with total probability m
    scores smooth / (m + smooth). `smooth` > 0 keeps the loss finite on empty masks.
    """
    num_classes = probabilities.shape[-1]
    targets = ops.one_hot(_class_ids(y_true, probabilities), num_classes, dtype="float32")
    if pixel_weight is not None:
        weight = ops.expand_dims(ops.cast(pixel_weight, "float32"), axis=-1)
        targets = targets * weight
        probabilities = probabilities * weight

    spatial_axes = tuple(range(1, len(probabilities.shape) - 1))
    intersection = ops.sum(probabilities * targets, axis=spatial_axes)
    total = ops.sum(probabilities, axis=spatial_axes) + ops.sum(targets, axis=spatial_axes)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - ops.mean(dice, axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DiceLoss(_PerImageLoss):
    """Soft multi-class Dice loss, 1 - mean over classes of the per-image soft Dice.

    Empty classes are handled by the `smooth` term, not by excluding them: a class absent from
    both the mask and the prediction counts as a perfect match. So an all-background mask with
    an all-background prediction gives loss 0, and any empty mask gives a finite loss.

    Args:
        from_logits: whether `y_pred` contains logits, to which a softmax is applied first.
        smooth: positive constant added to the numerator and the denominator.
    """

    def __init__(self, from_logits=False, smooth=1.0, name="dice_loss",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction, dtype=dtype)
        if not smooth > 0:
            raise ValueError(
                f"Invalid smooth: {smooth!r}. Expected a number > 0, which keeps the Dice loss "
                "finite on masks without some classes."
            )
        self.smooth = float(smooth)

    def per_image_loss(self, y_true, y_pred, pixel_weight):
        probabilities = _probabilities(y_pred, self.from_logits)
        return soft_dice_per_image(y_true, probabilities, pixel_weight, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossEntropyDiceLoss(_PerImageLoss):
    """Weighted sum of sparse categorical cross-entropy and soft Dice loss, per image.

    Cross-entropy is averaged over the pixels of each image, with per-pixel weights multiplied
    in before the mean (as Keras does, without dividing by the weight sum). Dice is `DiceLoss`.
    """

    def __init__(self, from_logits=False, crossentropy_weight=1.0, dice_weight=1.0, smooth=1.0,
                 name="ce_dice_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction, dtype=dtype)
        if not smooth > 0:
            raise ValueError(f"Invalid smooth: {smooth!r}. Expected a number > 0.")
        self.crossentropy_weight = float(crossentropy_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)

    def per_image_loss(self, y_true, y_pred, pixel_weight):
        num_classes = y_pred.shape[-1]
        targets = ops.one_hot(_class_ids(y_true, y_pred), num_classes, dtype="float32")
        crossentropy = -ops.sum(targets * _log_probabilities(y_pred, self.from_logits), axis=-1)
        if pixel_weight is not None:
            crossentropy = crossentropy * ops.cast(pixel_weight, "float32")
        crossentropy = ops.mean(crossentropy, axis=tuple(range(1, len(crossentropy.shape))))

        probabilities = _probabilities(y_pred, self.from_logits)
        dice = soft_dice_per_image(y_true, probabilities, pixel_weight, self.smooth)
        return self.crossentropy_weight * crossentropy + self.dice_weight * dice

    def get_config(self):
        return {
            **super().get_config(),
            "crossentropy_weight": self.crossentropy_weight,
            "dice_weight": self.dice_weight,
            "smooth": self.smooth,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FocalLoss(keras.losses.Loss):
    """Sparse multi-class focal loss, -alpha_t * (1 - p_t)**gamma * log(p_t) per pixel.

    p_t is the predicted probability of the true class. `gamma` = 0 and no `alpha` give plain
    cross-entropy. `alpha` is None (no weighting), one number (scales every class alike) or one
    weight per class. Per-pixel sample weights are applied by Keras, like for cross-entropy.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """

    def __init__(self, gamma=2.0, alpha=None, from_logits=False, name="focal_loss",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not gamma >= 0:
            raise ValueError(f"Invalid gamma: {gamma!r}. Expected a number >= 0.")
        self.gamma = float(gamma)
        if alpha is None or isinstance(alpha, numbers.Real):
            self.alpha = alpha if alpha is None else float(alpha)
        else:
            self.alpha = [float(value) for value in alpha]
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        num_classes = y_pred.shape[-1]
        ids = _class_ids(y_true, y_pred)
        targets = ops.one_hot(ids, num_classes, dtype="float32")
        log_pt = ops.sum(targets * _log_probabilities(y_pred, self.from_logits), axis=-1)
        loss = -ops.power(1.0 - ops.exp(log_pt), self.gamma) * log_pt
        if isinstance(self.alpha, list):
            if len(self.alpha) != num_classes:
                raise ValueError(
                    f"FocalLoss has {len(self.alpha)} alpha weights but the predictions have "
                    f"{num_classes} classes. Give one alpha per class, or a single number."
                )
            loss = loss * ops.take(ops.convert_to_tensor(self.alpha, "float32"), ids)
        elif self.alpha is not None:
            loss = loss * self.alpha
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": self.alpha,
            "from_logits": self.from_logits,
        }


_FACTORIES = {
    "crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "ce_dice": CrossEntropyDiceLoss,
}


def get(name: str, **kwargs) -> keras.losses.Loss:
    """Create the loss called `name`, passing `kwargs` to its constructor.

    Example:
        >>> loss = get("focal", gamma=1.5, from_logits=True)
    """
    if name not in _FACTORIES:
        raise ValueError(f"Unknown loss: {name!r}. Expected one of {sorted(_FACTORIES)}.")
    return _FACTORIES[name](**kwargs)
