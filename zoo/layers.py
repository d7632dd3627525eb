"""The zoo's custom layers and initializer, registered so models reload with `safe_mode=True`.

They use only `keras.ops`, so models that contain them run on every Keras backend.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "zoo"


def _centered_padding(size, multiple):
    """Return (before, after) padding that grows `size` to the next multiple of `multiple`."""
    total = (-size) % multiple
    before = total // 2
    return before, total - before


@keras.saving.register_keras_serializable(package=PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Zero-pads height and width, centred, up to the next multiple of `multiple`.

    A U-Net of depth `d` halves the image `d` times, so every skip connection only lines up
    when the input side is a multiple of 2**d. Padding inside the model, and cropping back with
    `CropToMatch`, lets one model serve any image size, including unknown (`None`) sizes.
    """

    def __init__(self, multiple, channels=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(multiple, int) or multiple < 1:
            raise ValueError(f"Invalid 'multiple' for PadToMultiple: {multiple!r}. Expected int >= 1.")
        self.multiple = multiple
        self.channels = channels

    def call(self, inputs):
        self._check_channels(inputs.shape[-1])
        shape = ops.shape(inputs)
        top, bottom = _centered_padding(shape[1], self.multiple)
        left, right = _centered_padding(shape[2], self.multiple)
        return ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]])

    def compute_output_shape(self, input_shape):
        def padded(size):
            return None if size is None else size + sum(_centered_padding(size, self.multiple))

        return (input_shape[0], padded(input_shape[1]), padded(input_shape[2]), input_shape[3])

    def _check_channels(self, received):
        """Raise ValueError, with the fix, when the images' channel count is not the model's."""
        if self.channels is None or received is None or received == self.channels:
            return
        raise ValueError(
            f"Invalid input: the images have {received} channel(s), but this model was built "
            f"with input_shape channels={self.channels}. Convert the images to {self.channels} "
            f"channel(s) (for example with tf.image.grayscale_to_rgb or rgb_to_grayscale), or "
            f"build the model with input_shape=(None, None, {received})."
        )

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "channels": self.channels}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropToMatch(keras.layers.Layer):
    """Crops the first input, centred, to the height and width of the second input.

    It undoes `PadToMultiple`: the padding put `floor(total / 2)` rows before the image, and
    this crop removes the same rows.
    """

    def call(self, inputs):
        features, reference = inputs
        features_shape = ops.shape(features)
        reference_shape = ops.shape(reference)
        height, width = reference_shape[1], reference_shape[2]
        top = (features_shape[1] - height) // 2
        left = (features_shape[2] - width) // 2
        return features[:, top : top + height, left : left + width, :]

    def compute_output_shape(self, input_shape):
        features_shape, reference_shape = input_shape
        return (features_shape[0], reference_shape[1], reference_shape[2], features_shape[3])


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelShuffle(keras.layers.Layer):
    """Rearranges `scale**2 * C` channels into a `scale` times larger image of `C` channels.

    This is depth-to-space in the channel order of `tf.nn.depth_to_space` ("DCR"): output pixel
    `(y * scale + i, x * scale + j)` channel `c` reads input channel `(i * scale + j) * C + c`.
    """

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(scale, int) or scale < 2:
            raise ValueError(f"Invalid 'scale' for PixelShuffle: {scale!r}. Expected int >= 2.")
        self.scale = scale

    def call(self, inputs):
        shape = ops.shape(inputs)
        height, width, channels = shape[1], shape[2], shape[3]
        out_channels = channels // (self.scale * self.scale)
        x = ops.reshape(inputs, (-1, height, width, self.scale, self.scale, out_channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height * self.scale, width * self.scale, out_channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        if channels is not None and channels % (self.scale**2):
            raise ValueError(
                f"PixelShuffle with scale {self.scale} needs a channel count divisible by "
                f"{self.scale**2}; received {channels} channels."
            )

        def scaled(size):
            return None if size is None else size * self.scale

        out_channels = None if channels is None else channels // self.scale**2
        return (batch, scaled(height), scaled(width), out_channels)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ICNR(keras.initializers.Initializer):
    """Initializes a convolution that feeds `PixelShuffle` so that it starts as a nearest resize.

    ICNR (Aitken et al., 2017, "Checkerboard artifact free sub-pixel convolution") draws a kernel
    for `C` output channels from `initializer` and repeats it for each of the `scale**2`
    sub-pixel positions. At initialisation all sub-pixels of a block are then equal, so the
    upsampled output has no periodic pattern.
    """

    def __init__(self, scale=2, initializer="glorot_uniform"):
        self.scale = scale
        self.initializer = keras.initializers.get(initializer)

    def __call__(self, shape, dtype=None):
        *spatial, in_channels, out_channels = shape
        blocks = self.scale * self.scale
        if out_channels % blocks:
            raise ValueError(
                f"ICNR with scale {self.scale} needs output channels divisible by {blocks}; "
                f"received kernel shape {tuple(shape)}."
            )
        base = self.initializer((*spatial, in_channels, out_channels // blocks), dtype=dtype)
        return ops.tile(base, (1,) * (len(shape) - 1) + (blocks,))

    def get_config(self):
        return {
            "scale": self.scale,
            "initializer": keras.initializers.serialize(self.initializer),
        }
