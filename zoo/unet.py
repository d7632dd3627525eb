"""Build a Keras Functional U-Net from a `UNetConfig`.

The model reads top to bottom as encoder, bottleneck, decoder and head. It takes float images
in [0, 1] of shape (batch, height, width, channels) and returns per-pixel class scores of the
same height and width. Layer names follow one scheme: `enc{i}_*` and `dec{i}_*` for stage i
(1 is the full-resolution stage), `bottleneck_*`, `pad`, `crop`, `head_conv` and `head`.
"""

from __future__ import annotations

import logging

import keras
from keras import layers

from zoo import blocks
from zoo.config import UNetConfig
from zoo.layers import CropToMatch, PadToMultiple

logger = logging.getLogger(__name__)


def check_input(config: UNetConfig, input_shape, num_classes) -> tuple:
    """Validate the input shape and class count for `config`; return the shape as a tuple."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else input_shape
    if not isinstance(shape, tuple) or len(shape) != 3:
        raise ValueError(
            f"Invalid input_shape: {input_shape!r}. Expected (height, width, channels), "
            "for example (None, None, 3); height and width may be None."
        )
    height, width, channels = shape
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"Invalid channel count in input_shape: {channels!r}. Expected an int >= 1.")
    min_side = 2**config.depth
    for axis, size in (("height", height), ("width", width)):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"Invalid {axis} in input_shape: {size!r}. Expected an int >= 1 or None.")
        if size < min_side:
            raise ValueError(
                f"Input {axis} {size} is too small for depth={config.depth}: the encoder halves "
                f"the image {config.depth} times, so each side needs at least {min_side} pixels. "
                f"Use depth <= {max(1, size.bit_length() - 1)} or a larger input."
            )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"Invalid num_classes: {num_classes!r}. Expected an int >= 1.")
    if num_classes == 1 and config.output_activation == "softmax":
        raise ValueError(
            "Invalid num_classes=1 with output_activation='softmax': a softmax over one class is "
            "always 1. Use num_classes=2, or output_activation='sigmoid' for one binary class."
        )
    return shape


def build_unet(config: UNetConfig, input_shape, num_classes: int, name: str = "unet") -> keras.Model:
    """Build the U-Net that `config` describes.

    Example:
        >>> model = build_unet(UNetConfig(depth=2, base_filters=8), (None, None, 1), 2)
        >>> model.output_shape
        (None, None, None, 2)
    """
    shape = check_input(config, input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="image")
    x = PadToMultiple(2**config.depth, channels=shape[-1], name="pad")(inputs)

    skips = []
    for stage in range(config.depth):
        prefix = f"enc{stage + 1}"
        x = blocks.conv_block(x, config.filters(stage), config, config.encoder_activation, prefix)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
        # Dropout after the pool thins the path down but leaves the skip, which carries the
        # fine detail that thin structures such as membranes depend on, untouched.
        x = blocks.dropout(x, config, "encoder", prefix)

    x = blocks.conv_block(x, config.filters(config.depth), config, config.bottleneck_activation,
                          "bottleneck")
    x = blocks.dropout(x, config, "bottleneck", "bottleneck")

    for stage in reversed(range(config.depth)):
        prefix = f"dec{stage + 1}"
        filters = config.filters(stage)
        x = blocks.upsample(x, filters, config, prefix)
        skip = skips[stage]
        if config.attention:
            skip = blocks.attention_gate(skip, x, filters, prefix)
        x = layers.Concatenate(name=f"{prefix}_concat")([x, skip])
        x = blocks.conv_block(x, filters, config, config.decoder_activation, prefix)
        x = blocks.dropout(x, config, "decoder", prefix)

    x = CropToMatch(name="crop")([x, inputs])
    # The head stays float32 under a mixed precision policy, so probabilities and the loss
    # are computed at full precision.
    x = layers.Conv2D(num_classes, 1, dtype="float32", name="head_conv")(x)
    outputs = layers.Activation(config.output_activation, dtype="float32", name="head")(x)
    model = keras.Model(inputs, outputs, name=name)
    logger.debug("Built %s with %d parameters", name, model.count_params())
    return model
