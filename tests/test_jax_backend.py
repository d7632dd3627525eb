"""The builders use only keras.layers and keras.ops, so every variant also runs on JAX."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import keras
    import numpy as np
    import zoo

    assert keras.backend.backend() == "jax", keras.backend.backend()
    for name in zoo.names():
        model = zoo.build(name, input_shape=(None, None, 1), num_classes=3, depth=2, base_filters=2)
        # 37x50 is not a multiple of 4, so the padding and crop layers run too.
        outputs = model(np.random.rand(1, 37, 50, 1).astype("float32"), training=False)
        assert tuple(outputs.shape) == (1, 37, 50, 3), (name, outputs.shape)
    print("jax ok", len(zoo.names()))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed; `pip install -r requirements-dev.txt` adds it")
def test_every_variant_builds_and_runs_on_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax ok" in result.stdout
