"""Tests of zoo.build, the variant registry and the config validation."""

import json

import keras
import numpy as np
import pytest

import zoo
from zoo.config import UNetConfig

SMALL = {"base_filters": 4, "depth": 3}


@pytest.mark.parametrize("name", zoo.names())
@pytest.mark.parametrize(
    "channels, sizes",
    [
        (3, [(64, 64)]),
        (1, [(250, 250)]),
        (2, [(40, 72), (97, 131)]),  # two different sizes through one model
    ],
)
def test_variant_output_shapes(name, channels, sizes):
    model = zoo.build(name, input_shape=(None, None, channels), num_classes=3, **SMALL)
    for height, width in sizes:
        images = np.random.rand(2, height, width, channels).astype("float32")
        outputs = model(images, training=False)
        assert tuple(outputs.shape) == (2, height, width, 3)


def test_fixed_size_250_with_depth_4():
    model = zoo.build("unet", input_shape=(250, 250, 1), num_classes=2, base_filters=4)
    assert model.output_shape == (None, 250, 250, 2)
    assert model.get_layer("pad").output.shape[1:3] == (256, 256)


def test_softmax_output_is_distribution():
    model = zoo.build("unet", input_shape=(None, None, 3), num_classes=4, **SMALL)
    probabilities = np.asarray(model(np.random.rand(1, 32, 48, 3).astype("float32")))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert probabilities.min() >= 0.0


def test_layer_names_follow_scheme():
    model = zoo.build("unet-spatialdrop", input_shape=(None, None, 3), num_classes=2, depth=2,
                      base_filters=4, dropout_stages=("encoder", "bottleneck"))
    layer_names = {layer.name for layer in model.layers}
    for expected in ["pad", "enc1_conv1", "enc1_norm1", "enc1_act1", "enc1_drop", "enc1_pool",
                     "bottleneck_conv2", "bottleneck_drop", "dec1_up", "dec1_concat",
                     "dec2_conv1", "crop", "head_conv", "head"]:
        assert expected in layer_names, expected
    assert "dec1_drop" not in layer_names  # only the stages asked for get dropout


def test_dropout_variants_drop_in_the_bottleneck_only():
    for name, layer_type in (("unet-dropout", "Dropout"), ("unet-spatialdrop", "SpatialDropout2D")):
        model = zoo.build(name, input_shape=(64, 64, 1), num_classes=2, depth=2, base_filters=4)
        dropped = {layer.name: type(layer).__name__ for layer in model.layers
                   if isinstance(layer, keras.layers.Dropout)}
        assert dropped == {"bottleneck_drop": layer_type}


def test_names_lists_design_variants():
    expected = {"unet", "unet-dropout", "unet-spatialdrop", "unet-prelu", "unet-prelu-encoder",
                "unet-prelu-decoder", "unet-5x5", "unet-factorized", "unet-asymmetric",
                "unet-transpose3", "unet-upsample", "unet-pixelshuffle"}
    assert expected <= set(zoo.names())
    assert "unet-groupout" in zoo.names(include_aliases=True)


def test_alias_builds_same_config():
    assert zoo.config_of("unet-groupout") == zoo.config_of("unet-spatialdrop")


def test_unknown_variant_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'unet-spatialdrop'") as error:
        zoo.build("unet-spatialdorp")
    assert "unet-pixelshuffle" in str(error.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"upsampling": "cubic"}, "'upsampling': 'cubic'. Expected one of: transpose2"),
        ({"norm": "instance"}, "'norm'"),
        ({"encoder_activation": "tanh"}, "'encoder_activation'"),
        ({"dropout": "spatial", "dropout_rate": 0.0}, "'dropout_rate'"),
        ({"dropout_rate": 1.5}, "'dropout_rate': 1.5"),
        ({"depth": 0}, "'depth': 0"),
        ({"base_filters": -8}, "'base_filters': -8"),
        ({"dropout_stages": ["middle"]}, "'dropout_stages'"),
        ({"dropout_stages": "decoder"}, r'Expected a list .* for example \["decoder"\]'),
        ({"conv_block": "separable"}, "'conv_block'"),
        ({"depht": 3}, "Did you mean 'depth'"),
    ],
)
def test_bad_config_value_raises(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        zoo.build("unet", **overrides)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (64, 64)}, "Invalid input_shape"),
        ({"input_shape": (None, None, 0)}, "Invalid channel count"),
        ({"input_shape": (8, 64, 3)}, "height 8 is too small for depth=4"),
        ({"num_classes": 0}, "Invalid num_classes: 0"),
        ({"num_classes": 1}, "output_activation='sigmoid'"),
    ],
)
def test_bad_build_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.build("unet", **kwargs)


def test_config_json_round_trip():
    config = zoo.config_of("unet-prelu-decoder", depth=3, dropout="spatial")
    assert UNetConfig.from_json(config.to_json()) == config
    model = zoo.build(config=json.loads(config.to_json()), input_shape=(None, None, 1))
    assert model.get_layer("dec1_act1").__class__.__name__ == "PReLU"


def test_build_rejects_name_and_config():
    with pytest.raises(ValueError, match="either a variant name or a config"):
        zoo.build("unet", config=UNetConfig())


def _kernel_weights(model, prefix):
    return sum(int(np.prod(w.shape)) for layer in model.layers if layer.name.startswith(prefix)
               for w in layer.weights if w.path.endswith("kernel"))


def test_factorized_weight_arithmetic():
    common = {"depth": 1, "base_filters": 16, "convs_per_stage": 1}
    # Equal input and output width: a 16-channel input into the first 16-filter stage.
    five = zoo.build("unet-5x5", input_shape=(None, None, 16), **common)
    factorized = zoo.build("unet-factorized", input_shape=(None, None, 16), **common)
    stacked = zoo.build("unet", input_shape=(None, None, 16), **common)
    asymmetric = zoo.build("unet-asymmetric", input_shape=(None, None, 16), **common)
    assert _kernel_weights(five, "enc1_conv1") == 25 * 16 * 16
    assert _kernel_weights(factorized, "enc1_conv1") * 25 == _kernel_weights(five, "enc1_conv1") * 18
    assert _kernel_weights(stacked, "enc1_conv1") == 9 * 16 * 16
    assert _kernel_weights(asymmetric, "enc1_conv1") * 9 == _kernel_weights(stacked, "enc1_conv1") * 6


def test_factorized_ratio_differs_when_width_changes():
    # A 3-channel input into 16 filters: the second 3x3 sees 16 channels, not 3.
    common = {"depth": 1, "base_filters": 16, "convs_per_stage": 1}
    five = zoo.build("unet-5x5", input_shape=(None, None, 3), **common)
    factorized = zoo.build("unet-factorized", input_shape=(None, None, 3), **common)
    assert _kernel_weights(five, "enc1_conv1") == 25 * 3 * 16
    assert _kernel_weights(factorized, "enc1_conv1") == 9 * 3 * 16 + 9 * 16 * 16


def test_spatial_dropout_drops_whole_channels():
    model = zoo.build("unet-spatialdrop", input_shape=(None, None, 3), dropout_rate=0.5, **SMALL)
    layer = model.get_layer("bottleneck_drop")
    inputs = np.ones((2, 16, 16, 8), dtype="float32")
    outputs = np.asarray(layer(inputs, training=True))
    per_channel = outputs.reshape(2, 16 * 16, 8)
    for sample in range(2):
        for channel in range(8):
            values = np.unique(per_channel[sample, :, channel])
            assert values.size == 1, f"channel {channel} of sample {sample} is partly zeroed"
            assert values[0] in (0.0, 2.0)
    assert (per_channel == 0).any() and (per_channel == 2.0).any()
    np.testing.assert_array_equal(np.asarray(layer(inputs, training=False)), inputs)


def test_prelu_has_one_slope_per_channel():
    model = zoo.build("unet-prelu", input_shape=(None, None, 3), **SMALL)
    layer = model.get_layer("enc2_act1")
    assert isinstance(layer, keras.layers.PReLU)
    assert tuple(layer.alpha.shape) == (1, 1, 8)


def test_describe_reports_costs(capsys):
    description = zoo.describe("unet", input_shape=(64, 64, 1), depth=2, base_filters=4)
    assert "parameters" in capsys.readouterr().out
    model = zoo.build("unet", input_shape=(64, 64, 1), depth=2, base_filters=4)
    assert description.parameters == model.count_params()
    # enc1_conv1: 3x3x1x4 at 64x64, the largest single term is easy to check by hand.
    assert description.flops > 2 * 9 * 1 * 4 * 64 * 64
    assert description.receptive_field == 1 + 4 + 1 + 4 * 2 + 2 + 4 * 4 + 4 * 2 + 4


def test_receptive_field_by_upsampling():
    base = zoo.config_of("unet", depth=1, convs_per_stage=1)
    # conv 3x3 (+2), pool (+1), bottleneck conv at stride 2 (+4), decoder conv (+2).
    assert zoo.receptive_field(base) == 1 + 2 + 1 + 4 + 2
    assert zoo.receptive_field(base.replace(upsampling="transpose3")) == 10 + 2
    assert zoo.receptive_field(base.replace(upsampling="bilinear")) == 10 + 2 + 2
    assert zoo.receptive_field(base.replace(conv_block="single5x5")) == 1 + 4 + 1 + 8 + 4
