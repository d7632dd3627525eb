"""A plain Keras U-Net with the same layers and widths as the zoo's baseline `unet`.

It is the reference that measures what the zoo's builder costs: the same convolutions,
BatchNormalization (momentum 0.7), ReLU, 2x2 max pooling, 2x2 stride-2 transposed
convolutions, concatenated skips and a float32 1x1 head with softmax, built with
standard layers only. Unlike the zoo's model it has no pad and crop layers, so height
and width must be multiples of 2**depth.
"""

from __future__ import annotations

import keras
from keras import layers


def _two_convs(x, filters: int, momentum: float, prefix: str):
    """Apply two 3x3 convolutions without bias, each followed by BatchNorm and ReLU."""
    for index in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name=f"{prefix}_conv{index}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"{prefix}_norm{index}")(x)
        x = layers.ReLU(name=f"{prefix}_act{index}")(x)
    return x


def build_handwritten_unet(input_shape=(None, None, 3), num_classes: int = 2, depth: int = 4,
                           base_filters: int = 32, momentum: float = 0.7) -> keras.Model:
    """Build the U-Net of `depth` stages with `base_filters` filters doubling per stage.

    Example:
        >>> model = build_handwritten_unet((256, 256, 1), num_classes=2)
        >>> model.output_shape
        (None, 256, 256, 2)
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs

    skips = []
    for stage in range(depth):
        x = _two_convs(x, base_filters * 2**stage, momentum, f"enc{stage + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{stage + 1}_pool")(x)

    x = _two_convs(x, base_filters * 2**depth, momentum, "bottleneck")

    for stage in reversed(range(depth)):
        filters = base_filters * 2**stage
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same",
                                   kernel_initializer="he_normal", name=f"dec{stage + 1}_up")(x)
        x = layers.Concatenate(name=f"dec{stage + 1}_concat")([x, skips[stage]])
        x = _two_convs(x, filters, momentum, f"dec{stage + 1}")

    # float32 under a mixed precision policy, as in the zoo's head.
    x = layers.Conv2D(num_classes, 1, dtype="float32", name="head_conv")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name="handwritten_unet")
