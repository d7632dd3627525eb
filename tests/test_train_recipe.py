"""End-to-end tests of recipes.train: training, held-out report, export, resume."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from zoo import training
from recipes import common, train

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = ["--set", "depth=2", "--set", "base_filters=4"]


def _tiny_args(tmp_path, *extra):
    return ["--dataset", "zoo_shapes/small", "--data-dir", str(tmp_path / "tfds"),
            "--image-size", "32", "--batch-size", "8", *TINY_MODEL, *extra]


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_reports_and_exports(tmp_path, capsys):
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    code = train.main(_tiny_args(tmp_path, "--epochs", "2", "--run-dir", str(run_dir),
                                 "--export-dir", str(export_dir)))
    assert code == 0
    output = capsys.readouterr().out
    report = json.loads((run_dir / "metrics.json").read_text())
    assert set(report["per_class_iou"]) == {"background", "disk", "square", "triangle", "ring"}
    assert 0.0 <= report["mean_iou"] <= 1.0
    assert report["saved_model"] == str(export_dir / "unet-spatialdrop" / "1")
    assert output.rstrip().endswith(f"SavedModel written to {export_dir / 'unet-spatialdrop' / '1'}")
    reloaded = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert reloaded.get_layer("bottleneck_drop").__class__.__name__ == "SpatialDropout2D"
    serve = tf.saved_model.load(report["saved_model"]).signatures["serving_default"]
    result = serve(images=tf.zeros((1, 45, 37, 3), tf.uint8))
    assert tuple(result["class_ids"].shape) == (1, 45, 37)


def test_finished_run_is_not_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = _tiny_args(tmp_path, "--epochs", "1", "--run-dir", str(run_dir), "--no-export")
    assert train.main(args) == 0
    first = (run_dir / "metrics.json").read_text()
    capsys.readouterr()
    assert train.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (run_dir / "metrics.json").read_text() == first

    assert train.main(args + ["--overwrite"]) == 0
    assert len(_history(run_dir)) == 1, "--overwrite must replace the earlier history"


def test_bad_dataset_fails_before_a_run_folder_exists(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = _tiny_args(tmp_path, "--run-dir", str(run_dir), "--no-export")
    args[args.index("--dataset") + 1] = str(tmp_path / "missing")
    assert train.main(args) == 2
    assert "missing" in capsys.readouterr().err
    assert not run_dir.exists()


def test_short_training_loss_falls(tmp_path):
    splits = zoo.data.load("zoo_shapes/small", image_size=32, batch_size=8, augment=False,
                           data_dir=tmp_path / "tfds")
    model = zoo.build("unet", input_shape=(None, None, 3), num_classes=5, depth=2, base_filters=8)
    training.compile_model(model, 5, learning_rate=3e-3)
    history = model.fit(splits.train, epochs=4, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0], history


def _write_folder(root: Path, count: int, size: int = 40) -> Path:
    """Write `count` gray images with a bright square and 0/255 masks of that square."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        top, left = rng.integers(4, size - 16, size=2)
        image = rng.integers(0, 60, size=(size, size), dtype=np.uint8)
        mask = np.zeros((size, size), dtype=np.uint8)
        image[top:top + 12, left:left + 12] = 220
        mask[top:top + 12, left:left + 12] = 255
        Image.fromarray(image).save(root / "images" / f"{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"{index}.png")
    return root


def test_train_on_folder_binary_masks(tmp_path):
    folder = _write_folder(tmp_path / "squares", count=10)
    run_dir = tmp_path / "run"
    code = train.main(["--dataset", str(folder), "--image-size", "32", "--batch-size", "4",
                       "--epochs", "1", *TINY_MODEL, "--run-dir", str(run_dir), "--no-export"])
    assert code == 0
    report = json.loads((run_dir / "metrics.json").read_text())
    assert len(report["per_class_iou"]) == 2
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["depth"] == 2


def test_invalid_override_fails_before_training(tmp_path, capsys):
    code = train.main(_tiny_args(tmp_path, "--set", "upsampling=cubic", "--run-dir", str(tmp_path / "r")))
    assert code == 2
    assert "'upsampling': 'cubic'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_killed_training_resumes(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "recipes.train",
               *_tiny_args(tmp_path, "--epochs", "6", "--run-dir", str(run_dir), "--no-export")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (run_dir / "history.csv").exists() and len(_history(run_dir)) >= 2:
            break
        time.sleep(0.2)
    process.kill()
    process.wait()
    epochs_before = [int(row["epoch"]) for row in _history(run_dir)]
    assert epochs_before and not (run_dir / "metrics.json").exists(), "run finished before the kill"

    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming run in" in result.stdout
    epochs_after = [int(row["epoch"]) for row in _history(run_dir)][len(epochs_before):]
    assert epochs_after[0] >= 1, "the resumed run started again from epoch 0"
    assert epochs_after[-1] == 5
    assert (run_dir / "metrics.json").exists()


def test_precision_names_match_the_library():
    assert common.PRECISIONS == training.PRECISIONS
