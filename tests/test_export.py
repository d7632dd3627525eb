"""SavedModel export: serving signature, reload in a fresh process, versions and the CLI."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from recipes import export as export_recipe
from zoo import export

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


def tiny_unet(input_shape=(None, None, 3)):
    return zoo.build("unet", input_shape=input_shape, num_classes=3, base_filters=4, depth=2)


def random_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny U-Net and its first export, shared by the tests that only read the export."""
    keras.utils.set_random_seed(0)
    model = tiny_unet()
    base_dir = tmp_path_factory.mktemp("saved_models")
    return model, export.export_for_serving(model, base_dir=base_dir)


LOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    outputs = serve(images=tf.constant(np.load(sys.argv[2])))
    np.savez(sys.argv[3], **{key: value.numpy() for key, value in outputs.items()})
    """
)


@pytest.mark.slow
def test_export_reloads_in_fresh_process(exported, tmp_path):
    model, path = exported
    images = random_images((2, 45, 70, 3))
    np.save(tmp_path / "images.npy", images)

    # No PYTHONPATH: the SavedModel must load without the zoo package.
    env = {key: value for key, value in SUBPROCESS_ENV.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), str(tmp_path / "images.npy"),
         str(tmp_path / "outputs.npz")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    outputs = np.load(tmp_path / "outputs.npz")
    expected = np.asarray(model(images.astype("float32") / 255.0, training=False))
    assert outputs["probabilities"].dtype == np.float32
    assert np.max(np.abs(outputs["probabilities"] - expected)) < 1e-5
    np.testing.assert_array_equal(outputs["class_ids"], np.argmax(expected, axis=-1))


def test_export_layout(exported):
    model, path = exported
    assert path.name == "1"
    assert path.parent.name == model.name
    assert (path / "saved_model.pb").is_file()
    leftovers = [entry.name for entry in path.parent.iterdir() if entry.name.startswith(".")]
    assert leftovers == []


def test_serving_any_size_batch(exported):
    _, path = exported
    serve = export.load_for_serving(path)
    outputs = serve(images=tf.constant(random_images((3, 97, 131, 3))))
    assert outputs["class_ids"].shape == (3, 97, 131)
    assert outputs["class_ids"].dtype == tf.int32
    assert outputs["probabilities"].shape == (3, 97, 131, 3)
    assert outputs["probabilities"].dtype == tf.float32


def test_serving_wrong_channel_count_names_it(exported):
    _, path = exported
    serve = export.load_for_serving(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected 3 channel\(s\)"):
        serve(images=tf.constant(random_images((1, 32, 32, 1))))


def test_serving_signature_spec(exported):
    _, path = exported
    serve = export.load_for_serving(path)
    _, inputs = serve.structured_input_signature
    assert inputs["images"].dtype == tf.uint8
    assert inputs["images"].shape.as_list() == [None, None, None, 3]


def test_verify_export_small_difference(exported):
    model, path = exported
    difference = export.verify_export(model, path, random_images((2, 33, 20, 3)))
    assert 0.0 <= difference < 1e-5


def test_verify_export_rejects_float_images(exported):
    model, path = exported
    with pytest.raises(ValueError, match="uint8"):
        export.verify_export(model, path, np.zeros((1, 8, 8, 3), dtype="float32"))


def test_versions_increment_and_never_overwrite(exported):
    model, first = exported
    base_dir = first.parent.parent
    second = export.export_for_serving(model, base_dir=base_dir)
    assert second.name == "2"
    modified = (first / "saved_model.pb").stat().st_mtime_ns

    with pytest.raises(FileExistsError) as error:
        export.export_for_serving(model, base_dir=base_dir, version=1)
    assert str(first) in str(error.value)
    assert "omit it" in str(error.value)
    assert (first / "saved_model.pb").stat().st_mtime_ns == modified
    assert sorted(entry.name for entry in first.parent.iterdir()) == ["1", "2"]


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    # Fail after the SavedModel files are written but before they are renamed into place.
    written = []

    def fail_to_sync(root):
        written.extend(path.name for path in Path(root).iterdir())
        raise OSError("I/O error while syncing")

    monkeypatch.setattr(export, "_sync_tree", fail_to_sync)
    with pytest.raises(OSError, match="I/O error"):
        export.export_for_serving(tiny_unet(), base_dir=tmp_path, name="broken")
    assert "saved_model.pb" in written
    assert list((tmp_path / "broken").iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"version": 0}, "Invalid version"),
    ({"version": "3"}, "Invalid version"),
    ({"name": "a/b"}, "Invalid export name"),
    ({"name": ".."}, "Invalid export name"),
])
def test_invalid_arguments(tmp_path, kwargs, message):
    model = tiny_unet()
    with pytest.raises(ValueError, match=message):
        export.export_for_serving(model, base_dir=tmp_path, **kwargs)
    assert not any(tmp_path.rglob("saved_model.pb"))


def test_next_version_ignores_other_folders(tmp_path, monkeypatch):
    model_dir = tmp_path / "unet"
    for folder in ("3", "10", "notes", ".7.partial-abc"):
        (model_dir / folder).mkdir(parents=True)
    # Version numbering does not depend on the archive content, so skip the slow real write.
    monkeypatch.setattr(export, "_write_archive", lambda model, path: path.mkdir())
    path = export.export_for_serving(tiny_unet(), base_dir=tmp_path)
    assert path == model_dir / "11"


@pytest.mark.slow
def test_fixed_size_model_resizes(tmp_path):
    model = tiny_unet(input_shape=(32, 32, 3))
    path = export.export_for_serving(model, base_dir=tmp_path)
    images = random_images((2, 45, 70, 3))
    outputs = export.load_for_serving(path)(images=tf.constant(images))

    resized = tf.image.resize(images.astype("float32") / 255.0, (32, 32), method="bilinear")
    expected = tf.image.resize(model(resized, training=False), (45, 70), method="bilinear")
    assert outputs["probabilities"].shape == (2, 45, 70, 3)
    assert np.max(np.abs(outputs["probabilities"].numpy() - expected.numpy())) < 1e-5
    np.testing.assert_array_equal(outputs["class_ids"].numpy(), np.argmax(expected, axis=-1))


def float16_logits_model():
    """Model under the mixed_float16 policy whose head returns float16 logits."""
    inputs = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", dtype="mixed_float16")(inputs)
    x = keras.layers.Conv2D(3, 1, dtype="mixed_float16", name="head_conv")(x)
    outputs = keras.layers.Activation("linear", dtype="mixed_float16", name="head")(x)
    return keras.Model(inputs, outputs, name="logits16")


@pytest.mark.slow
def test_float16_logits_become_float32_probabilities(tmp_path):
    model = float16_logits_model()
    assert model.output.dtype == "float16"
    path = export.export_for_serving(model, base_dir=tmp_path)
    images = random_images((2, 20, 24, 3))
    probabilities = export.load_for_serving(path)(images=tf.constant(images))["probabilities"]

    logits = np.asarray(model(images.astype("float32") / 255.0)).astype("float32")
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities.numpy(), tf.nn.softmax(logits).numpy(), atol=1e-5)


@pytest.mark.parametrize("activation", ["sigmoid", "linear"])
def test_single_channel_head_thresholds(activation):
    inputs = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(1, 1, name="head_conv")(inputs)
    outputs = keras.layers.Activation(activation, name="head")(x)
    model = keras.Model(inputs, outputs)
    images = random_images((2, 9, 11, 3))
    result = export.make_serving_function(model)(tf.constant(images))

    probabilities = tf.sigmoid(model(images.astype("float32") / 255.0)).numpy()
    if activation == "sigmoid":
        probabilities = model(images.astype("float32") / 255.0).numpy()
    np.testing.assert_allclose(result["probabilities"].numpy(), probabilities, atol=1e-6)
    np.testing.assert_array_equal(result["class_ids"].numpy(),
                                  (probabilities[..., 0] >= 0.5).astype("int32"))


def test_output_activation_from_head():
    assert export.output_activation(tiny_unet()) == "softmax"
    assert export.output_activation(float16_logits_model()) == "linear"


def test_output_activation_unsupported():
    inputs = keras.Input(shape=(None, None, 3))
    outputs = keras.layers.Conv2D(3, 1, activation="relu", name="head")(inputs)
    with pytest.raises(ValueError, match="'relu'"):
        export.output_activation(keras.Model(inputs, outputs))


# Command line

def test_cli_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        export_recipe.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--base-dir", "--name", "--version", "--tolerance", "--seed"):
        assert option in help_text


def test_cli_missing_model_file(tmp_path, capsys):
    missing = tmp_path / "absent.keras"
    with pytest.raises(SystemExit) as exit_info:
        export_recipe.main([str(missing)])
    assert exit_info.value.code == 2
    assert f"model file not found: {missing}" in capsys.readouterr().err


def test_cli_existing_version(exported, tmp_path, capsys):
    model, first = exported
    model.save(tmp_path / "tiny.keras")
    code = export_recipe.main([str(tmp_path / "tiny.keras"), "--base-dir",
                               str(first.parent.parent), "--name", first.parent.name,
                               "--version", "1"])
    assert code == 1
    assert f"Export version {first} already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    model = tiny_unet()
    model.save(tmp_path / "tiny.keras")
    result = subprocess.run(
        [sys.executable, "-m", "recipes.export", str(tmp_path / "tiny.keras"),
         "--base-dir", str(tmp_path / "saved"), "--name", "tiny", "--version", "4"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=SUBPROCESS_ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    target = tmp_path / "saved" / "tiny" / "4"
    assert f"SavedModel written to {target}" in result.stdout
    assert "Parity check" in result.stdout
    assert (target / "saved_model.pb").is_file()
