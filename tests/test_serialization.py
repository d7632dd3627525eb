"""Every variant saves to .keras and reloads with safe_mode=True in a fresh process."""

import subprocess
import sys
import textwrap

import keras
import numpy as np

import zoo
from zoo import training

RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import zoo  # registers the custom layers

    folder = sys.argv[1]
    data = np.load(f"{folder}/expected.npz")
    for name in data.files:
        if name == "images":
            continue
        model = keras.saving.load_model(f"{folder}/{name}.keras", safe_mode=True, compile=True)
        assert model.optimizer is not None, name
        outputs = np.asarray(model(data["images"], training=False))
        difference = float(np.abs(outputs - data[name]).max())
        print(name, difference)
        assert difference < 1e-5, (name, difference)
    print("reloaded", len(data.files) - 1)
    """
)


def test_every_variant_reloads_in_fresh_process(tmp_path):
    images = np.random.rand(2, 40, 56, 2).astype("float32")
    expected = {"images": images}
    for name in zoo.names():
        model = zoo.build(name, input_shape=(None, None, 2), num_classes=3, depth=2, base_filters=4)
        training.compile_model(model, 3, loss="ce_dice")
        model.save(tmp_path / f"{name}.keras")
        expected[name] = np.asarray(model(images, training=False))
    np.savez(tmp_path / "expected.npz", **expected)

    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"reloaded {len(zoo.names())}" in result.stdout


def test_prelu_save_reload_twice_same_outputs(tmp_path):
    model = zoo.build("unet-prelu", input_shape=(None, None, 1), num_classes=2, depth=2, base_filters=4)
    first = np.random.rand(1, 48, 48, 1).astype("float32")
    second = np.random.rand(2, 72, 40, 1).astype("float32")
    expected = [np.asarray(model(x)) for x in (first, second)]
    for round_trip in range(2):
        path = tmp_path / f"round{round_trip}.keras"
        model.save(path)
        model = keras.saving.load_model(path, safe_mode=True)
        for x, want in zip((first, second), expected):
            np.testing.assert_allclose(np.asarray(model(x)), want, atol=1e-6)


def test_models_contain_no_lambda_layers():
    for name in zoo.names():
        model = zoo.build(name, input_shape=(None, None, 3), depth=2, base_filters=4)
        assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers), name
