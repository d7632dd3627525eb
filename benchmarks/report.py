"""Markdown tables of a `benchmarks.unet_speed` run, for its `.md` file and docs/benchmarks.md.

`goals_markdown` is the short summary that opens the docs page, and `details_markdown` the
machine, settings and every table. `DOCS_BLOCKS` names the generated blocks of the page that
`--write-docs` fills with them.
"""

from __future__ import annotations

from benchmarks import machine as machine_lib

DOCS_BLOCKS = ("unet-speed-goals", "unet-speed-results")


def format_stats(summary: dict | None, digits: int = 2, scale: float = 1.0) -> str:
    """Format a median with its min-max range in brackets, or "n/a"."""
    if summary is None:
        return "n/a"
    median = summary["median"] * scale
    if summary["n"] == 1:
        return f"{median:.{digits}f}"
    return (f"{median:.{digits}f} ({summary['min'] * scale:.{digits}f}-"
            f"{summary['max'] * scale:.{digits}f})")


def _percent(summary: dict | None) -> str:
    text = format_stats(summary, 0, 100)
    return text if summary is None else f"{text} %"


def _cpu_line(machine: dict) -> str:
    flags = ", ".join(machine.get("vector_flags", [])) or "none"
    checked = ", ".join(machine_lib.VECTOR_FLAGS)
    family = ""
    if "cpu_family" in machine:
        family = f" (family {machine['cpu_family']}, model {machine.get('cpu_model_number', '?')})"
    virtual = ", in a virtual machine" if machine.get("hypervisor") else ""
    return (f"Machine: {machine.get('cpu_model', 'unknown CPU')}{family}, "
            f"{machine.get('usable_cpus')} usable of {machine.get('logical_cpus')} logical CPUs, "
            f"{machine.get('memory_gib')} GiB{virtual}. Of the vector flags {checked}, "
            f"/proc/cpuinfo lists {flags}.")


def bfloat16_note(machine: dict) -> str | None:
    """Return a warning when the CPU flags show no bfloat16 dot-product instructions."""
    if machine_lib.has_bfloat16_instructions(machine) is not False:
        return None
    return ("This CPU lists neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo, so it has no "
            "bfloat16 dot-product instructions. Its bfloat16 math goes through conversions to "
            "float32, and the mixed_bfloat16 figures do not show the speed-up that the goals "
            "assume.")


def _first_description(results: dict, field: str) -> dict:
    return next((w["description"] for w in results["workers"].values()
                 if w["description"].get(field) is not None), {})


def _context_lines(results: dict) -> list[str]:
    machine, config = results["machine"], results["config"]
    versions = _first_description(results, "versions").get("versions", {})
    threads = _first_description(results, "intra_op_threads")
    load_end = machine.get("load_average_end", [float("nan")])[0]
    return [
        f"Command: `{results['command'].strip()}`, started {results.get('started', 'n/a')}, "
        f"wall time {results['wall_seconds'] / 60:.1f} min.",
        "",
        _cpu_line(machine) + f" Load average (1 minute) {machine['load_average_start'][0]:.1f} "
        f"at the start, {load_end:.1f} at the end.",
        "",
        f"Software: TensorFlow {versions.get('tensorflow')}, Keras {versions.get('keras')}, "
        f"Python {versions.get('python')}. TensorFlow threads: intra-op "
        f"{threads.get('intra_op_threads')}, inter-op {threads.get('inter_op_threads')} "
        "(0 means TensorFlow picks one per CPU).",
        "",
        f"Settings: batch {config['batch_size']}, {config['rounds']} rounds of "
        f"{config['steps']} timed steps per float32 model and {config['mixed_steps']} per mixed "
        f"precision model, taken in turn with the other models. The tracing call and "
        f"{config['warmup_steps']} warm-up step(s) at each new size are not timed. "
        f"{config['channels']} input channels, {config['num_classes']} classes, depth "
        f"{config['depth']}, {config['base_filters']} base filters.",
    ]


def _training_table(summary: dict) -> list[str]:
    lines = ["### Training", "",
             "| model | precision | XLA | size | images/s | training GFLOP/s | of matmul peak | "
             "peak RSS (MB) | forward GFLOP/image |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["training"]:
        forward = row["forward_flops_per_image"]
        memory = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "n/a"
        if row.get("gpu_peak_mb"):
            memory += f" (GPU {row['gpu_peak_mb']:.0f})"
        lines.append(
            f"| {row['contender']} | {row['precision']} | {row['xla']} | {row['size']} | "
            f"{format_stats(row['images_per_second'])} | "
            f"{format_stats(row['training_flops_per_second'], 1, 1e-9)} | "
            f"{_percent(row['fraction_of_peak'])} | {memory} | "
            f"{f'{forward / 1e9:.3g}' if forward else 'n/a'} |")
    return lines


def _inference_table(summary: dict) -> list[str]:
    lines = ["### Inference (`predict_on_batch`)", "",
             "| model | precision | XLA | size | images/s |", "| --- | --- | --- | --- | --- |"]
    for row in summary["inference"]:
        lines.append(f"| {row['contender']} | {row['precision']} | {row['xla']} | {row['size']} "
                     f"| {format_stats(row['images_per_second'])} |")
    return lines


def _ratio_table(summary: dict) -> list[str]:
    lines = ["### Ratios, paired per round", "",
             "| comparison | task | XLA | size | ratio |", "| --- | --- | --- | --- | --- |"]
    for ratio in summary["ratios"]:
        lines.append(f"| {ratio['name']} | {ratio['task']} | {ratio['xla']} | {ratio['size']} | "
                     f"{format_stats(ratio['ratio'], 3)} |")
    return lines


def _latency_table(summary: dict) -> list[str]:
    kinds = ("signature", "function", "eager", "predict_on_batch")
    lines = ["### SavedModel serving latency (ms)", "",
             "| precision | size | batch | signature | tf.function | eager call | "
             "predict_on_batch | signature / tf.function | signature / predict_on_batch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["latency"]:
        cells = [format_stats(row["seconds"].get(kind), 1, 1000) for kind in kinds]
        cells += [format_stats(row["ratios"].get(f"signature / {kind}"), 3)
                  for kind in ("function", "predict_on_batch")]
        lines.append(f"| {row['precision']} | {row['size']} | {row['batch']} | "
                     + " | ".join(cells) + " |")
    return lines


def _peak_table(summary: dict, config: dict) -> list[str]:
    n = config["matmul_size"]
    lines = [f"### Matrix-product peak ({n} x {n}, TensorFlow)", "",
             "| dtype | GFLOP/s |", "| --- | --- |"]
    for row in summary["matmul_peak"]:
        lines.append(f"| {row['dtype']} | {format_stats(row['flops_per_second'], 1, 1e-9)} |")
    return lines


def _goal_table(summary: dict) -> list[str]:
    lines = ["| goal | size | XLA | measured | target | met |",
             "| --- | --- | --- | --- | --- | --- |"]
    for goal in summary["goals"]:
        lines.append(f"| {goal['goal']} | {goal['size']} | {goal['xla']} | "
                     f"{format_stats(goal['measured'], 3)} | {goal['threshold']} | "
                     f"{'yes' if goal['met'] else 'no'} |")
    return lines


def goals_markdown(results: dict) -> str:
    """Return the goal table with one line on where the figures come from."""
    machine = results["machine"]
    lines = [f"Goals, checked by one run of `{results['command'].strip()}` "
             f"(started {results.get('started', 'n/a')}) on "
             f"{machine.get('cpu_model', 'an unknown CPU')} with {machine.get('usable_cpus')} "
             "usable CPUs. Measured values are medians with the min-max range over rounds. "
             "The machine and every table are under "
             "[Machine and results](#machine-and-results).", ""]
    lines += _goal_table(results["summary"])
    note = bfloat16_note(machine)
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def details_markdown(results: dict) -> str:
    """Return the machine, settings and every table of the run."""
    summary = results["summary"]
    lines = _context_lines(results)
    lines += ["", "Figures are medians with the min-max range over rounds.", ""]
    for table in (_training_table(summary), _inference_table(summary), _ratio_table(summary),
                  _latency_table(summary), _peak_table(summary, results["config"])):
        lines += table + [""]
    if results["skipped"]:
        lines += ["### Skipped", ""]
        lines += [f"- {name}: {reason}" for name, reason in results["skipped"].items()]
    return "\n".join(lines).rstrip("\n") + "\n"


def markdown(results: dict) -> str:
    """Return the whole report: goals first, then the details."""
    return ("## Goals\n\n" + goals_markdown(results) + "\n## Machine and results\n\n"
            + details_markdown(results))


def docs_blocks(results: dict) -> dict[str, str]:
    """Return the content of each generated block of docs/benchmarks.md."""
    return dict(zip(DOCS_BLOCKS, (goals_markdown(results), details_markdown(results))))
