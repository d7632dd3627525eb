"""Tests of the checkerboard measure and of the upsampling layers at initialisation."""

import keras
import numpy as np
import pytest

import zoo
from zoo import blocks
from zoo.analysis import checkerboard_score


def test_score_high_for_checkerboard():
    rows, cols = np.indices((32, 32))
    board = ((rows + cols) % 2).astype("float32")
    assert checkerboard_score(board) > 0.99


def test_score_near_zero_for_smooth_image():
    rows, cols = np.indices((64, 64))
    smooth = np.sin(rows / 9.0) + np.cos(cols / 7.0)
    assert checkerboard_score(smooth) < 0.01
    assert checkerboard_score(np.full((16, 16, 3), 5.0)) == 0.0


def test_score_rejects_tiny_image():
    with pytest.raises(ValueError, match="sides of at least 4"):
        checkerboard_score(np.zeros((3, 3)))


def _upsample_constant(method):
    config = zoo.config_of("unet", upsampling=method)
    inputs = keras.Input((16, 16, 8))
    outputs = blocks.upsample(inputs, 8, config, "dec1")
    model = keras.Model(inputs, outputs)
    result = np.asarray(model(np.ones((1, 16, 16, 8), dtype="float32")))[0]
    return result[6:-6, 6:-6]  # the interior, away from the zero padding at the borders


def test_icnr_pixel_shuffle_has_no_pattern_at_init():
    assert checkerboard_score(_upsample_constant("pixel_shuffle")) < 1e-6


def test_transpose3_has_pattern_at_init():
    assert checkerboard_score(_upsample_constant("transpose3")) > 0.5


def test_resize_conv_has_no_pattern_at_init():
    assert checkerboard_score(_upsample_constant("bilinear")) < 1e-6
