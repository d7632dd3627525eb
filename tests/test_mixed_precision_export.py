"""Mixed precision zoo models keep a float32 head and export a float32 serving signature."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import export, training


def _tiny_unet(precision):
    training.set_precision(precision)
    return zoo.build("unet", input_shape=(None, None, 3), num_classes=2, depth=2, base_filters=4)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_head_is_float32(precision):
    model = _tiny_unet(precision)
    assert model.get_layer("enc1_conv1").compute_dtype == precision.removeprefix("mixed_")
    assert model.get_layer("head_conv").compute_dtype == "float32"
    assert model.get_layer("head").compute_dtype == "float32"
    outputs = model(np.zeros((1, 20, 24, 3), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_exports_float32_signature(precision, tmp_path):
    model = _tiny_unet(precision)
    path = export.export_for_serving(model, base_dir=tmp_path)
    serve = export.load_for_serving(path)
    assert serve.structured_input_signature[1]["images"].dtype == tf.uint8
    assert serve.structured_outputs["probabilities"].dtype == tf.float32
    assert serve.structured_outputs["class_ids"].dtype == tf.int32

    images = np.random.default_rng(0).integers(0, 256, (2, 20, 24, 3), dtype=np.uint8)
    outputs = serve(images=tf.constant(images))
    probabilities = outputs["probabilities"].numpy()
    assert outputs["probabilities"].dtype == tf.float32
    assert probabilities.shape == (2, 20, 24, 2)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert export.verify_export(model, path, images) < 1e-4
