"""Tests of the compare recipe, the effective receptive field and the checkerboard ranking.

The recipe runs once per module on zoo_shapes/small (generated offline into a temporary
folder) with 2 variants, 2 seeds, 1 epoch of 4 images at 32 px and a 4-filter, depth-2 U-Net.
"""

import json
import re

import numpy as np
import pytest
from PIL import Image

import zoo
from recipes import compare
from zoo import analysis, checkerboard, experiments, receptive

TINY = {"base_filters": 4, "depth": 2}
# With 4 filters, every ReLU on the path to the centre pixel can be inactive at
# initialisation, which leaves no gradient at all. 8 filters avoid that for these variants.
RECEPTIVE = {"base_filters": 8, "depth": 2}
VARIANTS = ("unet-pixelshuffle", "unet-transpose3")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """Run the recipe once and return its arguments, output folder and report path."""
    root = tmp_path_factory.mktemp("compare")
    output = root / "results"
    argv = [
        "--variants", ",".join(VARIANTS), "--dataset", "zoo_shapes/small",
        "--data-dir", str(root / "tfds"), "--seeds", "2", "--epochs", "1",
        "--image-size", "32", "--batch-size", "4", "--max-train-images", "4",
        "--set", "base_filters=4", "--set", "depth=2", "--output", str(output),
    ]
    assert compare.main(argv) == 0
    return argv, output, root / "results.md"


def _result_paths(output):
    return sorted((output / "runs").rglob("seed*.json"))


def test_compare_stores_each_run(comparison):
    _, output, _ = comparison
    for variant in VARIANTS:
        for seed in (0, 1):
            path = output / "runs" / "zoo_shapes_small" / variant / f"seed{seed}.json"
            result = json.loads(path.read_text())
            assert result["variant"] == variant
            assert result["seed"] == seed
            assert 0.0 <= result["mean_iou"] <= 1.0
            assert result["budget"]["epochs"] == 1
            assert result["budget"]["overrides"] == TINY


def test_compare_report_table_rows(comparison):
    argv, _, report = comparison
    text = report.read_text()
    for variant in VARIANTS:
        row = re.search(rf"^\| {re.escape(variant)} \| (\d\.\d{{3}}) ± (\d\.\d{{3}}) \| 2 \|", text, re.M)
        assert row, f"no mean ± std row for {variant}"
    assert "| unet-transpose3 |" in text
    assert "python -m recipes.compare " + " ".join(argv[:4]) in text
    assert "Budget: `zoo_shapes/small`, 32 px, batch 4, 1 epoch of at most 4 training images" in text
    assert "Machine: " in text


def test_compare_report_figures_are_png(comparison):
    _, output, report = comparison
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text())
    assert len(links) == 4  # IoU bars, learning curves, checkerboard panels, receptive fields
    for link in links:
        path = report.parent / link
        assert path.parent == output
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()


def test_compare_report_ranks_checkerboard(comparison):
    _, _, report = comparison
    ranking = re.search(r"at initialisation, ranked by the grey-image feature score: (.*)\.$",
                        report.read_text(), re.M)
    assert ranking
    assert ranking.group(1).startswith("unet-transpose3 (")


def test_compare_rerun_skips_finished(comparison, capsys):
    argv, output, _ = comparison
    interrupted = output / "runs" / "zoo_shapes_small" / VARIANTS[1] / "seed1.json"
    interrupted.unlink()
    finished = {path: path.stat().st_mtime_ns for path in _result_paths(output)}
    capsys.readouterr()

    assert compare.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count(": skipped, finished at") == 3
    assert printed.count(": training") == 1
    assert f"[4/4] zoo_shapes_small {VARIANTS[1]} seed 1: training" in printed
    assert interrupted.exists()
    for path, modified in finished.items():
        assert path.stat().st_mtime_ns == modified, f"{path} was trained again"


def test_report_only_keeps_training_command(comparison, capsys):
    argv, output, report_path = comparison
    results = {path: path.stat().st_mtime_ns for path in _result_paths(output)}
    report_path.unlink()
    capsys.readouterr()

    assert compare.main(argv + ["--report-only"]) == 0
    printed = capsys.readouterr().out
    assert ": training" not in printed
    report = report_path.read_text()
    assert "--report-only" not in report
    assert "--variants " + ",".join(VARIANTS) in report
    for path, modified in results.items():
        assert path.stat().st_mtime_ns == modified, f"{path} was trained again"


def test_compare_rejects_other_budget(comparison, capsys):
    argv, output, _ = comparison
    changed = list(argv)
    changed[changed.index("--epochs") + 1] = "2"
    before = _result_paths(output)
    capsys.readouterr()

    assert compare.main(changed) == 2
    message = capsys.readouterr().err
    assert "another budget" in message
    assert "epochs: stored 1, requested 2" in message
    assert "--overwrite" in message
    assert _result_paths(output) == before


def test_compare_rejects_result_of_changed_variant(comparison, capsys):
    argv, output, _ = comparison
    path = _result_paths(output)[0]
    original = path.read_text()
    result = json.loads(original)
    result["config"]["base_filters"] += 1
    path.write_text(json.dumps(result))
    capsys.readouterr()
    try:
        assert compare.main(argv) == 2
        message = capsys.readouterr().err
        assert f"{path} was trained with another configuration" in message
        assert "base_filters: stored" in message
    finally:
        path.write_text(original)


def test_store_overwrite_deletes_other_budget(comparison):
    # Runs last among the recipe tests, because it deletes the stored results.
    _, output, _ = comparison
    store = experiments.ResultStore(output)
    budget = experiments.Budget("zoo_shapes/small", image_size=32, batch_size=4, epochs=2,
                                max_train_images=4, overrides=TINY)
    with pytest.raises(experiments.BudgetMismatchError, match="epochs: stored 1, requested 2"):
        store.check_budget(budget)
    store.check_budget(budget, overwrite=True)
    assert _result_paths(output) == []
    assert not list((output / "runs").rglob("seed*.npz"))
    stored = json.loads((output / "runs" / "zoo_shapes_small" / "budget.json").read_text())
    assert stored["epochs"] == 2


def test_suite_arguments_replace_defaults():
    budgets = compare.make_plan(compare.parse_args(["--suite", "questions"])).budgets
    explicit = compare.make_plan(compare.parse_args(["--suite", "questions", "--epochs", "1"])).budgets
    suite = compare.SUITES["questions"]
    assert [budget.epochs for budget in budgets] == [dataset.epochs for dataset in suite.datasets]
    assert [budget.epochs for budget in explicit] == [1] * len(suite.datasets)
    assert all(budget.overrides == {"base_filters": 16} for budget in budgets)
    with pytest.raises(SystemExit):
        compare.parse_args(["--suite", "questions", "--dataset", "zoo_shapes"])


def test_questions_suite_is_complete():
    suite = compare.SUITES["questions"]
    registered = set(zoo.names())
    for question in suite.questions:
        assert set(question.variants) <= registered, question.key
        assert question.reference in question.variants, question.key
    sources = [dataset.source for dataset in suite.datasets]
    assert "zoo_shapes" in sources
    assert any(source.endswith("membrane") for source in sources)
    assert any(source.endswith("kvasir_seg") for source in sources)
    assert suite.defaults["seeds"] >= 3


def test_compare_means_noise_rule():
    within = experiments.compare_means([0.50, 0.52, 0.54], [0.53, 0.55, 0.51])
    assert within.beyond_noise is False

    beyond = experiments.compare_means([0.50, 0.51, 0.52], [0.60, 0.61, 0.62])
    assert beyond.beyond_noise is True
    assert beyond.difference == pytest.approx(0.10)
    assert beyond.threshold == pytest.approx(2.776 * 0.01 * (2 / 3) ** 0.5)

    assert experiments.compare_means([0.5], [0.6]).beyond_noise is None


@pytest.mark.parametrize("variant", [
    "unet", "unet-asymmetric", "unet-5x5", "unet-transpose3", "unet-transpose4", "unet-upsample",
    "unet-nearest", "unet-pixelshuffle",
])
def test_effective_field_inside_theoretical(variant):
    size = 96
    model = zoo.build(variant, input_shape=(size, size, 3), num_classes=2, **RECEPTIVE)
    images = np.random.default_rng(0).random((2, size, size, 3), dtype="float32")
    field = receptive.effective_receptive_field(model, images)
    theoretical = analysis.receptive_field(zoo.config_of(variant, **RECEPTIVE))

    assert field[size // 2, size // 2] > 0
    assert field.sum() == pytest.approx(1.0)
    assert theoretical < size
    assert (field == 0).any(), "the image must be larger than the field for this test to fail"
    height, width = receptive.support_extent(field)
    assert height <= theoretical
    assert width <= theoretical
    assert 0 < receptive.mass_radius(field) < theoretical


def test_mass_radius_of_two_points():
    field = np.zeros((9, 9))
    field[4, 4] = 1.0
    assert receptive.mass_radius(field) == 0.0
    field[7, 4] = 1.0
    assert receptive.mass_radius(field, 0.5) == 0.0
    assert receptive.mass_radius(field, 0.95) == 3.0


def test_checkerboard_ranks_transpose3_first():
    ranking = checkerboard.rank_at_init(
        ["unet-pixelshuffle", "unet-upsample", "unet-nearest", "unet-transpose3"], (32, 32, 3),
        num_classes=2, **TINY,
    )
    order = [variant for variant, _ in ranking]
    scores = dict(ranking)
    assert order[0] == "unet-transpose3"
    assert scores["unet-transpose3"]["constant_features"] > 0.2
    assert scores["unet-pixelshuffle"]["constant_features"] < 1e-6
    assert scores["unet-upsample"]["constant_features"] < 0.05
    assert scores["unet-nearest"]["constant_features"] < 0.05
