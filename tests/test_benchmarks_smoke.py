"""Smoke tests of the benchmark suite: the hand-written reference, the report, and a --quick run."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import keras
import pytest

import zoo
from benchmarks import (contenders, docs_blocks, layer_profile, report, schedule, summary,
                        unet_speed)
from benchmarks.handwritten_unet import build_handwritten_unet
from zoo.analysis import conv_flops

REPO_ROOT = Path(__file__).resolve().parents[1]
ZOO_ONLY_LAYERS = ("InputLayer", "PadToMultiple", "CropToMatch")


def _layer_types(model):
    return Counter(type(layer).__name__ for layer in model.layers
                   if type(layer).__name__ not in ZOO_ONLY_LAYERS)


def _layer_settings(layer) -> dict:
    """Return the config entries that decide a layer's computation, without its name."""
    config = layer.get_config()
    keys = ("filters", "kernel_size", "strides", "padding", "use_bias", "activation",
            "momentum", "epsilon", "pool_size", "axis", "kernel_initializer")
    return {key: config[key] for key in keys if key in config}


def test_handwritten_unet_matches_zoo():
    shape = (64, 64, 3)
    reference = zoo.build("unet", input_shape=shape, num_classes=3, depth=3, base_filters=8)
    handwritten = build_handwritten_unet(shape, num_classes=3, depth=3, base_filters=8)
    assert handwritten.count_params() == reference.count_params()
    assert conv_flops(handwritten) == conv_flops(reference)
    assert _layer_types(handwritten) == _layer_types(reference)
    assert handwritten.output_shape == reference.output_shape


def test_handwritten_unet_layers_match_zoo_by_name():
    reference = zoo.build("unet", input_shape=(None, None, 3), num_classes=2, depth=3,
                          base_filters=8)
    handwritten = build_handwritten_unet((None, None, 3), num_classes=2, depth=3, base_filters=8)
    for layer in reference.layers:
        if type(layer).__name__ in ZOO_ONLY_LAYERS:
            continue
        twin = handwritten.get_layer(layer.name)
        assert type(twin) is type(layer), layer.name
        assert _layer_settings(twin) == _layer_settings(layer), layer.name
        inbound = [tensor.shape for tensor in keras.tree.flatten(layer.input)]
        assert [t.shape for t in keras.tree.flatten(twin.input)] == inbound, layer.name


def test_handwritten_unet_mixed_precision_head():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_handwritten_unet((32, 32, 1), num_classes=2, depth=2, base_filters=4)
    assert model.get_layer("enc1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("head_conv").compute_dtype == "float32"
    assert model.get_layer("head").compute_dtype == "float32"


def _train_record(contender, round_index, seconds):
    return {"task": "train", "round": round_index, "contender": contender,
            "precision": "float32", "xla": "off", "size": 32, "batch": 2, "images": 2,
            "step_seconds": [seconds], "warmup_seconds": [], "peak_rss_mb": 900.0}


def test_ratios_are_paired_per_round():
    # The load doubles in round 1, which slows both models alike: the paired ratio stays 2.
    records = [_train_record("zoo", 0, 0.5), _train_record("handwritten", 0, 1.0),
               _train_record("zoo", 1, 1.0), _train_record("handwritten", 1, 2.0)]
    result = summary.summarize({"records": records, "workers": {}})
    ratio = next(r for r in result["ratios"] if r["key"] == ["train", "zoo", "handwritten"])
    assert ratio["ratio"]["median"] == pytest.approx(2.0)
    assert ratio["ratio"]["min"] == pytest.approx(2.0)
    assert ratio["ratio"]["max"] == pytest.approx(2.0)
    assert ratio["ratio"]["n"] == 2


def test_fraction_of_peak_uses_same_round():
    records = [_train_record("zoo", 0, 1.0), _train_record("zoo", 1, 2.0)]
    for round_index, flops_per_second in ((0, 100.0), (1, 50.0)):
        records.append({"task": "matmul", "round": round_index, "size": 32, "dtype": "float32",
                        "n": 64, "flops_per_second": [flops_per_second]})
    workers = {"train:zoo:float32:off": {"description": {"forward_flops": {"32": 10}}}}
    result = summary.summarize({"records": records, "workers": workers})
    row = result["training"][0]
    # Round 0: 2 images/s x 30 FLOPs = 60 of 100. Round 1: 1 image/s x 30 = 30 of 50.
    assert row["fraction_of_peak"]["median"] == pytest.approx(0.6)
    assert row["fraction_of_peak"]["min"] == pytest.approx(0.6)


def test_rotated_shifts_order():
    assert schedule.rotated([1, 2, 3], 0) == [1, 2, 3]
    assert schedule.rotated([1, 2, 3], 1) == [2, 3, 1]
    assert schedule.rotated([1, 2, 3], 4) == [2, 3, 1]
    assert schedule.rotated([], 2) == []


def test_docs_blocks_replace_only_inside():
    text = ("intro\n<!-- generated: a -->\nold a\n<!-- end generated: a -->\nmiddle\n"
            "<!-- generated: b -->\nold b\n<!-- end generated: b -->\nend\n")
    result = docs_blocks.replace_in_text(text, {"a": "new a \\1", "b": "new b\n\n"})
    assert result == ("intro\n<!-- generated: a -->\nnew a \\1\n<!-- end generated: a -->\n"
                      "middle\n<!-- generated: b -->\nnew b\n<!-- end generated: b -->\nend\n")


@pytest.mark.parametrize("text", [
    "no markers\n",
    "<!-- generated: a -->\n<!-- end generated: a -->\n<!-- generated: a -->\nx\n"
    "<!-- end generated: a -->\n",
])
def test_docs_blocks_reject_missing_or_repeated(text):
    with pytest.raises(ValueError, match="'a' found"):
        docs_blocks.replace_in_text(text, {"a": "content"})


def test_docs_page_has_every_generated_block():
    text = (REPO_ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    names = [*report.DOCS_BLOCKS, "layer-profile-float32", "layer-profile-mixed_bfloat16"]
    docs_blocks.replace_in_text(text, dict.fromkeys(names, ""))


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        unet_speed.parse_args(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--quick", "--write-docs", "--from-results", "--precisions", "--xla"):
        assert option in help_text


def test_write_docs_rejects_quick(capsys):
    with pytest.raises(SystemExit) as exit_info:
        unet_speed.parse_args(["--quick", "--write-docs"])
    assert exit_info.value.code == 2
    assert "--write-docs" in capsys.readouterr().err


def test_layer_profile_tiny_model(tmp_path, capsys):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("before\n<!-- generated: layer-profile-float32 -->\nold\n"
                    "<!-- end generated: layer-profile-float32 -->\nafter\n")
    output = tmp_path / "profile.json"
    code = layer_profile.main(["--size", "32", "--batch-size", "1", "--depth", "2",
                               "--base-filters", "4", "--repeats", "1", "--output", str(output),
                               "--write-docs", "--docs", str(docs)])
    assert code == 0

    profile = json.loads(output.read_text())
    kinds = {row["kind"] for row in profile["layers"]}
    assert {"Conv2D 3x3", "Conv2DTranspose 2x2", "BatchNormalization", "ReLU"} <= kinds
    assert all(row["forward_backward"] > 0 for row in profile["layers"])
    text = docs.read_text()
    assert text.startswith("before\n<!-- generated: layer-profile-float32 -->\nPer-layer profile")
    assert text.endswith("<!-- end generated: layer-profile-float32 -->\nafter\n")
    assert "| layer kind |" in capsys.readouterr().out


def _check_one_worker_at_a_time(records):
    intervals = sorted((r["request_started"], r["request_finished"]) for r in records)
    for (_, previous_end), (start, _) in zip(intervals, intervals[1:]):
        assert start >= previous_end


def _first_timed_train_contender(records, round_index):
    return next(r["contender"] for r in records if r["task"] == "train"
                and r["round"] == round_index and r["step_seconds"])


@pytest.mark.slow
def test_quick_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "quick.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.unet_speed", "--quick", "--no-install-peers",
         "--output", str(output)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "round 2/2" in result.stdout

    results = json.loads(output.read_text())
    records = results["records"]
    assert [record for record in records if "error" in record] == []
    _check_one_worker_at_a_time(records)
    assert _first_timed_train_contender(records, 0) != _first_timed_train_contender(records, 1)

    trained = {(row["contender"], row["precision"]) for row in results["summary"]["training"]}
    assert ("zoo", "float32") in trained
    assert ("handwritten", "float32") in trained
    assert ("zoo", "mixed_bfloat16") in trained
    installed = set(contenders.PEERS) - set(contenders.missing_peers(contenders.DEFAULT_PEERS_DIR))
    for peer in contenders.PEERS:
        if peer in installed:
            assert (peer, "float32") in trained
        else:
            assert peer in results["skipped"]

    for row in results["summary"]["training"]:
        assert row["images_per_second"]["median"] > 0
        assert row["peak_rss_mb"] > 0
        assert row["forward_flops_per_image"] > 0
        assert row["fraction_of_peak"]["median"] > 0
    latency_kinds = {(row["batch"], kind) for row in results["summary"]["latency"]
                     for kind in row["seconds"]}
    assert latency_kinds >= {(1, "signature"), (1, "function"), (1, "eager"),
                             (1, "predict_on_batch"), (2, "signature"), (2, "function")}
    assert {row["dtype"] for row in results["summary"]["matmul_peak"]} == {"float32", "bfloat16"}
    assert results["summary"]["goals"]
    markdown = output.with_suffix(".md").read_text()
    assert "### Training" in markdown
    assert "| goal |" in markdown
