"""KerasTuner search: the U-Net HyperModel, the tune recipe, resume, settings checks, distribution.

The searches are real but tiny: zoo_shapes/small at 32x32, depth 2, base_filters 4, one
epoch of two steps and one validation batch.
"""

import csv
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import keras_tuner as kt
import pytest
import tensorflow as tf

import zoo
from recipes import tune
from zoo import data, export, tuning

# KerasTuner 1.4.8's oracle lock calls threading APIs that Python 3.10+ marks deprecated.
pytestmark = [
    pytest.mark.filterwarnings("ignore:currentThread\\(\\) is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:getName\\(\\) is deprecated:DeprecationWarning"),
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                  "PYTHONUNBUFFERED": "1"}
TINY_SEARCH = ["--dataset", "zoo_shapes/small", "--image-size", "32", "--fix", "depth=2",
               "--fix", "base_filters=4", "--epochs", "1", "--steps-per-epoch", "2",
               "--validation-steps", "1"]
SUBPROCESS_TIMEOUT = 300


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """zoo_shapes/small, generated once so that searches and subprocesses only read it."""
    path = tmp_path_factory.mktemp("tfds")
    data.load("zoo_shapes/small", image_size=32, data_dir=path)
    return path


def tiny_hypermodel(**kwargs):
    return tuning.UNetHyperModel(5, 3, image_size=32, **kwargs)


def declared(hypermodel, values=None):
    """Declare the space into fresh HyperParameters, with `values` preset; return hp, values."""
    hp = kt.HyperParameters()
    hp.values.update(values or {})
    return hp, hypermodel.declare_hyperparameters(hp)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# HyperModel and search space.


def test_space_declares_every_knob():
    hp, _ = declared(tiny_hypermodel())
    assert sorted(parameter.name for parameter in hp.space) == sorted(tuning.KNOBS)
    rate = hp.get_config()["space"][[p.name for p in hp.space].index("dropout_rate")]
    assert rate["config"]["conditions"][0]["config"]["name"] == "dropout"
    assert rate["config"]["conditions"][0]["config"]["values"] == ["standard", "spatial"]


def test_dropout_rate_only_with_dropout():
    hypermodel = tiny_hypermodel()
    hp, values = declared(hypermodel, {"dropout": "none"})
    assert "dropout_rate" not in hp.values
    assert values["dropout_rate"] is None
    assert hypermodel.config_from_values(values).dropout == "none"

    hp, values = declared(hypermodel, {"dropout": "spatial", "dropout_rate": 0.3})
    assert hp.values["dropout_rate"] == 0.3
    assert hypermodel.config_from_values(values).dropout_rate == 0.3


def test_no_dropout_rate_when_dropout_fixed_none():
    hp, _ = declared(tiny_hypermodel(fixed={"dropout": "none"}))
    assert "dropout_rate" not in [parameter.name for parameter in hp.space]


def test_fixed_choices_and_ranges_applied():
    hypermodel = tiny_hypermodel(
        fixed={"depth": 3, "norm": "group"},
        choices={"upsampling": ["bilinear", "transpose2"]},
        ranges={"base_filters": (8, 32), "learning_rate": (1e-4, 1e-3)},
    )
    hp, values = declared(hypermodel)
    by_name = {parameter.name: parameter for parameter in hp.space}
    assert isinstance(by_name["depth"], kt.engine.hyperparameters.Fixed)
    assert values["depth"] == 3
    assert list(by_name["upsampling"].values) == ["bilinear", "transpose2"]
    assert list(by_name["base_filters"].values) == [8, 16, 32]
    assert by_name["learning_rate"].min_value == 1e-4
    assert by_name["learning_rate"].max_value == 1e-3
    assert hypermodel.config_from_values(values).norm == "group"


@pytest.mark.parametrize("settings, message", [
    ({"choices": {"upsampling": ["bilinear", "cubic"]}},
     "knob 'upsampling': 'cubic'. Expected one of: transpose2"),
    ({"choices": {"upsamplin": ["bilinear"]}}, "Unknown knob 'upsamplin' in choices"),
    ({"fixed": {"nrom": "group"}}, "Unknown knob or UNetConfig field 'nrom' in fixed"),
    ({"ranges": {"upsampling": ("a", "b")}}, "Knob 'upsampling' is categorical and has no range"),
    ({"ranges": {"base_filters": (32, 8)}}, "low 32 is above high 8"),
    ({"ranges": {"learning_rate": (0.0, 0.1)}}, "knob 'learning_rate': 0.0. Expected a number in (0.0, 1.0)"),
    ({"fixed": {"depth": 6}}, "depth must be at most 5"),
    ({"fixed": {"dropout": "none", "dropout_rate": 0.2}}, "Knob 'dropout_rate' has no effect"),
    ({"fixed": {"depth": 2}, "ranges": {"depth": (2, 3)}}, "Knob 'depth' appears in fixed and ranges"),
    ({"choices": {"loss": []}}, "Invalid choices for knob 'loss'"),
])
def test_invalid_knob_settings_rejected(settings, message):
    with pytest.raises(ValueError) as raised:
        tiny_hypermodel(**settings)
    assert message in str(raised.value)


def test_default_depth_capped_by_image_size():
    hypermodel = tuning.UNetHyperModel(5, 3, image_size=8)
    assert hypermodel.space["depth"] == ("range", 2, 3)


def test_build_returns_compiled_model():
    hypermodel = tiny_hypermodel(fixed={"depth": 2, "base_filters": 4, "upsampling": "bilinear"})
    hp, _ = declared(hypermodel, {"loss": "dice", "dropout": "standard"})
    model = hypermodel.build(hp)
    assert model.output_shape == (None, None, None, 5)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert "mean_iou" in json.dumps(model.get_compile_config()["metrics"])


@pytest.mark.parametrize("kind, oracle_class", [
    ("random", kt.oracles.RandomSearchOracle),
    ("hyperband", kt.oracles.HyperbandOracle),
    ("bayesian", kt.oracles.BayesianOptimizationOracle),
])
def test_make_tuner_kinds(tmp_path, kind, oracle_class):
    hypermodel = tiny_hypermodel(fixed={"depth": 2, "base_filters": 4})
    tuner = tuning.make_tuner(kind, hypermodel, tmp_path, max_trials=2, max_epochs=2, seed=1)
    assert isinstance(tuner.oracle, oracle_class)
    assert tuner.oracle.objective.name == "val_mean_iou"
    assert tuner.oracle.objective.direction == "max"


def test_make_tuner_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="Unknown tuner: 'grid'"):
        tuning.make_tuner("grid", tiny_hypermodel(), tmp_path)


def test_objective_direction_inferred():
    assert tuning.make_objective("val_loss").direction == "min"
    assert tuning.make_objective("val_mean_iou").direction == "max"
    assert tuning.make_objective("val_loss", "max").direction == "max"


def test_strategies(monkeypatch):
    assert tuning.make_strategy("default") is None
    assert isinstance(tuning.make_strategy("mirrored"), tf.distribute.MirroredStrategy)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        tuning.make_strategy("multi_worker")


def test_distributed_role(monkeypatch):
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    assert tuning.distributed_role() == "local"
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert tuning.distributed_role() == "chief"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner1")
    assert tuning.distributed_role() == "worker"


# Search directory settings.


def test_settings_stored_then_matched(tmp_path):
    settings = {"space": {"depth": [2, 3]}, "epochs": 1}
    tuning.check_search_directory(tmp_path, settings)
    assert json.loads((tmp_path / tuning.SETTINGS_FILE).read_text()) == settings
    tuning.check_search_directory(tmp_path, settings)


def test_settings_changed_rejected(tmp_path):
    tuning.check_search_directory(tmp_path, {"space": 1, "epochs": 1})
    (tmp_path / tuning.PROJECT_NAME).mkdir()
    with pytest.raises(ValueError, match=r"different search \(changed: epochs\)"):
        tuning.check_search_directory(tmp_path, {"space": 1, "epochs": 2})

    (tmp_path / "notes.txt").write_text("kept")
    tuning.check_search_directory(tmp_path, {"space": 1, "epochs": 2}, overwrite=True)
    assert not (tmp_path / tuning.PROJECT_NAME).exists()
    assert (tmp_path / "notes.txt").read_text() == "kept"
    assert json.loads((tmp_path / tuning.SETTINGS_FILE).read_text())["epochs"] == 2


def test_project_without_settings_rejected(tmp_path):
    (tmp_path / tuning.PROJECT_NAME).mkdir()
    with pytest.raises(ValueError, match="without search.json"):
        tuning.check_search_directory(tmp_path, {"space": 1})


# Recipe arguments.


def test_recipe_knob_arguments():
    args = tune.parse_args(["--fix", "depth=3", "--fix", "residual=true",
                            "--choices", "upsampling=bilinear,transpose2",
                            "--range", "learning_rate=1e-4,1e-3"])
    assert args.fixed == {"depth": 3, "residual": True}
    assert args.choices == {"upsampling": ["bilinear", "transpose2"]}
    assert args.ranges == {"learning_rate": (1e-4, 1e-3), "base_filters": tune.SMALL_RANGES["base_filters"]}
    assert tune.parse_args(["--full-space"]).ranges == {}


@pytest.mark.parametrize("argv, message", [
    (["--range", "depth=2"], "Expected KNOB=LOW,HIGH"),
    (["--fix", "depth"], "Invalid --fix 'depth'"),
    (["--max-trials", "0"], "--max-trials must be at least 1"),
])
def test_recipe_argument_errors(capsys, argv, message):
    with pytest.raises(SystemExit):
        tune.parse_args(argv)
    assert message in capsys.readouterr().err


def test_recipe_help_lists_knobs(capsys):
    with pytest.raises(SystemExit):
        tune.parse_args(["--help"])
    output = capsys.readouterr().out
    for knob in tuning.KNOBS:
        assert knob in output
    assert "--max-trials" in output


def test_restart_drops_overwrite(monkeypatch):
    executed = []
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "recipes.tune", "--overwrite", "--epochs", "1"])
    monkeypatch.setattr(os, "execv", lambda path, arguments: executed.append((path, arguments)))
    tune.restart_in_place()
    assert executed == [(sys.executable, ["python", "-m", "recipes.tune", "--epochs", "1"])]


# Real searches.


@pytest.fixture(scope="module")
def finished_search(data_dir, tmp_path_factory):
    """A finished 2-trial random search of the recipe, with its export."""
    root = tmp_path_factory.mktemp("search")
    directory, export_dir = root / "tuning", root / "saved_models"
    code = tune.main([*TINY_SEARCH, "--data-dir", str(data_dir), "--max-trials", "2",
                      "--directory", str(directory), "--export-dir", str(export_dir)])
    assert code == 0
    return directory, export_dir


@pytest.mark.slow
def test_search_results_table(finished_search):
    directory, _ = finished_search
    rows = read_rows(directory / tuning.RESULTS_CSV)
    assert [row["rank"] for row in rows] == ["1", "2"]
    assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED"]
    scores = [float(row["val_mean_iou"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    for knob in tuning.KNOBS:
        assert knob in rows[0]
    assert {row["depth"] for row in rows} == {"2"}
    assert {row["tuner_id"] for row in rows} == {"tuner0"}

    markdown = (directory / tuning.RESULTS_MARKDOWN).read_text().splitlines()
    assert len(markdown) == 2 + len(rows)
    assert markdown[0].startswith("| rank | trial_id | status | val_mean_iou |")
    for line, row in zip(markdown[2:], rows):
        assert line.split(" | ")[1] == row["trial_id"]


@pytest.mark.slow
def test_best_config_builds_same_model(finished_search):
    directory, _ = finished_search
    best = json.loads((directory / tuning.BEST_HYPERPARAMETERS_FILE).read_text())
    assert best["trial_id"] == read_rows(directory / tuning.RESULTS_CSV)[0]["trial_id"]
    assert set(best) >= {"learning_rate", "loss", "score", "hyperparameters"}

    rebuilt = zoo.build(config=str(directory / tuning.BEST_CONFIG_FILE),
                        input_shape=(None, None, 3), num_classes=5)
    trained = keras.saving.load_model(directory / tuning.BEST_MODEL_FILE, compile=False)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in trained.layers]
    assert rebuilt.count_params() == trained.count_params()


@pytest.mark.slow
def test_best_model_exported(finished_search):
    _, export_dir = finished_search
    version = export_dir / "unet-tuned" / "1"
    assert (version / "saved_model.pb").is_file()
    loaded = tf.saved_model.load(str(version))
    assert export.SIGNATURE_NAME in loaded.signatures
    images = tf.zeros((1, 32, 32, 3), tf.uint8)
    probabilities = loaded.signatures[export.SIGNATURE_NAME](images=images)["probabilities"]
    assert probabilities.shape == (1, 32, 32, 5)


@pytest.mark.slow
def test_changed_space_rejected_then_overwritten(finished_search, data_dir, tmp_path, capsys):
    directory = tmp_path / "tuning"
    shutil.copytree(finished_search[0], directory)
    changed = [*TINY_SEARCH, "--data-dir", str(data_dir), "--directory", str(directory),
               "--choices", "upsampling=bilinear", "--max-trials", "1", "--no-export"]

    assert tune.main(changed) == 2
    error = capsys.readouterr().err
    assert "contains a different search (changed: space)" in error
    assert "--overwrite" in error
    assert len(read_rows(directory / tuning.RESULTS_CSV)) == 2

    assert tune.main([*changed, "--overwrite"]) == 0
    rows = read_rows(directory / tuning.RESULTS_CSV)
    assert [row["upsampling"] for row in rows] == ["bilinear"]
    assert not (directory / tuning.BEST_MODEL_FILE).exists()


def start_recipe(arguments, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "recipes.tune", *arguments], cwd=REPO_ROOT,
        env={**SUBPROCESS_ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )


class OutputReader:
    """Collects a subprocess's output lines in a thread, so that waits can time out."""

    def __init__(self, process):
        self.lines = []
        self._started = time.monotonic()
        self._queue = queue.Queue()
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def _keep(self, line):
        # The elapsed seconds make a failure's output show where the time went.
        self.lines.append(f"[{time.monotonic() - self._started:6.1f} s] {line}")

    def wait_for(self, text, timeout=SUBPROCESS_TIMEOUT):
        """Return the first new line that contains `text`; fail at the end or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                pytest.fail(f"output ended before a line with {text!r}:\n{''.join(self.lines)}")
            self._keep(line)
            if text in line:
                return line

    def rest(self):
        """Wait for the end of the output and return all of it."""
        while self.wait_for_end():
            pass
        return "".join(self.lines)

    def wait_for_end(self):
        line = self._queue.get(timeout=SUBPROCESS_TIMEOUT)
        if line is not None:
            self._keep(line)
        return line is not None


@pytest.mark.slow
def test_killed_search_resumes(data_dir, tmp_path):
    directory = tmp_path / "tuning"
    arguments = [*TINY_SEARCH, "--data-dir", str(data_dir), "--max-trials", "2",
                 "--directory", str(directory), "--no-export"]
    process = start_recipe(arguments)
    try:
        first = OutputReader(process).wait_for(" finished: ")
    finally:
        process.kill()
        process.wait(timeout=60)
    finished_id = first.split()[1]
    assert "finished: COMPLETED" in first
    trial_file = directory / tuning.PROJECT_NAME / f"trial_{finished_id}" / "trial.json"
    score_before = json.loads(trial_file.read_text())["score"]

    resumed = subprocess.run([sys.executable, "-m", "recipes.tune", *arguments], cwd=REPO_ROOT,
                             env=SUBPROCESS_ENV, capture_output=True, text=True,
                             timeout=SUBPROCESS_TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Trial {finished_id} finished" not in resumed.stdout
    rows = read_rows(directory / tuning.RESULTS_CSV)
    assert len(rows) == 2
    assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED"]
    by_id = {row["trial_id"]: row for row in rows}
    assert float(by_id[finished_id]["val_mean_iou"]) == score_before


def free_local_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_distributed_chief_and_two_workers(data_dir, tmp_path):
    """Chief and two workers on 127.0.0.1; each worker restarts itself after every trial."""
    directory = tmp_path / "tuning"
    # With a restart after every trial, a worker rejoins only after a start-up, which leaves
    # the other worker time to request the second trial.
    arguments = [*TINY_SEARCH, "--data-dir", str(data_dir), "--max-trials", "2",
                 "--directory", str(directory), "--no-export", "--trials-per-process", "1"]
    address = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_local_port())}

    chief = start_recipe(arguments, {**address, "KERASTUNER_TUNER_ID": "chief"})
    processes = [chief]
    try:
        chief_output = OutputReader(chief)
        chief_output.wait_for("Chief oracle serving on 127.0.0.1:")
        workers = [start_recipe(arguments, {**address, "KERASTUNER_TUNER_ID": f"tuner{index}"})
                   for index in range(2)]
        processes += workers
        worker_outputs = [OutputReader(worker) for worker in workers]
        worker_texts = [output.rest() for output in worker_outputs]
        chief_text = chief_output.rest()
        codes = [process.wait(timeout=SUBPROCESS_TIMEOUT) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    assert codes == [0, 0, 0], chief_text + "".join(worker_texts)
    for text in worker_texts:
        assert "Worker done" in text
    assert any("Restarting the process" in text for text in worker_texts)

    rows = read_rows(directory / tuning.RESULTS_CSV)
    assert len(rows) == 2
    assert {row["status"] for row in rows} == {"COMPLETED"}
    assert {row["tuner_id"] for row in rows} == {"tuner0", "tuner1"}
