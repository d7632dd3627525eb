"""KerasTuner search over the zoo's U-Net knobs: the HyperModel, the tuners and the results.

`UNetHyperModel` declares one hyperparameter per knob in `KNOBS`. `make_tuner` wraps
KerasTuner's RandomSearch, Hyperband and BayesianOptimization tuners so that every trial
records which tuner ran it. `trial_rows`, `write_results` and `write_best` turn a finished
search into a results table and a best config that `zoo.build(config=...)` accepts.
`check_search_directory` keeps a directory from mixing two different searches.

Example:
    >>> hypermodel = UNetHyperModel(5, 3, fixed={"depth": 3}, ranges={"base_filters": (8, 32)},
    ...                             choices={"upsampling": ["bilinear", "transpose2"]})
    >>> tuner = make_tuner("random", hypermodel, "tuning", max_trials=10)
    >>> tuner.search(splits.train, validation_data=splits.validation, epochs=2)
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

import zoo
from zoo import training
from zoo.config import ACTIVATIONS, CONV_BLOCKS, DROPOUTS, MAX_DEPTH, UPSAMPLINGS, UNetConfig

logger = logging.getLogger(__name__)

# The names that zoo.losses.get accepts.
LOSSES = ("crossentropy", "dice", "focal", "ce_dice")
TUNERS = ("random", "hyperband", "bayesian")
DIRECTIONS = ("min", "max")

PROJECT_NAME = "unet_search"
SETTINGS_FILE = "search.json"
TRIAL_INFO_FILE = "zoo_trial.json"
RESULTS_CSV = "results.csv"
RESULTS_MARKDOWN = "results.md"
BEST_CONFIG_FILE = "best_config.json"
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.json"
BEST_MODEL_FILE = "best_model.keras"
OUTPUT_FILES = (SETTINGS_FILE, RESULTS_CSV, RESULTS_MARKDOWN, BEST_CONFIG_FILE,
                BEST_HYPERPARAMETERS_FILE, BEST_MODEL_FILE)


@dataclasses.dataclass(frozen=True)
class Knob:
    """One searchable setting and the values it accepts.

    `default` is the searched space when the caller narrows nothing: the choice values, or
    (low, high) for int and float knobs. `limits` bounds int knobs inclusively and float
    knobs exclusively. With log sampling, an int knob's `step` is the factor between values.
    """

    name: str
    kind: str  # "choice", "int" or "float"
    default: tuple
    accepted: tuple = ()
    limits: tuple = ()
    sampling: str = "linear"
    step: int | None = None


KNOBS: dict[str, Knob] = {knob.name: knob for knob in (
    Knob("upsampling", "choice", UPSAMPLINGS, accepted=UPSAMPLINGS),
    Knob("dropout", "choice", DROPOUTS, accepted=DROPOUTS),
    Knob("dropout_rate", "float", (0.05, 0.5), limits=(0.0, 1.0)),
    Knob("encoder_activation", "choice", ACTIVATIONS, accepted=ACTIVATIONS),
    Knob("decoder_activation", "choice", ACTIVATIONS, accepted=ACTIVATIONS),
    Knob("conv_block", "choice", CONV_BLOCKS, accepted=CONV_BLOCKS),
    Knob("depth", "int", (2, 5), limits=(1, MAX_DEPTH)),
    Knob("base_filters", "int", (8, 64), limits=(1, 4096), sampling="log", step=2),
    Knob("learning_rate", "float", (1e-4, 1e-2), limits=(0.0, 1.0), sampling="log"),
    Knob("loss", "choice", LOSSES, accepted=LOSSES),
)}
# Knobs that are trainer settings, not UNetConfig fields.
TRAINING_KNOBS = ("learning_rate", "loss")
DROPOUT_KINDS = tuple(kind for kind in DROPOUTS if kind != "none")


def describe_knobs() -> str:
    """Return one line per knob with its kind and default search values, for help texts."""
    lines = []
    for knob in KNOBS.values():
        if knob.kind == "choice":
            values = ", ".join(map(str, knob.default))
        else:
            values = f"{knob.default[0]} to {knob.default[1]}" + (" (log)" if knob.sampling == "log" else "")
        lines.append(f"  {knob.name:<19} {knob.kind:<7} {values}")
    return "\n".join(lines)


def _invalid(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"Invalid value for knob '{name}': {value!r}. Expected {expected}.")


def check_knob_value(name: str, value: Any, image_size: int | None = None) -> None:
    """Raise ValueError naming the knob and the accepted values when `value` is not valid."""
    knob = KNOBS[name]
    if knob.kind == "choice":
        if value not in knob.accepted:
            raise _invalid(name, value, "one of: " + ", ".join(knob.accepted))
        return
    low, high = knob.limits
    if knob.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _invalid(name, value, f"an integer between {low} and {high}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
        raise _invalid(name, value, f"a number in ({low}, {high})")
    if name == "depth" and image_size is not None and 2**value > image_size:
        raise ValueError(
            f"Invalid value for knob 'depth': {value}. The encoder halves {image_size}-pixel "
            f"images {value} times, so depth must be at most {image_size.bit_length() - 1}."
        )


def _check_names(names, valid: Sequence[str], argument: str, kind: str = "knob") -> None:
    for name in names:
        if name not in valid:
            raise ValueError(
                f"Unknown {kind} '{name}' in {argument}. Valid names: {', '.join(valid)}."
            )


def _check_range(name: str, bounds: Any, image_size: int | None) -> tuple:
    knob = KNOBS[name]
    if knob.kind == "choice":
        raise ValueError(
            f"Knob '{name}' is categorical and has no range. Narrow it with choices instead: "
            + ", ".join(knob.accepted) + "."
        )
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"Invalid range for knob '{name}': {bounds!r}. Expected (low, high).")
    low, high = bounds
    check_knob_value(name, low, image_size)
    check_knob_value(name, high, image_size)
    if low > high:
        raise ValueError(f"Invalid range for knob '{name}': low {low} is above high {high}.")
    return (low, high)


def _check_choices(name: str, values: Any, image_size: int | None) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(
            f"Invalid choices for knob '{name}': {values!r}. Expected a non-empty list of values."
        )
    for value in values:
        check_knob_value(name, value, image_size)
    unique = tuple(dict.fromkeys(values))
    return tuple(sorted(unique)) if KNOBS[name].kind != "choice" else unique


def _resolve_space(fixed, choices, ranges, image_size) -> dict[str, tuple]:
    """Return, per knob, ("fixed", value), ("choice", values) or ("range", low, high)."""
    space = {}
    for name, knob in KNOBS.items():
        arguments_naming_knob = [argument for argument, mapping in
                                 (("fixed", fixed), ("choices", choices), ("ranges", ranges))
                                 if name in mapping]
        if len(arguments_naming_knob) > 1:
            raise ValueError(f"Knob '{name}' appears in {' and '.join(arguments_naming_knob)}. "
                             "Give it in one of them only.")
        if name in fixed:
            check_knob_value(name, fixed[name], image_size)
            space[name] = ("fixed", fixed[name])
        elif name in choices:
            space[name] = ("choice", _check_choices(name, choices[name], image_size))
        elif name in ranges:
            space[name] = ("range", *_check_range(name, ranges[name], image_size))
        elif knob.kind == "choice":
            space[name] = ("choice", knob.default)
        else:
            space[name] = ("range", *_default_range(knob, image_size))
    return space


def _default_range(knob: Knob, image_size: int | None) -> tuple:
    """Return the knob's default range, capping depth at what `image_size` allows."""
    low, high = knob.default
    if knob.name == "depth" and image_size is not None:
        high = max(low, min(high, image_size.bit_length() - 1))
    return (low, high)


def _dropout_kinds(space: dict[str, tuple]) -> tuple[str, ...]:
    """Return the dropout kinds other than "none" that the space can choose."""
    kind, *values = space["dropout"]
    possible = (values[0],) if kind == "fixed" else values[0]
    return tuple(value for value in possible if value != "none")


class UNetHyperModel(kt.HyperModel):
    """Search space over the zoo's U-Net knobs; `build` returns a compiled model.

    `fixed` maps a knob to one value, `choices` to a list of values and `ranges` a numeric
    knob to (low, high). Unnamed knobs search their `KNOBS` default. `fixed` may also set
    any other UNetConfig field (for example `norm` or `residual`), which then applies to
    every trial. `dropout_rate` is declared in a conditional scope on `dropout`, so trials
    without dropout record no rate. `image_size`, when given, rejects depths that images of
    that size cannot take.

    Example:
        >>> UNetHyperModel(5, 3, fixed={"depth": 3}, ranges={"base_filters": (8, 32)})
    """

    def __init__(
        self,
        num_classes: int,
        channels: int,
        *,
        fixed: Mapping[str, Any] | None = None,
        choices: Mapping[str, Sequence] | None = None,
        ranges: Mapping[str, tuple] | None = None,
        base_config: UNetConfig | None = None,
        image_size: int | None = None,
        class_names: Sequence[str] | None = None,
        name: str = "unet_hypermodel",
    ):
        super().__init__(name=name)
        fixed, choices, ranges = dict(fixed or {}), dict(choices or {}), dict(ranges or {})
        config_fields = {key: value for key, value in fixed.items() if key not in KNOBS}
        _check_names(config_fields, [*KNOBS, *_other_config_fields()], "fixed",
                     "knob or UNetConfig field")
        _check_names(choices, list(KNOBS), "choices")
        _check_names(ranges, list(KNOBS), "ranges")
        self.base_config = (base_config or UNetConfig()).replace(**config_fields)
        self.space = _resolve_space(fixed, choices, ranges, image_size)
        self.dropout_kinds = _dropout_kinds(self.space)
        rate_given = any("dropout_rate" in mapping for mapping in (fixed, choices, ranges))
        if rate_given and not self.dropout_kinds:
            raise ValueError(
                "Knob 'dropout_rate' has no effect because dropout can only be 'none'. Allow "
                f"dropout {' or '.join(DROPOUT_KINDS)}, or drop the dropout_rate setting."
            )
        self.num_classes = num_classes
        self.channels = channels
        self.class_names = tuple(class_names) if class_names else None

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """Declare every knob in `hp` and return the active values (inactive ones are None)."""
        values = {name: self._declare(hp, name) for name in KNOBS if name != "dropout_rate"}
        values["dropout_rate"] = None
        if self.dropout_kinds:
            with hp.conditional_scope("dropout", list(self.dropout_kinds)):
                values["dropout_rate"] = self._declare(hp, "dropout_rate")
        return values

    def _declare(self, hp: kt.HyperParameters, name: str):
        kind, *arguments = self.space[name]
        if kind == "fixed":
            return hp.Fixed(name, arguments[0])
        if kind == "choice":
            return hp.Choice(name, list(arguments[0]))
        knob, (low, high) = KNOBS[name], arguments
        if low == high:
            return hp.Fixed(name, low)
        if knob.kind == "int":
            return hp.Int(name, low, high, step=knob.step or 1, sampling=knob.sampling)
        return hp.Float(name, low, high, sampling=knob.sampling)

    def space_config(self) -> dict:
        """Return the declared search space as KerasTuner's JSON-ready config."""
        hp = kt.HyperParameters()
        self.declare_hyperparameters(hp)
        return {"space": hp.get_config()["space"], "base_config": self.base_config.to_dict()}

    def config_from_values(self, values: Mapping[str, Any]) -> UNetConfig:
        """Return the UNetConfig of one trial's hyperparameter values."""
        fields = {name: values[name] for name in KNOBS
                  if name not in TRAINING_KNOBS and values.get(name) is not None}
        return self.base_config.replace(**fields)

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        values = self.declare_hyperparameters(hp)
        model = zoo.build(config=self.config_from_values(values),
                          input_shape=(None, None, self.channels), num_classes=self.num_classes)
        return training.compile_model(model, self.num_classes, values["learning_rate"],
                                      values["loss"], self.class_names)


def _other_config_fields() -> list[str]:
    return [field.name for field in dataclasses.fields(UNetConfig) if field.name not in KNOBS]


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """Outcome of one finished trial, as reported to the `on_trial_end` callback."""

    trial_id: str
    status: str
    score: float | None
    seconds: float
    tuner_id: str
    message: str | None = None


class _TrialLimitReached(Exception):
    """Raised before a trial that would exceed the tuner's `trial_limit`."""


class _TrialRecorder:
    """Tuner mixin: records the tuner of each trial, reports it, and stops at `trial_limit`.

    Before the oracle ends a trial, the tuner writes TRIAL_INFO_FILE (its tuner id, host,
    process id and the trial's seconds) into the trial directory. In a distributed search
    on a shared directory, that is how the chief's results table names the worker.

    `trial_limit` bounds the trials that this tuner object runs. With Keras 3.15 and
    TensorFlow 2.21, each fitted model leaves its traced graphs in memory (about 50 MiB per
    trial for a depth-2 U-Net with 4 base filters, measured on CPU), and neither
    `clear_session` nor garbage collection frees them. So a caller can stop after
    `trial_limit` trials and resume the search in a fresh process, as recipes/tune.py does.
    """

    def __init__(self, *args, on_trial_end: Callable[[TrialResult], None] | None = None,
                 trial_limit: int | None = None, **kwargs):
        self._trial_callback = on_trial_end
        self._trial_started: dict[str, float] = {}
        self.trial_limit = trial_limit
        self.trials_run = 0
        self.reached_trial_limit = False
        super().__init__(*args, **kwargs)

    def search(self, *fit_args, **fit_kwargs):
        """Run the search; return early, with `reached_trial_limit` set, at `trial_limit`."""
        self.reached_trial_limit = False
        try:
            super().search(*fit_args, **fit_kwargs)
        except _TrialLimitReached:
            self.reached_trial_limit = True
            self.on_search_end()

    def pre_create_trial(self):
        if self.trial_limit is not None and self.trials_run >= self.trial_limit:
            raise _TrialLimitReached()
        super().pre_create_trial()

    def on_trial_begin(self, trial):
        self._trial_started[trial.trial_id] = time.monotonic()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._trial_started.pop(trial.trial_id, time.monotonic())
        info = {"tuner_id": self.tuner_id, "host": socket.gethostname(), "pid": os.getpid(),
                "seconds": round(seconds, 1)}
        write_json_atomic(Path(self.get_trial_dir(trial.trial_id)) / TRIAL_INFO_FILE, info)
        super().on_trial_end(trial)
        self.trials_run += 1

        # The oracle (local, or the chief through gRPC) stores the status and score.
        ended = self.oracle.get_trial(trial.trial_id)
        message = ended.message.strip().splitlines()[-1] if ended.message else None
        result = TrialResult(trial.trial_id, ended.status, ended.score, seconds, self.tuner_id, message)
        logger.info("Trial %s %s: score %s in %.1f s on %s", result.trial_id, result.status,
                    result.score, seconds, self.tuner_id)
        # Frees the finished model and its dataset iterators now, not at the next build.
        keras.backend.clear_session()
        gc.collect()
        if self._trial_callback is not None:
            self._trial_callback(result)


class RandomSearch(_TrialRecorder, kt.RandomSearch):
    pass


class Hyperband(_TrialRecorder, kt.Hyperband):
    pass


class BayesianOptimization(_TrialRecorder, kt.BayesianOptimization):
    pass


def make_objective(name: str = "val_mean_iou", direction: str | None = None) -> kt.Objective:
    """Return the objective `name`, to minimize when its name contains "loss", else maximize."""
    if direction is None:
        direction = "min" if "loss" in name else "max"
    if direction not in DIRECTIONS:
        raise ValueError(f"Invalid objective direction: {direction!r}. Expected min or max.")
    return kt.Objective(name, direction=direction)


def make_tuner(
    kind: str,
    hypermodel: UNetHyperModel,
    directory,
    *,
    objective: str | kt.Objective = "val_mean_iou",
    max_trials: int = 10,
    max_epochs: int = 3,
    hyperband_factor: int = 3,
    seed: int | None = None,
    distribution_strategy=None,
    overwrite: bool = False,
    on_trial_end: Callable[[TrialResult], None] | None = None,
    trial_limit: int | None = None,
) -> kt.Tuner:
    """Create a `kind` tuner ("random", "hyperband" or "bayesian") over `hypermodel`.

    The project lives in `directory/PROJECT_NAME`; an existing project there is resumed
    unless `overwrite` is set. `max_trials` applies to random and bayesian search, and
    `max_epochs` with `hyperband_factor` to hyperband. `on_trial_end` is called with a
    TrialResult after each trial that this process ran. With `trial_limit`, `search`
    returns after that many trials and sets `tuner.reached_trial_limit`.
    """
    _check_tensorboard()
    if isinstance(objective, str):
        objective = make_objective(objective)
    common = dict(hypermodel=hypermodel, objective=objective, seed=seed, directory=str(directory),
                  project_name=PROJECT_NAME, overwrite=overwrite, on_trial_end=on_trial_end,
                  trial_limit=trial_limit, distribution_strategy=distribution_strategy)
    if kind == "random":
        return RandomSearch(max_trials=max_trials, **common)
    if kind == "bayesian":
        return BayesianOptimization(max_trials=max_trials, **common)
    if kind == "hyperband":
        return Hyperband(max_epochs=max_epochs, factor=hyperband_factor, **common)
    raise ValueError(f"Unknown tuner: {kind!r}. Expected one of: {', '.join(TUNERS)}.")


def _check_tensorboard() -> None:
    """Raise ImportError when tensorboard is missing, before any trial runs.

    KerasTuner 1.4 imports tensorboard in every trial on the TensorFlow backend, and
    TensorFlow 2.21 no longer installs it, so without this check every trial fails.
    """
    if keras.backend.backend() == "tensorflow" and importlib.util.find_spec("tensorboard") is None:
        raise ImportError(
            "KerasTuner needs the tensorboard package to run trials on the TensorFlow backend, "
            "and it is not installed. Install it with: pip install 'tensorboard>=2.21,<2.22'"
        )


def make_strategy(name: str = "default"):
    """Return the tf.distribute strategy for trials: None (default), mirrored or multi_worker.

    multi_worker reads the cluster from the TF_CONFIG environment variable; create it
    before any other TensorFlow work, as TensorFlow requires.
    """
    import tensorflow as tf

    if name == "default":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "Strategy multi_worker needs the TF_CONFIG environment variable that describes "
                "the cluster and this worker's task. Set it, or use --strategy mirrored."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy: {name!r}. Expected default, mirrored or multi_worker.")


def distributed_role() -> str:
    """Return "chief", "worker" or "local" from KerasTuner's KERASTUNER_* variables.

    KerasTuner (1.4) treats a process as the chief when KERASTUNER_ORACLE_IP is set and
    KERASTUNER_TUNER_ID contains "chief"; this function applies the same rule.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "local"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def write_json_atomic(path: Path, data) -> None:
    """Write `data` as JSON through a uniquely named temporary file in the same folder.

    Unlike a fixed temporary name, this stays correct when several processes of one
    distributed search write the same file at once: the last rename wins, whole.
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def check_search_directory(directory, settings: Mapping[str, Any], overwrite: bool = False) -> None:
    """Make sure that `directory` contains no search other than the one `settings` describes.

    `settings` is everything that gives trials their meaning (space, data, epochs, tuner);
    it is stored in SETTINGS_FILE on first use and compared on later runs. A difference,
    or a KerasTuner project without SETTINGS_FILE, raises ValueError unless `overwrite`
    is set. `overwrite` deletes the project and the files this module writes (nothing
    else in `directory`), so the search starts again.
    """
    directory = Path(directory)
    settings = json.loads(json.dumps(settings))  # tuples become lists, as in the stored file
    stored = _read_json(directory / SETTINGS_FILE)
    problem = None
    if stored is not None and stored != settings:
        changed = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
        problem = f"contains a different search (changed: {', '.join(changed)})"
    elif stored is None and (directory / PROJECT_NAME).exists():
        problem = f"contains a KerasTuner project without {SETTINGS_FILE}, so it cannot be compared"
    if problem and not overwrite:
        raise ValueError(
            f"Search directory {directory} {problem}. Use another directory, or pass overwrite "
            "(--overwrite) to delete that search and start again."
        )

    if overwrite:
        _delete_search(directory)
    elif stored is not None:
        logger.info("Search settings match those stored in %s; continuing that search", directory)
        return
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / SETTINGS_FILE, settings)


def _delete_search(directory: Path) -> None:
    shutil.rmtree(directory / PROJECT_NAME, ignore_errors=True)
    for name in OUTPUT_FILES:
        (directory / name).unlink(missing_ok=True)
    logger.info("Deleted the previous search in %s", directory)


def trial_rows(tuner: kt.Tuner) -> list[dict[str, Any]]:
    """Return one row per trial, completed trials best first, then the others.

    A row contains the rank (completed trials only), trial id, status, objective score,
    the knob values (empty when inactive), any other hyperparameters (Hyperband's
    "tuner/..." values), and the tuner id and seconds from TRIAL_INFO_FILE when present.
    Call it on a local tuner or on the chief; a worker has no oracle to read.
    """
    oracle = tuner.oracle
    objective = oracle.objective.name
    rows, rank = [], 0
    for trial in oracle.get_best_trials(len(oracle.trials)):
        completed = trial.status == kt.engine.trial.TrialStatus.COMPLETED
        rank += completed
        values = trial.hyperparameters.values
        info = _read_json(Path(tuner.project_dir) / f"trial_{trial.trial_id}" / TRIAL_INFO_FILE) or {}
        row = {"rank": rank if completed else "", "trial_id": trial.trial_id, "status": trial.status,
               objective: trial.score if completed else ""}
        row.update({name: values.get(name, "") for name in KNOBS})
        row.update({name: value for name, value in values.items() if name not in KNOBS})
        row.update(tuner_id=info.get("tuner_id", ""), seconds=info.get("seconds", ""))
        rows.append(row)
    return rows


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_results(rows: Sequence[Mapping[str, Any]], directory) -> tuple[Path, Path]:
    """Write `rows` as RESULTS_CSV and RESULTS_MARKDOWN in `directory`; return both paths."""
    directory = Path(directory)
    columns = _columns(rows)
    csv_path, markdown_path = directory / RESULTS_CSV, directory / RESULTS_MARKDOWN
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_format_cell(row.get(column, "")) for column in columns) + " |")
    markdown_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path, markdown_path


def best_trial(tuner: kt.Tuner):
    """Return the best completed trial, or raise RuntimeError when no trial completed."""
    trials = tuner.oracle.get_best_trials(1)
    if not trials or trials[0].status != kt.engine.trial.TrialStatus.COMPLETED:
        raise RuntimeError(
            f"No trial of the search in {tuner.project_dir} completed, so there is no best "
            "config. The results table lists each trial's status."
        )
    return trials[0]


def write_best(hypermodel: UNetHyperModel, trial, directory, objective: kt.Objective) -> UNetConfig:
    """Write the trial's UNetConfig and its training hyperparameters; return the config.

    BEST_CONFIG_FILE is plain UNetConfig JSON, so `zoo.build(config=path)` reads it.
    BEST_HYPERPARAMETERS_FILE adds the learning rate, loss, score and all trial values.
    """
    directory = Path(directory)
    values = trial.hyperparameters.values
    config = hypermodel.config_from_values(values)
    (directory / BEST_CONFIG_FILE).write_text(config.to_json() + "\n", encoding="utf-8")
    write_json_atomic(directory / BEST_HYPERPARAMETERS_FILE, {
        "trial_id": trial.trial_id,
        "objective": objective.name,
        "direction": objective.direction,
        "score": trial.score,
        **{name: values[name] for name in TRAINING_KNOBS},
        "hyperparameters": values,
    })
    return config
