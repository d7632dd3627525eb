"""Smoke test of `benchmarks.pipeline_speed`: one --quick run in a subprocess, checked through its JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
RATE_KEYS = ("pipeline_images_per_second", "training_images_per_second", "ratio")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline_speed")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.pipeline_speed", "--quick",
         "--data-dir", str(folder / "tfds"), "--output-dir", str(folder / "out")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "## Input pipeline against training" in result.stdout
    written = sorted((folder / "out").glob("pipeline_speed-*.json"))
    assert len(written) == 1
    return json.loads(written[0].read_text())


def _row(results, dataset):
    rows = [row for row in results["summary"] if row["dataset"] == dataset]
    assert len(rows) == 1, [row["dataset"] for row in results["summary"]]
    return rows[0]


def _check_rates(row):
    for key in RATE_KEYS:
        assert row[key]["n"] == 1, key
        assert row[key]["median"] > 0, key
    assert isinstance(row["passed"], bool)


@pytest.mark.slow
def test_quick_run_offline_set(quick_results):
    assert {"command", "machine", "tensorflow", "records", "summary", "passed"} <= set(quick_results)
    assert quick_results["machine"]["logical_cpus"] > 0
    row = _row(quick_results, "zoo_shapes_small")
    assert row["size"] == 32
    assert row["batch_size"] == 8
    assert row["model"] == "unet-spatialdrop"
    assert row["augment"] is True
    _check_rates(row)
    kinds = {record["kind"] for record in quick_results["records"] if record["dataset"] == "zoo_shapes_small"}
    assert kinds == {"pipeline", "training"}


@pytest.mark.slow
def test_quick_run_membrane(quick_results):
    shared_dataset("membrane")
    row = _row(quick_results, "membrane")
    assert row["mask_encoding"] == "binary_inverted"
    assert row["classes"] == 2
    _check_rates(row)
