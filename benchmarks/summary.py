"""Statistics and goal checks of a `benchmarks.unet_speed` run, from its raw records.

Every throughput is summarized as the median with its min-max range over rounds, where a
round's figure is its timed images divided by their time. A ratio between two models is
computed per round, because their steps alternated within the round under the same load,
and then summarized the same way.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

# Training FLOPs per image are estimated as 3 x the forward FLOPs: the backward pass
# computes the gradients of both the activations and the weights, each about one forward.
TRAINING_FLOPS_PER_FORWARD = 3
# The dtype of the reference matrix product for each Keras dtype policy.
MATMUL_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
# The models that the zoo's `unet` is compared with.
REFERENCES = ("handwritten", "keras-unet", "keras-unet-collection")

# The benchmark's goals: (name, ratio key, threshold, "min" or "max").
RATIO_GOALS = [
    ("zoo / hand-written, training images/s, float32",
     ("train", "zoo", "handwritten"), 0.97, "min"),
    ("zoo / keras-unet, training images/s, float32",
     ("train", "zoo", "keras-unet"), 1.0, "min"),
    ("zoo / keras-unet-collection, training images/s, float32",
     ("train", "zoo", "keras-unet-collection"), 1.0, "min"),
    ("zoo mixed_bfloat16 / float32, training images/s",
     ("precision", "mixed_bfloat16"), 1.8, "min"),
]
PEAK_GOALS = {"float32": 0.55, "mixed_bfloat16": 0.35}
LATENCY_GOAL = 1.1


def stats(values) -> dict | None:
    """Return the median, min, max and count of `values` without the Nones, or None if empty."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def images_per_second(record: dict) -> float | None:
    seconds = sum(record.get("step_seconds") or [])
    if "error" in record or seconds <= 0:
        return None
    return record["images"] / seconds


def _key(record: dict) -> tuple:
    return (record["task"], record["contender"], record["precision"], record["xla"],
            record["size"])


def _throughput_by_round(records) -> dict:
    """Return {(task, contender, precision, xla, size): {round: images/s over its timed steps}}."""
    images, seconds = defaultdict(lambda: defaultdict(int)), defaultdict(lambda: defaultdict(float))
    for record in records:
        timed = "error" not in record and record.get("step_seconds")
        if record["task"] in ("train", "infer") and timed:
            images[_key(record)][record["round"]] += record["images"]
            seconds[_key(record)][record["round"]] += sum(record["step_seconds"])
    return {key: {r: images[key][r] / seconds[key][r] for r in by_round if seconds[key][r] > 0}
            for key, by_round in images.items()}


def _peak_by_round(records) -> dict:
    """Return {(dtype, size): {round: median FLOP/s of the products timed after those steps}}."""
    samples = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record["task"] == "matmul" and "error" not in record:
            key = (record["dtype"], record["size"])
            samples[key][record["round"]] += record["flops_per_second"]
    return {key: {r: statistics.median(values) for r, values in by_round.items()}
            for key, by_round in samples.items()}


def _paired(numerator: dict, denominator: dict) -> list:
    """Return numerator / denominator for every round that both have."""
    return [numerator[r] / denominator[r] for r in numerator if r in denominator and denominator[r]]


def _first_train_records(records) -> dict:
    """Return the first successful training record of each key: the first-round warm-up."""
    first = {}
    for record in records:
        if record["task"] == "train" and "error" not in record:
            first.setdefault(_key(record), record)
    return first


def _forward_flops(results: dict, contender: str, precision: str, xla: str, size: int):
    worker = results["workers"].get(f"train:{contender}:{precision}:{xla}", {})
    return (worker.get("description") or {}).get("forward_flops", {}).get(str(size))


def _training_row(results, key, by_round, peaks, first) -> dict:
    _, contender, precision, xla, size = key
    forward = _forward_flops(results, contender, precision, xla, size)
    flops_by_round = {}
    if forward:
        flops_by_round = {r: TRAINING_FLOPS_PER_FORWARD * forward * value
                          for r, value in by_round.items()}
    peak = peaks.get((MATMUL_DTYPES[precision], size), {})
    gpu_peaks = [r.get("gpu_peak_mb") for r in results["records"]
                 if r["task"] == "train" and "error" not in r and _key(r) == key]
    return {
        "contender": contender, "precision": precision, "xla": xla, "size": size,
        "images_per_second": stats(by_round.values()),
        "forward_flops_per_image": forward,
        "training_flops_per_second": stats(flops_by_round.values()),
        "fraction_of_peak": stats(_paired(flops_by_round, peak)),
        "peak_rss_mb": first[key]["peak_rss_mb"] if key in first else None,
        "gpu_peak_mb": max(filter(None, gpu_peaks), default=None),
    }


def _ratio(key: list, task: str, xla: str, size: int, name: str, values: list) -> dict:
    return {"key": key, "task": task, "xla": xla, "size": size, "name": name,
            "ratio": stats(values)}


def _ratio_rows(throughput: dict) -> list:
    """Return the paired ratios: zoo against each reference, mixed precision against float32,
    and XLA on against off."""
    rows = []
    for xla, size in sorted({(key[3], key[4]) for key in throughput}):
        for task in ("train", "infer"):
            zoo = throughput.get((task, "zoo", "float32", xla, size))
            for other in REFERENCES:
                reference = throughput.get((task, other, "float32", xla, size))
                if zoo and reference:
                    rows.append(_ratio([task, "zoo", other], task, xla, size,
                                       f"zoo / {other}, float32", _paired(zoo, reference)))
        float32 = throughput.get(("train", "zoo", "float32", xla, size))
        for precision in ("mixed_bfloat16", "mixed_float16"):
            mixed = throughput.get(("train", "zoo", precision, xla, size))
            if mixed and float32:
                rows.append(_ratio(["precision", precision], "train", xla, size,
                                   f"zoo {precision} / float32", _paired(mixed, float32)))
    for (task, contender, precision, xla, size), by_round in sorted(throughput.items()):
        reference = throughput.get((task, contender, precision, "off", size))
        if xla == "on" and reference:
            rows.append(_ratio(["xla", contender, precision], task, "on / off", size,
                               f"{contender} {precision}, XLA on / off",
                               _paired(by_round, reference)))
    return rows


def _latency_rows(records) -> list:
    """Return the serving latency of each kind of call, and the signature's ratio to the
    others, paired per round."""
    groups = defaultdict(list)
    for record in records:
        if record["task"] == "serve" and "error" not in record:
            groups[(record["precision"], record["size"], record["batch"])].append(record)
    rows = []
    for (precision, size, batch), group in sorted(groups.items()):
        row = {"precision": precision, "size": size, "batch": batch, "seconds": {}, "ratios": {}}
        for kind in group[0]["latency_seconds"]:
            row["seconds"][kind] = stats([v for r in group for v in r["latency_seconds"][kind]])
            if kind != "signature":
                per_round = [statistics.median(r["latency_seconds"]["signature"])
                             / statistics.median(r["latency_seconds"][kind]) for r in group]
                row["ratios"][f"signature / {kind}"] = stats(per_round)
        rows.append(row)
    return rows


def _peak_rows(records) -> list:
    samples = defaultdict(list)
    for record in records:
        if record["task"] == "matmul" and "error" not in record:
            samples[record["dtype"]] += record["flops_per_second"]
    return [{"dtype": dtype, "flops_per_second": stats(values)}
            for dtype, values in sorted(samples.items())]


def _goal(name, size, xla, measured, threshold, kind) -> dict:
    met = measured["median"] >= threshold if kind == "min" else measured["median"] <= threshold
    return {"goal": name, "size": size, "xla": xla, "measured": measured,
            "threshold": f"{'>=' if kind == 'min' else '<='} {threshold}", "met": met}


def _goals(summary: dict) -> list:
    """Check the medians against the goals. A goal without a measurement is left out."""
    goals = []
    for name, key, threshold, kind in RATIO_GOALS:
        for ratio in summary["ratios"]:
            if ratio["key"] == list(key) and ratio["ratio"]:
                goals.append(_goal(name, ratio["size"], ratio["xla"], ratio["ratio"], threshold,
                                   kind))
    for row in summary["training"]:
        threshold = PEAK_GOALS.get(row["precision"])
        if threshold is not None and row["contender"] == "zoo" and row["fraction_of_peak"]:
            name = f"zoo training FLOP/s / matmul peak, {row['precision']}"
            goals.append(_goal(name, row["size"], row["xla"], row["fraction_of_peak"], threshold,
                               "min"))
    for row in summary["latency"]:
        ratio = row["ratios"].get("signature / function")
        if row["batch"] == 1 and ratio:
            name = f"SavedModel / tf.function latency, batch 1, {row['precision']}"
            goals.append(_goal(name, row["size"], "off", ratio, LATENCY_GOAL, "max"))
    return goals


def _row_order(key: tuple) -> tuple:
    """Sort rows by precision, XLA and size, with the zoo first and then the references."""
    _, contender, precision, xla, size = key
    models = ("zoo", *REFERENCES)
    return (list(MATMUL_DTYPES).index(precision), xla, size,
            models.index(contender) if contender in models else len(models), contender)


def summarize(results: dict) -> dict:
    """Return the training, inference, ratio, latency, peak and goal tables of a run.

    `results` needs "records" and "workers" (whose descriptions hold the FLOP counts).
    """
    records = results["records"]
    throughput = _throughput_by_round(records)
    peaks = _peak_by_round(records)
    first = _first_train_records(records)
    training, inference = [], []
    for key, by_round in sorted(throughput.items(), key=lambda item: _row_order(item[0])):
        if key[0] == "train":
            training.append(_training_row(results, key, by_round, peaks, first))
        else:
            _, contender, precision, xla, size = key
            inference.append({"contender": contender, "precision": precision, "xla": xla,
                              "size": size, "images_per_second": stats(by_round.values())})
    summary = {"training": training, "inference": inference, "ratios": _ratio_rows(throughput),
               "latency": _latency_rows(records), "matmul_peak": _peak_rows(records)}
    summary["goals"] = _goals(summary)
    return summary
