"""Losses and IoU metrics: hand-computed values, empty masks, training and .keras reloading."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import losses, metrics

REPO_ROOT = Path(__file__).resolve().parents[1]


def random_probabilities(shape, seed=0):
    logits = np.random.default_rng(seed).normal(size=shape).astype("float32")
    return logits, np.asarray(tf.nn.softmax(logits, axis=-1))


def random_masks(shape, num_classes, seed=1):
    return np.random.default_rng(seed).integers(0, num_classes, size=shape).astype("int32")


def tiny_model():
    """Two convolutions and a softmax head, small enough to train for a few steps in a test."""
    inputs = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(3, 1, name="head_conv")(x)
    outputs = keras.layers.Activation("softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="tiny")


# Dice

def test_dice_hand_computed_value():
    # One image of two pixels, truth (0, 1), prediction class 0 on both, smooth 1:
    # class 0 Dice (2*1 + 1) / (2 + 1 + 1) = 0.75, class 1 Dice (0 + 1) / (0 + 1 + 1) = 0.5.
    y_true = np.array([[[0, 1]]], dtype="int32")
    y_pred = np.array([[[[1.0, 0.0], [1.0, 0.0]]]], dtype="float32")
    loss = float(losses.DiceLoss()(y_true, y_pred))
    assert loss == pytest.approx(1.0 - (0.75 + 0.5) / 2, abs=1e-6)


def test_dice_empty_masks_finite():
    y_true = np.zeros((2, 8, 8), dtype="int32")
    _, y_pred = random_probabilities((2, 8, 8, 3))
    loss = float(losses.DiceLoss()(y_true, y_pred))
    assert np.isfinite(loss)
    assert loss > 0


def test_dice_empty_masks_empty_prediction_zero():
    y_true = np.zeros((2, 8, 8), dtype="int32")
    y_pred = np.zeros((2, 8, 8, 3), dtype="float32")
    y_pred[..., 0] = 1.0
    assert float(losses.DiceLoss()(y_true, y_pred)) == pytest.approx(0.0, abs=1e-7)


def test_dice_from_logits_matches_softmax():
    logits, probabilities = random_probabilities((2, 6, 5, 3))
    y_true = random_masks((2, 6, 5), 3)
    from_logits = float(losses.DiceLoss(from_logits=True)(y_true, logits))
    from_probabilities = float(losses.DiceLoss()(y_true, probabilities))
    assert from_logits == pytest.approx(from_probabilities, abs=1e-6)


def test_dice_zero_pixel_weight_drops_pixel():
    _, y_pred = random_probabilities((1, 4, 5, 3))
    y_true = random_masks((1, 4, 5), 3)
    weights = np.ones((1, 4, 5), dtype="float32")
    weights[:, :, 3:] = 0.0
    weighted = float(losses.DiceLoss()(y_true, y_pred, sample_weight=weights))
    cropped = float(losses.DiceLoss()(y_true[:, :, :3], y_pred[:, :, :3]))
    assert weighted == pytest.approx(cropped, abs=1e-6)


def test_dice_mask_with_channel_axis():
    _, y_pred = random_probabilities((2, 4, 4, 3))
    y_true = random_masks((2, 4, 4), 3)
    weights = np.random.default_rng(2).random((2, 4, 4)).astype("float32")
    loss = losses.DiceLoss()
    expected = float(loss(y_true, y_pred, sample_weight=weights))
    with_channel = float(loss(y_true[..., None], y_pred, sample_weight=weights[..., None]))
    assert with_channel == pytest.approx(expected, abs=1e-7)


def test_dice_rejects_zero_smooth():
    with pytest.raises(ValueError, match="smooth"):
        losses.DiceLoss(smooth=0.0)


# Focal and cross-entropy + Dice

def test_focal_gamma_zero_is_crossentropy():
    logits, probabilities = random_probabilities((2, 5, 4, 3))
    y_true = random_masks((2, 5, 4), 3)
    focal = float(losses.FocalLoss(gamma=0.0, from_logits=True)(y_true, logits))
    crossentropy = keras.losses.SparseCategoricalCrossentropy()(y_true, probabilities)
    assert focal == pytest.approx(float(crossentropy), abs=1e-5)


def test_focal_hand_computed_with_alpha_and_weights():
    # Pixel 1 has p_t = 0.8 for class 0. Pixel 2 has p_t = 0.4 for class 1.
    y_true = np.array([[[0, 1]]], dtype="int32")
    y_pred = np.array([[[[0.8, 0.2], [0.6, 0.4]]]], dtype="float32")
    weights = np.array([[[1.0, 0.5]]], dtype="float32")
    loss = losses.FocalLoss(gamma=2.0, alpha=[0.25, 0.75])
    value = float(loss(y_true, y_pred, sample_weight=weights))
    first = 0.25 * 0.2**2 * -np.log(0.8)
    second = 0.75 * 0.6**2 * -np.log(0.4) * 0.5
    assert value == pytest.approx((first + second) / 2, rel=1e-5)


def test_focal_alpha_count_mismatch():
    _, y_pred = random_probabilities((1, 2, 2, 3))
    loss = losses.FocalLoss(alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match="2 alpha weights"):
        loss(random_masks((1, 2, 2), 3), y_pred)


def test_focal_and_ce_dice_finite_on_empty_masks():
    y_true = np.zeros((2, 8, 8), dtype="int32")
    y_pred = np.zeros((2, 8, 8, 3), dtype="float32")
    y_pred[..., 0] = 1.0
    for loss in (losses.FocalLoss(), losses.CrossEntropyDiceLoss()):
        value = float(loss(y_true, y_pred))
        assert np.isfinite(value), loss.name
        assert value == pytest.approx(0.0, abs=1e-5), loss.name


def test_ce_dice_is_weighted_sum():
    logits, probabilities = random_probabilities((2, 6, 6, 3))
    y_true = random_masks((2, 6, 6), 3)
    combined = losses.CrossEntropyDiceLoss(crossentropy_weight=0.3, dice_weight=2.0)
    crossentropy = float(keras.losses.SparseCategoricalCrossentropy()(y_true, probabilities))
    dice = float(losses.DiceLoss()(y_true, probabilities))
    assert float(combined(y_true, probabilities)) == pytest.approx(
        0.3 * crossentropy + 2.0 * dice, abs=1e-5)


def test_ce_dice_pixel_weights_reach_both_terms():
    _, probabilities = random_probabilities((2, 4, 4, 3))
    y_true = random_masks((2, 4, 4), 3)
    weights = np.random.default_rng(3).random((2, 4, 4)).astype("float32")
    combined = float(losses.CrossEntropyDiceLoss()(y_true, probabilities, sample_weight=weights))
    crossentropy = float(keras.losses.SparseCategoricalCrossentropy()(
        y_true, probabilities, sample_weight=weights))
    dice = float(losses.DiceLoss()(y_true, probabilities, sample_weight=weights))
    assert combined == pytest.approx(crossentropy + dice, abs=1e-5)


def test_per_image_weights_scale_loss():
    _, probabilities = random_probabilities((2, 4, 4, 3))
    y_true = random_masks((2, 4, 4), 3)
    loss = losses.DiceLoss(reduction=None)
    per_image = np.asarray(loss(y_true, probabilities))
    weighted = losses.DiceLoss()(y_true, probabilities, sample_weight=np.array([1.0, 0.0]))
    assert per_image.shape == (2,)
    assert float(weighted) == pytest.approx(per_image[0] / 2, abs=1e-6)


# Loss factory

@pytest.mark.parametrize("name, expected_type", [
    ("crossentropy", keras.losses.SparseCategoricalCrossentropy),
    ("dice", losses.DiceLoss),
    ("focal", losses.FocalLoss),
    ("ce_dice", losses.CrossEntropyDiceLoss),
])
def test_get_returns_loss(name, expected_type):
    assert isinstance(losses.get(name), expected_type)


def test_get_passes_arguments():
    loss = losses.get("focal", gamma=1.5, from_logits=True)
    assert loss.gamma == 1.5
    assert loss.from_logits is True


def test_get_unknown_name():
    with pytest.raises(ValueError) as error:
        losses.get("jaccard")
    assert "'jaccard'" in str(error.value)
    assert "ce_dice" in str(error.value)


# Training

@pytest.mark.slow
@pytest.mark.parametrize("name", ["focal", "ce_dice", "dice"])
def test_loss_decreases_when_training(name):
    rng = np.random.default_rng(0)
    images = rng.random((4, 16, 16, 3)).astype("float32")
    masks = (images[..., 0] > 0.5).astype("int32") + (images[..., 1] > 0.7).astype("int32")
    pixel_weights = rng.uniform(0.5, 1.5, size=masks.shape).astype("float32")
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses.get(name),
                  metrics=[metrics.MeanIoU(num_classes=3)], jit_compile=False)
    history = model.fit(images, masks, sample_weight=pixel_weights, batch_size=4, epochs=5,
                        verbose=0, validation_data=(images, masks)).history
    assert all(np.isfinite(history["loss"])), history["loss"]
    assert history["loss"][-1] < history["loss"][0], history["loss"]
    assert "val_mean_iou" in history


# Metrics

def test_mean_iou_softmax_equals_argmax():
    logits, probabilities = random_probabilities((3, 9, 7, 4))
    y_true = random_masks((3, 9, 7), 4)
    results = []
    for y_pred in (probabilities, logits, np.argmax(probabilities, axis=-1)):
        metric = metrics.MeanIoU(num_classes=4)
        metric.update_state(y_true, y_pred)
        results.append(float(metric.result()))
    assert results[0] == results[2]
    assert results[1] == results[2]


def test_mean_iou_matches_iou_report():
    _, probabilities = random_probabilities((2, 8, 8, 3))
    y_true = random_masks((2, 8, 8, 1), 3)
    metric = metrics.MeanIoU(num_classes=3)
    metric.update_state(y_true, probabilities)
    predicted = np.argmax(probabilities, axis=-1).ravel()
    confusion = np.bincount(y_true.ravel() * 3 + predicted, minlength=9).reshape(3, 3)
    report = metrics.iou_report(confusion)
    assert metric.name == "mean_iou"
    assert float(metric.result()) == pytest.approx(report["mean_iou"], abs=1e-6)


def test_mean_iou_skips_absent_class():
    y_true = np.array([[[0, 0, 1, 1]]], dtype="int32")
    y_pred = np.array([[[0, 1, 1, 1]]], dtype="int32")
    metric = metrics.MeanIoU(num_classes=3)
    metric.update_state(y_true, y_pred)
    # Class 0 has IoU 1 / 2 and class 1 has 2 / 3. Class 2 is absent from both, so it is left out.
    assert float(metric.result()) == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-6)


def test_class_iou_per_class_values():
    y_true = np.array([[[0, 0, 1, 1]]], dtype="int32")
    probabilities = np.array([[[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]]]], "float32")
    class_metrics = metrics.class_iou_metrics(2, class_names=["background", "polyp"])
    for metric in class_metrics:
        metric.update_state(y_true, probabilities)
    results = {metric.name: float(metric.result()) for metric in class_metrics}
    assert results == pytest.approx({"iou_background": 1 / 2, "iou_polyp": 2 / 3}, abs=1e-6)


def test_class_iou_invalid_arguments():
    with pytest.raises(ValueError, match="class_id"):
        metrics.ClassIoU(num_classes=2, class_id=2)
    with pytest.raises(ValueError, match="one name per class"):
        metrics.class_iou_metrics(3, class_names=["a", "b"])


def test_iou_report_hand_computed():
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    report = metrics.iou_report(confusion, class_names=["background", "polyp", "other"])
    # IoU = TP / (row + column - TP): background 5 / (6 + 7 - 5), polyp 3 / (5 + 4 - 3).
    # The class "other" has no pixels at all.
    assert report["per_class_iou"]["background"] == pytest.approx(5 / 8)
    assert report["per_class_iou"]["polyp"] == pytest.approx(3 / 6)
    assert report["per_class_iou"]["other"] is None
    assert report["mean_iou"] == pytest.approx((5 / 8 + 3 / 6) / 2)
    assert report["pixel_accuracy"] == pytest.approx(8 / 11)


def test_iou_report_predicted_only_class_counts():
    report = metrics.iou_report(np.array([[2, 1], [0, 0]]))
    assert report["per_class_iou"] == {"0": pytest.approx(2 / 3), "1": 0.0}
    assert report["mean_iou"] == pytest.approx(1 / 3)


def test_iou_report_empty_matrix():
    report = metrics.iou_report(np.zeros((2, 2)))
    assert report["mean_iou"] is None
    assert report["pixel_accuracy"] is None


def test_iou_report_rejects_non_square():
    with pytest.raises(ValueError, match="confusion matrix shape"):
        metrics.iou_report(np.zeros((2, 3)))


def identity_scores_model(num_classes):
    """Model whose class scores are its input, so the predicted ids are argmax(input)."""
    inputs = keras.Input(shape=(None, None, num_classes))
    outputs = keras.layers.Activation("linear", name="head")(inputs)
    return keras.Model(inputs, outputs)


def test_confusion_matrix_counts_pixels():
    predicted = random_masks((4, 5, 6), 3, seed=4)
    truth = random_masks((4, 5, 6), 3, seed=5)
    images = np.eye(3, dtype="float32")[predicted]
    dataset = tf.data.Dataset.from_tensor_slices((images, truth[..., None])).batch(3)
    confusion = metrics.confusion_matrix(identity_scores_model(3), dataset, num_classes=3)
    expected = np.bincount(truth.ravel() * 3 + predicted.ravel(), minlength=9).reshape(3, 3)
    assert confusion.dtype == np.int64
    np.testing.assert_array_equal(confusion, expected)


def test_confusion_matrix_skips_zero_weight():
    predicted = random_masks((2, 4, 4), 2, seed=6)
    truth = random_masks((2, 4, 4), 2, seed=7)
    truth[:, 0, :] = 255  # ignore label, given weight 0
    weights = (truth != 255).astype("float32")
    images = np.eye(2, dtype="float32")[predicted]
    confusion = metrics.confusion_matrix(identity_scores_model(2), [(images, truth, weights)], 2)
    assert confusion.sum() == 2 * 3 * 4


def test_confusion_matrix_invalid_class_id():
    images = np.eye(2, dtype="float32")[np.zeros((1, 2, 2), dtype="int32")]
    truth = np.full((1, 2, 2), 7, dtype="int32")
    with pytest.raises(ValueError, match="class id 7"):
        metrics.confusion_matrix(identity_scores_model(2), [(images, truth)], 2)


# Saving

@pytest.mark.parametrize("loss", [
    losses.DiceLoss(from_logits=True, smooth=0.5),
    losses.FocalLoss(gamma=1.0, alpha=[0.2, 0.8], from_logits=True),
    losses.CrossEntropyDiceLoss(crossentropy_weight=0.5, dice_weight=2.0, smooth=2.0),
], ids=lambda loss: type(loss).__name__)
def test_loss_config_round_trip(loss):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


def test_metric_config_round_trip():
    for metric in (metrics.MeanIoU(3, ignore_class=0), metrics.ClassIoU(3, 2, name="iou_c")):
        config = keras.saving.serialize_keras_object(metric)
        restored = keras.saving.deserialize_keras_object(config)
        assert type(restored) is type(metric)
        assert restored.get_config() == metric.get_config()


RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    import zoo

    for name in ("zoo>CrossEntropyDiceLoss", "zoo>MeanIoU", "zoo>ClassIoU"):
        if keras.saving.get_registered_object(name) is None:
            sys.exit(f"import zoo did not register {name}: zoo/__init__.py must import "
                     "zoo.losses and zoo.metrics")

    model = keras.saving.load_model(sys.argv[1], safe_mode=True, compile=True)
    print("loss", type(model.loss).__name__, model.loss.get_config()["crossentropy_weight"])
    data = np.load(sys.argv[2])
    result = model.evaluate(data["images"], data["masks"], return_dict=True, verbose=0)
    print("metrics", sorted(result))
    print("loss_value", result["loss"])
    """
)


@pytest.mark.slow
def test_compiled_model_reloads_in_fresh_process(tmp_path):
    images = np.random.default_rng(0).random((2, 12, 12, 3)).astype("float32")
    masks = random_masks((2, 12, 12), 3)
    model = tiny_model()
    model.compile(
        optimizer="adam",
        loss=losses.CrossEntropyDiceLoss(crossentropy_weight=0.5),
        metrics=[metrics.MeanIoU(num_classes=3), *metrics.class_iou_metrics(3, ["a", "b", "c"])],
    )
    expected = model.evaluate(images, masks, return_dict=True, verbose=0)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", images=images, masks=masks)

    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path / "model.keras"),
         str(tmp_path / "data.npz")],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loss CrossEntropyDiceLoss 0.5" in result.stdout
    assert "'mean_iou'" in result.stdout
    assert "'iou_b'" in result.stdout
    loss_line = [line for line in result.stdout.splitlines() if line.startswith("loss_value")]
    assert float(loss_line[0].split()[1]) == pytest.approx(expected["loss"], abs=1e-5)
