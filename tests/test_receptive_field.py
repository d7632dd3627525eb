"""Tests of `zoo.analysis.receptive_field` against the dependencies of real Keras layers.

Every test sets all kernels to 1 and all biases to 0 and feeds nonnegative inputs, so no
contributions cancel: an output pixel is nonzero exactly when an input impulse can reach it.
A whole row (or column) of ones as the impulse measures the dependency along one axis.
"""

import keras
import numpy as np
import pytest

import zoo
from zoo import analysis, blocks
from zoo.config import UNetConfig

UPSAMPLINGS = ("transpose2", "transpose3", "transpose4", "nearest", "bilinear", "pixel_shuffle")


def _set_constant_weights(model):
    for weight in model.weights:
        if weight.path.endswith(("kernel", "bias")):
            value = 1.0 if weight.path.endswith("kernel") else 0.0
            weight.assign(np.full(weight.shape, value, dtype="float32"))


def _sources(model, size, axis=1):
    """Return a (size, size) mask that is True at [i, j] when impulse i reaches output line j.

    Impulse i is row i of ones for axis 1 (height) and column i for axis 2 (width), and line j
    is the output row or column. The other side is 8 pixels, a multiple of 2**depth here.
    """
    shape = [size, 8, 8, 1]
    shape[axis] = size
    impulses = np.zeros(shape, dtype="float32")
    for line in range(size):
        index = [line, slice(None), slice(None)]
        index[axis] = line
        impulses[tuple(index)] = 1.0
    outputs = np.asarray(model(impulses, training=False))
    assert np.isfinite(outputs).all()
    other_axis = 3 - axis
    return np.abs(outputs).sum(axis=(other_axis, 3)) > 0


def _source_interval(reached, line):
    sources = np.flatnonzero(reached[:, line])
    assert sources.size > 0, f"output line {line} depends on no input line"
    assert sources[-1] - sources[0] + 1 == sources.size, f"output line {line}: gaps in {sources}"
    return int(sources[0]), int(sources[-1])


@pytest.mark.parametrize("method", UPSAMPLINGS)
def test_upsampling_source_matches_keras(method):
    coarse = 12
    inputs = keras.Input((None, None, 1))
    outputs = blocks.upsample(inputs, 1, UNetConfig(upsampling=method), "dec1")
    model = keras.Model(inputs, outputs)
    _set_constant_weights(model)
    reached = _sources(model, coarse)

    # Rows near the border read zero padding or clamped pixels, so only inner rows are checked.
    inner = range(4, 2 * coarse - 4)
    for row in inner:
        assert analysis._upsampling_source(method, row, row) == _source_interval(reached, row)
    for first in inner:
        for last in range(first, inner.stop):
            expected = (_source_interval(reached, first)[0], _source_interval(reached, last)[1])
            assert analysis._upsampling_source(method, first, last) == expected, (first, last)


@pytest.mark.parametrize("overrides", [
    *({"upsampling": method} for method in UPSAMPLINGS),
    {"conv_block": "single5x5", "upsampling": "transpose3"},
    {"conv_block": "factorized5x5", "upsampling": "nearest"},
    {"conv_block": "asymmetric", "upsampling": "bilinear"},
    {"convs_per_stage": 2, "depth": 2, "upsampling": "transpose4", "residual": True},
    {"depth": 2, "upsampling": "pixel_shuffle", "attention": True},
], ids=str)
def test_receptive_field_matches_network(overrides):
    # Depth 3 with one conv per stage is the smallest network where the continuous stride
    # formula (which ignores the grid alignment) is wrong for every upsampling method.
    small = {"depth": 3, "convs_per_stage": 1, "base_filters": 2}
    config = zoo.config_of("unet", **{**small, **overrides})
    model = zoo.build(config=config, input_shape=(None, None, 1), num_classes=2)
    logits = keras.Model(model.input, model.get_layer("head_conv").output)
    _set_constant_weights(logits)
    field = analysis.receptive_field(config)
    period = 2**config.depth
    # The size is a multiple of 2**depth, so the model pads nothing and indices line up.
    size = 192
    assert field + 2 * period < size, "the field must not reach the border"

    widths = []
    for axis in (1, 2):
        reached = _sources(logits, size, axis)
        start = size // 2 - period
        for position in range(start, start + period):
            first, last = _source_interval(reached, position)
            assert (first, last) == analysis._input_interval(config, position), (axis, position)
            widths.append(last - first + 1)
    assert max(widths) == field
