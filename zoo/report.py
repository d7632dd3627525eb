"""Markdown report of a variant comparison, written from stored results with its figures.

Every table states its budget and seeds, and every difference from a reference variant gets
a verdict from `zoo.experiments.compare_means`: beyond the seed noise, or within it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import platform
from pathlib import Path

import numpy as np

from zoo import plots
from zoo.experiments import MASS_FRACTION, Budget, ResultStore, compare_means, mean_std

logger = logging.getLogger(__name__)

ZOOM = 24  # side, in pixels, of the centre crops that show the period-2 pattern


@dataclasses.dataclass(frozen=True)
class Question:
    """One comparison: the variants in table order, the reference and the extra sections.

    `sections` may contain "cost" (parameter and FLOP ratios against the reference) and
    "checkerboard" (the checkerboard scores and image panels of the variants).
    """

    key: str
    title: str
    text: str
    variants: tuple[str, ...]
    reference: str
    sections: tuple[str, ...] = ()


@dataclasses.dataclass
class ReportData:
    """Contents of a report: the questions, one budget per dataset and the stored results.

    `results` maps dataset label -> variant -> results of the requested seeds that are stored.
    `maps` maps dataset label -> variant -> figure maps of the first seed, where stored.
    """

    title: str
    command: str
    questions: list[Question]
    budgets: list[Budget]
    seeds: list[int]
    results: dict[str, dict[str, list[dict]]]
    maps: dict[str, dict[str, dict]]
    figure_folder: Path
    report_path: Path


def collect(store: ResultStore, budgets, variants, seeds) -> tuple[dict, dict]:
    """Read the stored results and first-seed maps of every (dataset, variant, seed)."""
    results, maps = {}, {}
    for budget in budgets:
        results[budget.label], maps[budget.label] = {}, {}
        for variant in variants:
            found = [store.load(budget, variant, seed) for seed in seeds]
            results[budget.label][variant] = [result for result in found if result is not None]
            first_maps = store.load_maps(budget, variant, seeds[0])
            if first_maps is not None:
                maps[budget.label][variant] = first_maps
    return results, maps


def format_mean_std(values, digits: int = 3) -> str:
    """Format values as 'mean ± std', 'mean (1 seed)' or 'n/a' when there are none."""
    values = [value for value in values if value is not None]
    if not values:
        return "n/a"
    mean, std = mean_std(values)
    if std is None:
        return f"{mean:.{digits}f} (1 seed)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cpu_info() -> tuple[str, int | None, set[str]]:
    """Return the CPU model, the logical CPU count and the CPU flags from /proc/cpuinfo."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return platform.processor() or platform.machine(), os.cpu_count(), set()
    lines = path.read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    model = models[0] if models else platform.machine()
    return model, len(models) or os.cpu_count(), set(flags)


def machine_summary() -> str:
    """Describe the CPU, its cores and bfloat16 instructions, and the software versions."""
    import keras
    import tensorflow as tf

    model, logical, flags = _cpu_info()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    instructions = (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AVX512-BF16", "avx512_bf16"),
                    ("AMX-BF16", "amx_bf16"))
    features = ", ".join(f"{name} {'yes' if flag in flags else 'no'}"
                         for name, flag in instructions)
    return (f"{model}, {usable} usable cores of {logical} logical CPUs ({features}); "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}")


def budget_line(budget: Budget, seeds) -> str:
    """Describe a budget and its seeds in one sentence."""
    overrides = ", ".join(f"{key}={value}" for key, value in sorted(budget.overrides.items()))
    images = f"at most {budget.max_train_images}" if budget.max_train_images else "all"
    epochs = f"{budget.epochs} epoch{'s' if budget.epochs != 1 else ''}"
    encoding = f", mask encoding {budget.mask_encoding}" if Path(budget.source).is_dir() else ""
    return (f"Budget: `{budget.source}`{encoding}, {budget.image_size} px, "
            f"batch {budget.batch_size}, {epochs} of {images} training images, "
            f"{budget.precision}, Adam {budget.learning_rate:g}, {budget.loss} loss, "
            f"augmentation {'on' if budget.augment else 'off'}, overrides: {overrides or 'none'}; "
            f"seeds {', '.join(str(seed) for seed in seeds)}.")


def _scores(results, key: str = "mean_iou") -> list[float]:
    return [result[key] for result in results if result.get(key) is not None]


def _relative(data: ReportData, path: Path) -> str:
    return Path(os.path.relpath(path, data.report_path.parent)).as_posix()


def _verdict(comparison) -> str:
    if comparison is None:
        return "reference"
    if comparison.beyond_noise is None:
        return "noise unknown (< 2 seeds)"
    if not comparison.beyond_noise:
        return "within seed noise"
    return "higher, beyond noise" if comparison.difference > 0 else "lower, beyond noise"


def _cost_text(value, reference) -> str:
    if not reference or value == reference:
        return f"{value:,}"
    return f"{value:,} ({value / reference:.2f}×)"


def _flops_text(flops: int) -> str:
    return f"{flops / 1e9:.2f} G" if flops >= 1e8 else f"{flops / 1e6:.1f} M"


def _first(results, key):
    return results[0][key] if results else None


def _table_row(variant: str, results: list[dict], reference: list[dict], comparison) -> str:
    scores = _scores(results)
    difference = threshold = parameters = flops = ""
    if comparison is not None:
        difference = f"{comparison.difference:+.3f}"
        if comparison.threshold is not None:
            threshold = f"±{comparison.threshold:.3f}"
    if results:
        parameters = _cost_text(results[0]["parameters"], _first(reference, "parameters"))
        flops = _flops_text(results[0]["flops"])
    verdict = _verdict(comparison) if scores else "not trained yet"
    throughput = format_mean_std(_scores(results, "images_per_second"), 1)
    return (f"| {variant} | {format_mean_std(scores)} | {len(scores)} | {difference} "
            f"| {threshold} | {verdict} | {parameters} | {flops} | {throughput} |")


def _question_table(data: ReportData, question: Question, budget: Budget) -> tuple[str, list[str]]:
    """Return the Markdown table of one question on one dataset and its finding sentences."""
    by_variant = data.results[budget.label]
    reference = by_variant.get(question.reference, [])
    rows = ["| variant | held-out mean IoU | seeds | difference | noise threshold | verdict "
            "| parameters | FLOPs / image | training images/s |",
            "|---|---|---|---|---|---|---|---|---|"]
    comparisons = {}
    for variant in question.variants:
        results = by_variant.get(variant, [])
        comparison = None
        if variant != question.reference and _scores(results) and _scores(reference):
            comparison = compare_means(_scores(reference), _scores(results))
            comparisons[variant] = comparison
        rows.append(_table_row(variant, results, reference, comparison))
    return "\n".join(rows), _findings(question, budget.label, comparisons)


def _findings(question: Question, label: str, comparisons: dict) -> list[str]:
    """Write one sentence per difference beyond the noise, or one saying there is none."""
    known = {variant: c for variant, c in comparisons.items() if c.threshold is not None}
    if not known:
        return [f"On {label}, the seed noise is unknown (fewer than 2 seeds), so no difference "
                "is called."]
    beyond = {variant: c for variant, c in known.items() if c.beyond_noise}
    if not beyond:
        variant, largest = max(known.items(), key=lambda item: abs(item[1].difference))
        return [f"On {label}, no variant differs from {question.reference} by more than the seed "
                f"noise: the largest difference is {largest.difference:+.3f} ({variant}), "
                f"against a threshold of ±{largest.threshold:.3f}."]
    return [f"On {label}, {variant} is {'higher' if c.difference > 0 else 'lower'} than "
            f"{question.reference} by {abs(c.difference):.3f}, beyond the seed noise "
            f"(threshold ±{c.threshold:.3f})." for variant, c in beyond.items()]


def _cost_sentences(data: ReportData, question: Question) -> list[str]:
    budget = data.budgets[0]
    by_variant = data.results[budget.label]
    reference = by_variant.get(question.reference, [])
    if not reference:
        return []
    sentences = []
    for variant in question.variants:
        results = by_variant.get(variant, [])
        if variant == question.reference or not results:
            continue
        parameters = results[0]["parameters"] / reference[0]["parameters"]
        flops = results[0]["flops"] / reference[0]["flops"]
        sentences.append(f"{variant} has {parameters:.2f}× the parameters and {flops:.2f}× the "
                         f"FLOPs of {question.reference} (on {budget.label}), with a theoretical "
                         f"receptive field of {results[0]['receptive_field']} px against "
                         f"{reference[0]['receptive_field']} px.")
    return sentences


def _question_figures(data: ReportData, question: Question) -> list[str]:
    bars, curves = [], []
    for budget in data.budgets:
        by_variant = data.results[budget.label]
        present = [v for v in question.variants if _scores(by_variant.get(v, []))]
        bars.append((budget.label, [(v, *mean_std(_scores(by_variant[v]))) for v in present]))
        losses = {v: [result["history"]["loss"] for result in by_variant[v]] for v in present}
        curves.append((budget.label, losses))
    if not any(group for _, group in bars):
        return []
    bar_path = plots.bar_chart(
        data.figure_folder / f"{question.key}-iou.png",
        f"{question.title}: held-out mean IoU (bars: ± 1 std over seeds)", bars)
    curve_path = plots.learning_curves(
        data.figure_folder / f"{question.key}-loss.png",
        f"{question.title}: training loss (band: ± 1 std)", curves)
    return [f"![{question.title}: mean IoU]({_relative(data, bar_path)})",
            f"![{question.title}: learning curves]({_relative(data, curve_path)})"]


def question_section(data: ReportData, question: Question) -> str:
    """Return the section of one question: a table per dataset, findings and figures."""
    parts = [f"## {question.title}", "", question.text, "",
             f"Reference: **{question.reference}**. Verdicts follow the noise rule above.", ""]
    findings = []
    for budget in data.budgets:
        table, sentences = _question_table(data, question, budget)
        parts += [f"### {budget.label}", "", budget_line(budget, data.seeds), "", table, ""]
        findings += sentences
    parts += ["**Findings.**", ""] + [f"- {sentence}" for sentence in findings] + [""]
    if "cost" in question.sections:
        parts += ["**Cost.**", ""] + [f"- {s}" for s in _cost_sentences(data, question)] + [""]
    parts += _question_figures(data, question) + [""]
    return "\n".join(parts)


PANEL_COLUMNS = (f"grey input, init\n(centre {ZOOM} px)",
                 f"grey input, trained\n(centre {ZOOM} px)",
                 f"held-out image, trained\n(centre {ZOOM} px)",
                 "held-out confidence,\ntrained (max prob.)")


def _checkerboard_panels(data: ReportData, budget: Budget, variants) -> str | None:
    """Draw the first seed's maps of each variant and return the Markdown image link."""
    maps = data.maps[budget.label]
    present = [variant for variant in variants if variant in maps]
    if not present:
        return None
    rows = []
    for variant in present:
        stored = maps[variant]
        rows.append((variant, [_centre(stored["init_constant_features"]),
                               _centre(stored["trained_constant_features"]),
                               _centre(stored["trained_heldout_features"]),
                               stored["trained_heldout_confidence"]]))
    # Runs on folder datasets store no input image, so their input row shows the grey image only.
    heldout = maps[present[0]].get("heldout_image")
    if heldout is None:
        shape = (*stored["trained_heldout_confidence"].shape, 1)
    else:
        shape = heldout.shape
    grey = np.full(shape, 0.5, dtype="float32")
    inputs = [_centre(grey), _centre(grey)]
    if heldout is not None:
        inputs += [_centre(heldout), heldout]
    rows.append(("input", inputs))
    path = plots.image_panels(
        data.figure_folder / f"checkerboard-{budget.label}.png",
        f"Last upsampling output (one channel) and confidence, {budget.label}, "
        f"seed {data.seeds[0]}",
        PANEL_COLUMNS, rows)
    return f"![Checkerboard panels on {budget.label}]({_relative(data, path)})"


def _centre(image, side: int = ZOOM):
    """Crop a centred square of `side` pixels that starts on an even row and column."""
    image = np.asarray(image)
    top = max(0, (image.shape[0] - side) // 4 * 2)
    left = max(0, (image.shape[1] - side) // 4 * 2)
    return image[top:top + side, left:left + side]


CHECKERBOARD_COLUMNS = (("init", "constant_features"), ("init", "constant_output"),
                        ("trained", "constant_features"), ("trained", "constant_output"),
                        ("trained", "heldout_output"))


def _checkerboard_table(data: ReportData, budget: Budget, variants) -> tuple[str, list[str]]:
    """Return the checkerboard table of one dataset and its two ranking sentences."""
    rows = ["| variant | upsampling | features, grey, init | output, grey, init "
            "| features, grey, trained | output, grey, trained | output, held-out, trained |",
            "|---|---|---|---|---|---|---|"]
    ranking = {"at initialisation": [], "after training": []}
    for variant in variants:
        results = data.results[budget.label].get(variant, [])
        if not results:
            continue
        cells = [format_mean_std([r[stage]["checkerboard"][signal] for r in results])
                 for stage, signal in CHECKERBOARD_COLUMNS]
        upsampling = results[0]["config"]["upsampling"]
        rows.append(f"| {variant} | {upsampling} | " + " | ".join(cells) + " |")
        for when, stage in zip(ranking, ("init", "trained")):
            scores = [r[stage]["checkerboard"]["constant_features"] for r in results]
            ranking[when].append((float(np.mean(scores)), variant))

    sentences = []
    for when, entries in ranking.items():
        if entries:
            ordered = sorted(entries, reverse=True)
            order = " > ".join(f"{variant} ({score:.3f})" for score, variant in ordered)
            sentences.append(f"On {budget.label}, {when}, ranked by the grey-image feature "
                             f"score: {order}.")
    return "\n".join(rows), sentences


def checkerboard_section(data: ReportData, variants) -> str:
    """Return the section on checkerboard artifacts of `variants`, with tables and panels."""
    parts = ["## Checkerboard artifacts", "",
             "Score: the share of a map's variance that repeats with period 2 "
             "(`zoo.analysis.checkerboard_score`): about 1 for a pure 2x2 checkerboard, 0 for a "
             "constant or smooth map. *Features* are the output of the last upsampling layer "
             "(`dec1_up`), *output* the class probabilities. *Grey* is a constant 0.5 image, where "
             "any period-2 pattern comes from the model. *Held-out* are the first "
             "held-out images. Borders (an eighth of each side) are cropped first, because zero "
             "padding adds structure there. Values are mean ± std over seeds.", ""]
    for budget in data.budgets:
        table, sentences = _checkerboard_table(data, budget, variants)
        parts += [f"### {budget.label}", "", budget_line(budget, data.seeds), "", table, ""]
        parts += [f"- {sentence}" for sentence in sentences] + [""]
        link = _checkerboard_panels(data, budget, variants)
        if link:
            parts += [link, ""]
    return "\n".join(parts)


def _receptive_dataset(data: ReportData, budget: Budget, variants) -> list[str]:
    """Return the receptive-field table and heat-map link of one dataset, as Markdown lines."""
    rows = ["| variant | theoretical field (px) | effective radius, init (px) "
            "| effective radius, trained (px) |", "|---|---|---|---|"]
    panels = []
    for variant in variants:
        results = data.results[budget.label].get(variant, [])
        if not results:
            continue
        init = format_mean_std([r["init"]["erf_radius"] for r in results], 1)
        trained = format_mean_std([r["trained"]["erf_radius"] for r in results], 1)
        rows.append(f"| {variant} | {results[0]['receptive_field']} | {init} | {trained} |")
        maps = data.maps[budget.label].get(variant)
        first = next((r for r in results if r["seed"] == data.seeds[0]), None)
        if maps is not None and first is not None:
            radius = first["trained"]["erf_radius"]
            caption = f"{variant}\nr{MASS_FRACTION * 100:.0f} = {radius:.1f} px"
            panels.append((caption, maps["trained_effective_receptive_field"], radius))

    lines = [f"### {budget.label}", "", budget_line(budget, data.seeds), "", *rows, ""]
    if panels:
        path = plots.heat_maps(
            data.figure_folder / f"erf-{budget.label}.png",
            f"Effective receptive field after training, {budget.label}, seed {data.seeds[0]} "
            f"(circle: {MASS_FRACTION:.0%} of the mass)", panels)
        lines += [f"![Effective receptive fields on {budget.label}]({_relative(data, path)})", ""]
    return lines


def receptive_section(data: ReportData, variants) -> str:
    """Return the section on theoretical and effective receptive fields, with heat maps."""
    parts = ["## Receptive fields", "",
             "*Theoretical*: the side, in pixels, of the input window that can reach one output "
             "pixel (`zoo.analysis.receptive_field`). *Effective*: the absolute gradient of the "
             "centre output pixel's class logits with respect to the input, summed over classes "
             "and channels and averaged over the first held-out images (`zoo.receptive`). The "
             f"table gives the radius of the disc around the centre that contains {MASS_FRACTION:.0%} "
             "of it (mean ± std over seeds). When the theoretical field is larger than the image, "
             "the image border cuts the effective field too.", ""]
    for budget in data.budgets:
        parts += _receptive_dataset(data, budget, variants)
    return "\n".join(parts)


def timing_section(data: ReportData) -> str:
    """Return the section with the wall and CPU time that the stored runs took."""
    rows = ["| dataset | runs | wall time per run (s) | CPU time per run (s) "
            "| training wall time per run (s) | load average during training |",
            "|---|---|---|---|---|---|"]
    total_wall = total_cpu = 0.0
    for budget in data.budgets:
        results = [r for runs in data.results[budget.label].values() for r in runs]
        if not results:
            continue
        total_wall += sum(r["wall_seconds"] for r in results)
        total_cpu += sum(r["cpu_seconds"] for r in results)
        rows.append(f"| {budget.label} | {len(results)} "
                    f"| {format_mean_std(_scores(results, 'wall_seconds'), 1)} "
                    f"| {format_mean_std(_scores(results, 'cpu_seconds'), 1)} "
                    f"| {format_mean_std(_scores(results, 'training_seconds'), 1)} "
                    f"| {format_mean_std([np.mean(r['load_average']) for r in results], 1)} |")
    return "\n".join([
        "## Run time", "",
        f"The stored runs took {total_wall / 60:.1f} minutes of wall time and {total_cpu / 60:.1f} "
        "minutes of CPU time in all, for data loading, training, evaluation and measurements but "
        "not for the report itself. Training images/s leaves out the first epoch, which "
        "includes tracing the training step, unless it is the only one. Other processes on "
        "the machine slow the runs down, and the load average shows how busy it was.", "", *rows, ""])


def header_section(data: ReportData) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"# {data.title}", "",
        "This page is generated by `recipes/compare.py`, so edit the recipe, not this page.", "",
        f"- Command: `{data.command}`",
        f"- Machine: {machine_summary()}",
        f"- Generated: {now}", "",
        "Mean IoU is measured on each dataset's held-out split, over all classes present, as "
        "mean ± sample standard deviation over seeds. Seeds set the initial weights, the "
        "shuffling and the augmentation.", "",
        "**Noise rule.** For each variant, the difference of its mean from the reference mean "
        "is compared with the pooled standard deviation over seeds, "
        "s_p = sqrt(((n1 - 1) s1² + (n2 - 1) s2²) / (n1 + n2 - 2)). The difference counts as "
        "beyond the seed noise only when |difference| > t · s_p · sqrt(1/n1 + 1/n2), where t is "
        "the 97.5% quantile of Student's t with n1 + n2 - 2 degrees of freedom (2.776 for 3 "
        "seeds each): a two-sided two-sample t-test at the 5% level. Otherwise the table reads "
        "*within seed noise*, and the two variants are not ranked.", "",
    ])


def write_report(data: ReportData, checkerboard_variants=(), receptive_variants=()) -> Path:
    """Write the figures and the Markdown report of `data`, and return the report path."""
    parts = [header_section(data)]
    parts += [question_section(data, question) for question in data.questions]
    if checkerboard_variants:
        parts.append(checkerboard_section(data, checkerboard_variants))
    if receptive_variants:
        parts.append(receptive_section(data, receptive_variants))
    parts.append(timing_section(data))
    data.report_path.parent.mkdir(parents=True, exist_ok=True)
    data.report_path.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
    logger.info("Wrote %s", data.report_path)
    return data.report_path
