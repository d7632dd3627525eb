"""Model analysis: parameter counts, FLOPs per image and the theoretical receptive field."""

from __future__ import annotations

import math

import keras

from zoo.config import UNetConfig

# Growth of the receptive field, in units of the current stride, of one conv unit.
_UNIT_EXTENT = {"stacked3x3": 2, "single5x5": 4, "factorized5x5": 4, "asymmetric": 2}


def conv_flops(model: keras.Model) -> int:
    """Return the FLOPs of one forward pass: 2 x multiply-adds of every (transposed) convolution.

    The model must have a fixed height and width. Normalization, activations, pooling and
    resizing are left out: in a U-Net they are below 2% of the total.
    """
    _, height, width, _ = model.input_shape
    if height is None or width is None:
        raise ValueError(
            "conv_flops needs a model built with a fixed height and width; received input shape "
            f"{model.input_shape}. Rebuild it with input_shape=(height, width, channels)."
        )
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, height, width, in_channels = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * kh * kw * in_channels * layer.filters * height * width
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            kh, kw = layer.kernel_size
            in_channels = layer.input.shape[-1] // layer.groups
            total += 2 * kh * kw * in_channels * layer.filters * height * width
    return int(total)


def _upsampling_extent(method: str) -> tuple[int, int]:
    """Return the receptive-field growth of an upsampling step at the input and output stride."""
    if method.startswith("transpose"):
        kernel = int(method.removeprefix("transpose"))
        return math.ceil(kernel / 2) - 1, 0
    if method == "nearest":
        return 0, 2
    if method == "bilinear":
        return 1, 2
    if method == "pixel_shuffle":
        return 2, 0
    raise ValueError(f"Unknown upsampling {method!r}.")


def receptive_field(config: UNetConfig) -> int:
    """Return the theoretical receptive field, in input pixels, of one output pixel.

    It follows the deepest path (encoder, bottleneck, decoder): a convolution of extent k
    at stride s adds (k - 1) * s, a 2x2 max pool adds s, and an upsampling step adds the
    extent of its input window. Skips only add shorter paths, so they do not change it.
    """
    unit = _UNIT_EXTENT[config.conv_block] * config.convs_per_stage
    field, stride = 1, 1
    for _ in range(config.depth):
        field += unit * stride
        field += stride
        stride *= 2
    field += unit * stride
    before, after = _upsampling_extent(config.upsampling)
    for _ in range(config.depth):
        field += before * stride
        stride //= 2
        field += after * stride
        field += unit * stride
    return field


def checkerboard_score(image, stride: int = 2) -> float:
    """Return the share of an image's variance that repeats with period `stride`.

    The image (height, width) or (height, width, channels) is split into the `stride**2`
    phase grids `image[i::stride, j::stride]`. The score is the variance of the grid means
    divided by the total variance, averaged over channels: about 1 for a pure checkerboard of
    that period, near 0 for a smooth image, and 0 for a constant one.
    """
    import numpy as np

    array = np.asarray(image, dtype="float64")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or min(array.shape[:2]) < 2 * stride:
        raise ValueError(
            f"checkerboard_score needs an image of shape (height, width[, channels]) with sides of "
            f"at least {2 * stride}; received shape {np.shape(image)}."
        )
    height = array.shape[0] - array.shape[0] % stride
    width = array.shape[1] - array.shape[1] % stride
    array = array[:height, :width]
    scores = []
    for channel in range(array.shape[-1]):
        plane = array[..., channel]
        total = plane.var()
        if total <= 1e-12 * max(1.0, float(np.abs(plane).max()) ** 2):
            scores.append(0.0)
            continue
        phase_means = [plane[i::stride, j::stride].mean() for i in range(stride) for j in range(stride)]
        scores.append(float(np.var(phase_means) / total))
    return float(np.mean(scores))
