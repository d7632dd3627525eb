"""Model analysis: parameter counts, FLOPs per image and the theoretical receptive field."""

from __future__ import annotations

import keras

from zoo.config import UNetConfig

# Reach of one conv unit, in pixels on each side along one axis, at its own resolution.
_UNIT_HALF_EXTENT = {"stacked3x3": 1, "single5x5": 2, "factorized5x5": 2, "asymmetric": 1}


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


def _upsampling_source(method: str, first: int, last: int) -> tuple[int, int]:
    """Return the coarse index interval that fine pixels `first..last` of an upsampling step read.

    The interval includes the 3x3 convolution after a resize and the one before a pixel shuffle.
    """
    if method.startswith("transpose"):
        # Keras' stride-2 "same" Conv2DTranspose puts tap t of coarse pixel i on fine pixel
        # 2 * i + t - (kernel - 2) // 2.
        kernel = int(method.removeprefix("transpose"))
        shift = (kernel - 2) // 2
        return -((kernel - 1 - first - shift) // 2), (last + shift) // 2
    if method == "nearest":
        return (first - 1) // 2, (last + 1) // 2
    if method == "bilinear":
        # Half-pixel centres: fine pixel 2m reads coarse m - 1 and m, and 2m + 1 reads m and m + 1.
        return (first - 2) // 2, (last + 2) // 2
    if method == "pixel_shuffle":
        return first // 2 - 1, last // 2 + 1
    raise ValueError(f"Unknown upsampling {method!r}.")


def _input_interval(config: UNetConfig, position: int) -> tuple[int, int]:
    """Return the first and last input index, along one axis, that reach output index `position`."""
    half = _UNIT_HALF_EXTENT[config.conv_block] * config.convs_per_stage
    first, last = position, position
    skips = []
    for _ in range(config.depth):
        # A decoder stage, from the output back: its convolutions, its skip, its upsampling.
        first, last = first - half, last + half
        skips.append((first, last))
        first, last = _upsampling_source(config.upsampling, first, last)
    first, last = first - half, last + half  # the bottleneck convolutions
    for skip_first, skip_last in reversed(skips):
        # An encoder stage, from the bottleneck back: its max pool and skip, then its convolutions.
        first, last = min(2 * first, skip_first), max(2 * last + 1, skip_last)
        first, last = first - half, last + half
    return first, last


def receptive_field(config: UNetConfig) -> int:
    """Return the theoretical receptive field, in input pixels, of the widest-reaching output pixel.

    The index interval of one output pixel is propagated back to the input along one axis with
    integer arithmetic, so it follows how pooling and upsampling align with the pixel grid. The
    result is the widest interval over the 2**depth output positions of one period.
    """
    widths = []
    for position in range(2**config.depth):
        first, last = _input_interval(config, position)
        widths.append(last - first + 1)
    return max(widths)


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
