"""Inputs that users of U-Net libraries report as failing: odd sizes, precision, random configs."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import zoo
from zoo import config as config_lib
from zoo import training


def test_train_on_crops_then_predict_other_size():
    model = zoo.build("unet", input_shape=(None, None, 3), num_classes=2, depth=3, base_filters=4)
    training.compile_model(model, 2)
    images = np.random.rand(4, 128, 128, 3).astype("float32")
    masks = (images[..., 0] > 0.5).astype("int32")
    model.fit(images, masks, epochs=1, batch_size=2, verbose=0)
    prediction = model.predict(np.random.rand(1, 300, 200, 3).astype("float32"), verbose=0)
    assert prediction.shape == (1, 300, 200, 2)


@pytest.mark.parametrize("call", ["call", "predict"])
def test_wrong_channel_count_raises_value_error(call):
    model = zoo.build("unet", input_shape=(None, None, 3), depth=2, base_filters=4)
    images = np.zeros((1, 64, 64, 1), dtype="float32")
    run = model if call == "call" else (lambda x: model.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"images have 1 channel\(s\).*channels=3.*"
                                         r"input_shape=\(None, None, 1\)"):
        run(images)


def test_mixed_precision_on_512_masks():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = zoo.build("unet-spatialdrop", input_shape=(None, None, 1), num_classes=2, depth=2,
                      base_filters=4)
    assert model.get_layer("enc1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("head").compute_dtype == "float32"
    training.compile_model(model, 2)
    rng = np.random.default_rng(0)
    images = rng.random((2, 512, 512, 1), dtype=np.float32)
    masks = (images[..., 0] > 0.7).astype("int32")
    history = model.fit(images, masks, epochs=2, batch_size=1, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)), history
    outputs = model(images[:1], training=False)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"


@st.composite
def random_configs(draw):
    """Draw config overrides, some of them invalid on purpose, and an input size."""
    overrides = {
        "depth": draw(st.integers(-1, 5)),
        "base_filters": draw(st.integers(-2, 6)),
        "filter_growth": draw(st.sampled_from([0.5, 1.0, 1.5, 2.0])),
        "convs_per_stage": draw(st.integers(0, 2)),
        "conv_block": draw(st.sampled_from(config_lib.CONV_BLOCKS + ("dilated",))),
        "norm": draw(st.sampled_from(config_lib.NORMS)),
        "encoder_activation": draw(st.sampled_from(config_lib.ACTIVATIONS)),
        "decoder_activation": draw(st.sampled_from(config_lib.ACTIVATIONS + ("tanh",))),
        "dropout": draw(st.sampled_from(config_lib.DROPOUTS)),
        "dropout_rate": draw(st.sampled_from([-0.1, 0.0, 0.3, 1.0])),
        "upsampling": draw(st.sampled_from(config_lib.UPSAMPLINGS)),
        "residual": draw(st.booleans()),
        "attention": draw(st.booleans()),
    }
    size = (draw(st.integers(5, 70)), draw(st.integers(5, 70)))
    channels = draw(st.integers(1, 4))
    return overrides, size, channels


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_configs())
def test_random_config_builds_or_raises_value_error(drawn):
    overrides, (height, width), channels = drawn
    try:
        model = zoo.build("unet", input_shape=(height, width, channels), num_classes=3, **overrides)
    except ValueError:
        return
    outputs = model(np.random.rand(1, height, width, channels).astype("float32"), training=False)
    assert tuple(outputs.shape) == (1, height, width, 3)
