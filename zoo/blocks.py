"""Layer factories for U-Net stages: one function per concern, driven by a `UNetConfig`.

Every factory names its layers from one prefix (`enc2_conv1`, `enc2_norm1`, `enc2_act1`,
`dec1_up`), so `model.summary()`, weight files and tests can point at a layer. Every factory
rejects a value it does not know instead of falling back to a default; `UNetConfig` has already
validated the values, so those errors only fire when a new option is half added.
"""

from __future__ import annotations

import keras
from keras import layers

from zoo.config import UNetConfig
from zoo.layers import ICNR, PixelShuffle


def activation(name: str, config: UNetConfig, layer_name: str) -> keras.layers.Layer:
    """Return the activation layer `name` (one of `config.ACTIVATIONS`)."""
    if name == "relu":
        return layers.ReLU(name=layer_name)
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=config.leaky_relu_slope, name=layer_name)
    if name == "prelu":
        # One slope per channel, shared over height and width, so any input size works.
        return layers.PReLU(shared_axes=[1, 2], name=layer_name)
    if name == "elu":
        return layers.ELU(name=layer_name)
    if name in ("gelu", "swish"):
        return layers.Activation(name, name=layer_name)
    raise ValueError(f"Unknown activation {name!r}.")


def normalization(config: UNetConfig, filters: int, layer_name: str) -> keras.layers.Layer | None:
    """Return the normalization layer of `config.norm`, or None for "none"."""
    if config.norm == "batch":
        return layers.BatchNormalization(momentum=config.norm_momentum, name=layer_name)
    if config.norm == "group":
        # GroupNormalization needs groups to divide the channel count.
        groups = max(g for g in range(1, min(config.group_norm_groups, filters) + 1) if filters % g == 0)
        return layers.GroupNormalization(groups=groups, name=layer_name)
    if config.norm == "layer":
        return layers.LayerNormalization(axis=-1, name=layer_name)
    if config.norm == "none":
        return None
    raise ValueError(f"Unknown normalization {config.norm!r}.")


def conv_norm_act(x, filters, kernel_size, config, act_name, prefix, suffix, *, apply_activation=True):
    """Apply Conv2D, then normalization, then activation, named `{prefix}_conv{suffix}` and so on."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=config.norm == "none",
        kernel_initializer="he_normal",
        name=f"{prefix}_conv{suffix}",
    )(x)
    norm = normalization(config, filters, f"{prefix}_norm{suffix}")
    if norm is not None:
        x = norm(x)
    if apply_activation:
        x = activation(act_name, config, f"{prefix}_act{suffix}")(x)
    return x


def _conv_unit(x, filters, config, act_name, prefix, index, *, last_activation):
    """Apply one convolution of the stage, expanded according to `config.conv_block`."""
    block = config.conv_block
    if block == "stacked3x3":
        return conv_norm_act(x, filters, 3, config, act_name, prefix, f"{index}",
                             apply_activation=last_activation)
    if block == "single5x5":
        return conv_norm_act(x, filters, 5, config, act_name, prefix, f"{index}",
                             apply_activation=last_activation)
    if block == "factorized5x5":
        # Two stacked 3x3 convolutions see the same 5x5 window with 18/25 of the weights.
        x = conv_norm_act(x, filters, 3, config, act_name, prefix, f"{index}a")
        return conv_norm_act(x, filters, 3, config, act_name, prefix, f"{index}b",
                             apply_activation=last_activation)
    if block == "asymmetric":
        # A 1x3 then a 3x1 convolution see the same 3x3 window with 6/9 of the weights.
        x = conv_norm_act(x, filters, (1, 3), config, act_name, prefix, f"{index}a")
        return conv_norm_act(x, filters, (3, 1), config, act_name, prefix, f"{index}b",
                             apply_activation=last_activation)
    raise ValueError(f"Unknown conv_block {block!r}.")


def conv_block(x, filters, config: UNetConfig, act_name: str, prefix: str):
    """Apply the `config.convs_per_stage` convolutions of one stage, with an optional shortcut.

    With `config.residual`, the stage input joins the output before the last activation
    through an identity or, where the width changes, a 1x1 projection (`{prefix}_proj`).
    """
    shortcut = x
    for index in range(1, config.convs_per_stage + 1):
        is_last = index == config.convs_per_stage
        x = _conv_unit(x, filters, config, act_name, prefix, index,
                       last_activation=not (config.residual and is_last))
    if not config.residual:
        return x

    if shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_proj")(shortcut)
    x = layers.Add(name=f"{prefix}_add")([x, shortcut])
    return activation(act_name, config, f"{prefix}_act_out")(x)


def dropout(x, config: UNetConfig, part: str, prefix: str):
    """Apply the configured dropout if `part` (encoder, bottleneck, decoder) is selected."""
    if config.dropout == "none" or part not in config.dropout_stages:
        return x
    if config.dropout == "standard":
        return layers.Dropout(config.dropout_rate, name=f"{prefix}_drop")(x)
    if config.dropout == "spatial":
        # Drops whole feature maps: neighbouring pixels of one map are strongly correlated,
        # so per-pixel dropout removes little information from a conv net.
        return layers.SpatialDropout2D(config.dropout_rate, name=f"{prefix}_drop")(x)
    raise ValueError(f"Unknown dropout {config.dropout!r}.")


def upsample(x, filters: int, config: UNetConfig, prefix: str):
    """Double the height and width of `x` and map it to `filters` channels (`{prefix}_up`)."""
    method = config.upsampling
    if method.startswith("transpose"):
        kernel_size = int(method.removeprefix("transpose"))
        return layers.Conv2DTranspose(
            filters, kernel_size, strides=2, padding="same", kernel_initializer="he_normal",
            name=f"{prefix}_up",
        )(x)
    if method in ("nearest", "bilinear"):
        x = layers.UpSampling2D(2, interpolation=method, name=f"{prefix}_resize")(x)
        return layers.Conv2D(
            filters, 3, padding="same", kernel_initializer="he_normal", name=f"{prefix}_up"
        )(x)
    if method == "pixel_shuffle":
        x = layers.Conv2D(
            filters * 4, 3, padding="same", kernel_initializer=ICNR(scale=2, initializer="he_normal"),
            name=f"{prefix}_up_conv",
        )(x)
        return PixelShuffle(2, name=f"{prefix}_up")(x)
    raise ValueError(f"Unknown upsampling {method!r}.")


def attention_gate(skip, gating, filters: int, prefix: str):
    """Weight `skip` by an additive attention map computed from `skip` and `gating`.

    This is the gate of Attention U-Net (Oktay et al., 2018), applied after upsampling, so
    `skip` and `gating` have the same height and width: `skip * sigmoid(psi(relu(Wx + Wg)))`.
    """
    inter = max(1, filters // 2)
    theta = layers.Conv2D(inter, 1, name=f"{prefix}_gate_skip")(skip)
    phi = layers.Conv2D(inter, 1, name=f"{prefix}_gate_signal")(gating)
    joined = layers.ReLU(name=f"{prefix}_gate_relu")(layers.Add(name=f"{prefix}_gate_add")([theta, phi]))
    weights = layers.Conv2D(1, 1, activation="sigmoid", name=f"{prefix}_gate_weights")(joined)
    return layers.Multiply(name=f"{prefix}_gate")([skip, weights])
