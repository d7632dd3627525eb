"""Controlled comparisons of variants: one training budget, several seeds, resumable results.

A `Budget` fixes everything but the variant and the seed: data, resolution, epochs, precision
and config overrides. `train_variant` trains one (variant, seed) under a budget and measures
held-out IoU, cost, throughput, checkerboard scores and the effective receptive field.
`ResultStore` keeps each result as JSON as soon as it finishes, so an interrupted comparison
resumes where it stopped, and it rejects results of another budget in the same folder.
`compare_means` decides whether a difference of mean scores exceeds the seed noise.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

import zoo
from zoo import checkerboard, losses, metrics, receptive, training
from zoo.analysis import conv_flops, receptive_field

logger = logging.getLogger(__name__)

PROBE_IMAGES = 4  # held-out images for the checkerboard and receptive-field measurements
MASS_FRACTION = 0.95


def dataset_label(source: str) -> str:
    """Return a short name for a dataset source, used in folder names and reports."""
    path = Path(source)
    return path.resolve().name if path.is_dir() else str(source).replace("/", "_")


@dataclasses.dataclass(frozen=True)
class Budget:
    """Everything two runs must share to be compared: the data, the training and the overrides.

    `max_train_images` caps the training images per epoch. The training split repeats, so
    with a cap below its size each epoch continues where the last one stopped, in a new
    shuffled order per pass. `holdout_fraction` and `mask_encoding` apply to folder sources.
    """

    source: str
    mask_encoding: str = "auto"
    holdout_fraction: float | None = None
    image_size: int = 96
    batch_size: int = 8
    epochs: int = 4
    max_train_images: int | None = None
    learning_rate: float = 1e-3
    loss: str = "crossentropy"
    precision: str = "float32"
    augment: bool = True
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return dataset_label(self.source)

    def fingerprint(self) -> dict[str, Any]:
        """Return the budget as plain JSON data, with the dataset label in place of its path."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data["dataset"] = self.label
        return json.loads(json.dumps(data, sort_keys=True))


class BudgetMismatchError(ValueError):
    """Raised when an output folder contains results trained under another budget."""


def budget_differences(stored: dict, requested: dict) -> list[str]:
    """Describe each budget field that differs, as 'field: stored X, requested Y'."""
    keys = sorted(set(stored) | set(requested))
    return [f"{key}: stored {stored.get(key)!r}, requested {requested.get(key)!r}"
            for key in keys if stored.get(key) != requested.get(key)]


class ResultStore:
    """Run results in `root/runs/<dataset label>/<variant>/seed<k>.json`, one budget per dataset.

    `seed<k>.npz` next to a result, when present, contains float16 maps for figures.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def dataset_folder(self, label: str) -> Path:
        return self.root / "runs" / label

    def result_path(self, label: str, variant: str, seed: int) -> Path:
        return self.dataset_folder(label) / variant / f"seed{seed}.json"

    def check_budget(self, budget: Budget, overwrite: bool = False) -> None:
        """Record `budget` for its dataset, or raise BudgetMismatchError if another one is stored.

        With `overwrite`, the stored results of that dataset are deleted first.
        """
        folder = self.dataset_folder(budget.label)
        path = folder / "budget.json"
        requested = budget.fingerprint()
        if path.exists():
            stored = json.loads(path.read_text())
            if stored == requested:
                return
            if not overwrite:
                raise BudgetMismatchError(
                    f"The results in {folder} were trained under another budget ("
                    + "; ".join(budget_differences(stored, requested))
                    + "). Use another output folder, or overwrite them to train anew."
                )
            removed = self._delete_results(folder)
            logger.info("Deleted %d stored results of another budget in %s", removed, folder)
        folder.mkdir(parents=True, exist_ok=True)
        training.write_json(path, requested)

    @staticmethod
    def _delete_results(folder: Path) -> int:
        files = [*folder.glob("*/seed*.json"), *folder.glob("*/seed*.npz")]
        for file in files:
            file.unlink()
        return len(files)

    def load(self, budget: Budget, variant: str, seed: int) -> dict | None:
        """Return the stored result of (variant, seed) under `budget`, or None if there is none."""
        path = self.result_path(budget.label, variant, seed)
        if not path.exists():
            return None
        result = json.loads(path.read_text())
        if result.get("budget") != budget.fingerprint():
            raise BudgetMismatchError(
                f"{path} was trained under another budget ("
                + "; ".join(budget_differences(result.get("budget") or {}, budget.fingerprint()))
                + "). Delete it, or overwrite the stored results."
            )
        config = zoo.config_of(variant, **budget.overrides).to_dict()
        if result.get("config") != config:
            raise BudgetMismatchError(
                f"{path} was trained with another configuration of '{variant}' ("
                + "; ".join(budget_differences(result.get("config") or {}, config))
                + "), so it no longer describes the variant. Delete it to train it anew."
            )
        return result

    def load_maps(self, budget: Budget, variant: str, seed: int) -> dict[str, np.ndarray] | None:
        path = self.result_path(budget.label, variant, seed).with_suffix(".npz")
        if not path.exists():
            return None
        with np.load(path) as arrays:
            return {name: arrays[name].astype("float32") for name in arrays.files}

    def save(self, result: dict, maps: dict[str, np.ndarray] | None = None) -> Path:
        """Write `result` (and `maps` as compressed float16) and return the JSON path."""
        path = self.result_path(result["budget"]["dataset"], result["variant"], result["seed"])
        path.parent.mkdir(parents=True, exist_ok=True)
        if maps:
            # The maps go first: a result JSON on disk means the run is complete.
            temporary = path.with_suffix(".tmp.npz")
            np.savez_compressed(temporary, **{k: np.asarray(v, "float16") for k, v in maps.items()})
            os.replace(temporary, path.with_suffix(".npz"))
        training.write_json(path, result)
        return path


def load_splits(budget: Budget, seed: int, data_dir: str | None = None):
    """Load the data of `budget` with `seed`, passing the folder-only options to folders only.

    A `holdout_fraction` of None keeps the default of `zoo.data.load`.
    """
    from zoo import data

    folder_options = {}
    if Path(budget.source).is_dir():
        folder_options["mask_encoding"] = budget.mask_encoding
        if budget.holdout_fraction is not None:
            folder_options["holdout_fraction"] = budget.holdout_fraction
    return data.load(
        budget.source,
        image_size=budget.image_size,
        batch_size=budget.batch_size,
        seed=seed,
        augment=budget.augment,
        data_dir=data_dir,
        **folder_options,
    )


def probe_images(dataset, count: int = PROBE_IMAGES) -> np.ndarray:
    """Return the first `count` images of a batched (images, masks, ...) dataset.

    It reads the whole dataset, because a `cache()` inside the pipeline discards what a
    partial read stored, and the evaluation reads the split again.
    """
    images = []
    for batch in dataset:
        if len(images) < count:
            images.extend(np.asarray(batch[0], dtype="float32"))
    if not images:
        raise ValueError("The held-out split is empty, so there are no images to measure on.")
    return np.stack(images[:count])


def measure_model(model: keras.Model, images: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """Return (scores, maps): checkerboard scores and the effective receptive field on `images`."""
    scores, maps = checkerboard.measure(model, images)
    field = receptive.effective_receptive_field(model, images)
    radius = receptive.mass_radius(field, MASS_FRACTION)
    maps["effective_receptive_field"] = field
    return {"checkerboard": scores, "erf_radius": radius}, maps


class EpochTimer(keras.callbacks.Callback):
    """Keras callback that records the wall-clock seconds of each training epoch."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def compile_for_comparison(model: keras.Model, budget: Budget, num_classes: int) -> None:
    """Compile `model` with Adam, the budget's loss and mean IoU as the only metric.

    `training.compile_model` also adds one IoU metric per class, which roughly doubled the
    time to trace the training step of a small U-Net in a measurement on 2 CPU cores. The
    held-out per-class IoU comes from `metrics.iou_report` instead.
    """
    activation = training.head_activation(model)
    if activation == "sigmoid":
        raise ValueError(
            "Comparisons train on class-id masks, which needs output_activation='softmax' or "
            "'linear', but the model has a sigmoid head. Remove the output_activation override."
        )
    model.compile(
        optimizer=keras.optimizers.Adam(budget.learning_rate),
        loss=losses.get(budget.loss, from_logits=activation == "linear"),
        metrics=[metrics.MeanIoU(num_classes)],
    )


def _steps_per_epoch(budget: Budget, train_size: int | None) -> tuple[int, int]:
    """Return (steps per epoch, training images per epoch) for `budget`."""
    if not train_size:
        raise ValueError(f"The training split size of {budget.source} is unknown, so the "
                         "epochs cannot be sized. Pass a source that records its size.")
    images = min(train_size, budget.max_train_images or train_size)
    return math.ceil(images / budget.batch_size), images


def fit(model: keras.Model, splits, budget: Budget) -> dict[str, Any]:
    """Train `model` under `budget` and return its history and timing."""
    steps, images_per_epoch = _steps_per_epoch(budget, splits.info.train_size)
    timer = EpochTimer()
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    # shuffle=False only silences a Keras warning: the training split shuffles itself.
    history = model.fit(splits.train.repeat(), epochs=budget.epochs, steps_per_epoch=steps,
                        callbacks=[timer], shuffle=False, verbose=0)
    # The first epoch includes tracing the training step, so it is left out of the throughput
    # whenever there is a later epoch to measure.
    measured = timer.seconds[1:] or timer.seconds
    return {
        "history": {key: [float(value) for value in values]
                    for key, values in history.history.items() if key in ("loss", "mean_iou")},
        "training_seconds": float(sum(timer.seconds)),
        "training_cpu_seconds": time.process_time() - cpu_before,
        "epoch_seconds": [float(value) for value in timer.seconds],
        "train_images_per_epoch": images_per_epoch,
        "steps_per_epoch": steps,
        "images_per_second": images_per_epoch * len(measured) / sum(measured),
        "load_average": [load_before, os.getloadavg()[0]],
    }


def _figure_maps(init_maps: dict, trained_maps: dict, images: np.ndarray) -> dict[str, np.ndarray]:
    """Select the 2-D maps that the report's figures show, from the maps of `measure_model`.

    The feature maps keep the `dec1_up` channel that varies most on the grey image at
    initialisation, and the same channel after training.
    """
    features = init_maps["constant_features"]
    channel = int(np.argmax(features.reshape(-1, features.shape[-1]).var(axis=0)))
    maps = {"heldout_image": images[0]}
    for stage, stage_maps in (("init", init_maps), ("trained", trained_maps)):
        maps[f"{stage}_constant_features"] = stage_maps["constant_features"][..., channel]
        maps[f"{stage}_heldout_features"] = stage_maps["heldout_features"][..., channel]
        maps[f"{stage}_heldout_confidence"] = stage_maps["heldout_confidence"]
        maps[f"{stage}_effective_receptive_field"] = stage_maps["effective_receptive_field"]
    return maps


def train_variant(budget: Budget, variant: str, seed: int, data_dir: str | None = None
                  ) -> tuple[dict, dict[str, np.ndarray]]:
    """Train `variant` with `seed` under `budget` and return (result, maps for figures).

    The result contains held-out IoU, parameters, FLOPs per image, the theoretical receptive
    field, training time and throughput, the loss and mean-IoU history, and checkerboard scores
    and the effective receptive field radius at initialisation and after training.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    training.set_precision(budget.precision)
    keras.utils.set_random_seed(seed)
    splits = load_splits(budget, seed, data_dir)
    info = splits.info

    keras.utils.set_random_seed(seed)
    size = budget.image_size
    model = zoo.build(variant, input_shape=(size, size, info.channels),
                      num_classes=info.num_classes, **budget.overrides)
    compile_for_comparison(model, budget, info.num_classes)
    images = probe_images(splits.test)
    init_scores, init_maps = measure_model(model, images)

    timing = fit(model, splits, budget)
    confusion = metrics.confusion_matrix(model, splits.test, info.num_classes)
    trained_scores, trained_maps = measure_model(model, images)

    config = zoo.config_of(variant, **budget.overrides)
    result = {
        "dataset": budget.label,
        "variant": variant,
        "seed": seed,
        "budget": budget.fingerprint(),
        "config": config.to_dict(),
        **metrics.iou_report(confusion, info.class_names),
        "test_images": info.test_size,
        "parameters": model.count_params(),
        "flops": conv_flops(model),
        "receptive_field": receptive_field(config),
        **timing,
        "init": init_scores,
        "trained": trained_scores,
        "wall_seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    maps = _figure_maps(init_maps, trained_maps, images)
    if Path(budget.source).is_dir():
        # A folder's images belong to its owner, so the stored maps keep no copy of them.
        del maps["heldout_image"]
    return result, maps


# Two-sided 97.5% quantiles of Student's t distribution for 1 to 30 degrees of freedom.
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
          2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
          2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(degrees_of_freedom: int) -> float:
    """Return the 97.5% quantile of Student's t distribution.

    Above 30 degrees of freedom it returns the value at 30, which is slightly too high, so the
    noise rule errs towards "within seed noise".
    """
    if degrees_of_freedom < 1:
        raise ValueError(f"Invalid degrees of freedom: {degrees_of_freedom}. Expected at least 1.")
    return _T_975[min(degrees_of_freedom, len(_T_975)) - 1]


def mean_std(values) -> tuple[float, float | None]:
    """Return the mean and the sample standard deviation (None for fewer than 2 values)."""
    array = np.asarray(values, dtype="float64")
    if array.size == 0:
        raise ValueError("mean_std needs at least one value.")
    std = float(array.std(ddof=1)) if array.size > 1 else None
    return float(array.mean()), std


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A candidate's mean score against a reference's, with the seed-noise threshold.

    `threshold` is None when either side has fewer than 2 seeds, because the noise is then
    unknown.
    """

    difference: float
    pooled_std: float | None
    threshold: float | None

    @property
    def beyond_noise(self) -> bool | None:
        if self.threshold is None:
            return None
        return abs(self.difference) > self.threshold


def compare_means(reference, candidate) -> Comparison:
    """Compare two sets of per-seed scores with a two-sided two-sample t-test at the 5% level.

    The pooled standard deviation is s_p = sqrt(((n1 - 1) s1^2 + (n2 - 1) s2^2) / (n1 + n2 - 2)).
    The difference of means counts as beyond the seed noise when it exceeds
    t(0.975, n1 + n2 - 2) * s_p * sqrt(1/n1 + 1/n2).
    """
    reference = np.asarray(reference, dtype="float64")
    candidate = np.asarray(candidate, dtype="float64")
    difference = float(candidate.mean() - reference.mean())
    n1, n2 = reference.size, candidate.size
    if n1 < 2 or n2 < 2:
        return Comparison(difference, None, None)
    squares = (n1 - 1) * reference.var(ddof=1) + (n2 - 1) * candidate.var(ddof=1)
    pooled_variance = squares / (n1 + n2 - 2)
    pooled_std = math.sqrt(pooled_variance)
    threshold = t_quantile_975(n1 + n2 - 2) * pooled_std * math.sqrt(1 / n1 + 1 / n2)
    return Comparison(difference, pooled_std, threshold)
