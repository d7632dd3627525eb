"""Training setup shared by the recipes: precision, compilation, run folders and callbacks."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import keras

from zoo import losses, metrics

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
FINISHED_MARKER = "metrics.json"
BACKUP_FOLDER = "backup"


def set_precision(precision: str) -> None:
    """Set the global Keras dtype policy; call it before building the model."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"Invalid precision: {precision!r}. Expected one of: {', '.join(PRECISIONS)}."
        )
    keras.mixed_precision.set_global_policy(precision)


def head_activation(model: keras.Model) -> str:
    """Return the activation of the model's `head` layer (softmax, sigmoid or linear)."""
    try:
        head = model.get_layer("head")
    except ValueError as error:
        raise ValueError(
            f"Model '{model.name}' has no layer named 'head'; build it with zoo.build."
        ) from error
    return keras.activations.serialize(head.activation)


def compile_model(model: keras.Model, num_classes: int, learning_rate: float = 1e-3,
                  loss: str = "crossentropy", class_names=None) -> keras.Model:
    """Compile `model` with Adam, the named loss and the IoU metrics, for sparse class-id masks."""
    activation = head_activation(model)
    if activation == "sigmoid":
        raise ValueError(
            "Training with class-id masks needs output_activation='softmax' or 'linear'; the model "
            "has a sigmoid head. Rebuild it with output_activation='softmax'."
        )
    if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < 1):
        raise ValueError(f"Invalid learning rate: {learning_rate!r}. Expected a number in (0, 1).")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=losses.get(loss, from_logits=activation == "linear"),
        metrics=[metrics.MeanIoU(num_classes), *metrics.class_iou_metrics(num_classes, class_names)],
    )
    return model


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / FINISHED_MARKER).exists()


def is_interrupted(run_dir: Path) -> bool:
    return (Path(run_dir) / BACKUP_FOLDER).is_dir() and not is_finished(run_dir)


def resolve_run_dir(requested: str | None, default_name: str, root: str = "runs",
                    overwrite: bool = False) -> Path:
    """Choose the run folder without overwriting a finished run.

    An explicit folder that contains a finished run raises FileExistsError unless `overwrite` is
    set; an interrupted run there is resumed. Without an explicit folder, `root/default_name`
    is used, or `-2`, `-3`, ... after it when earlier runs there have finished.
    """
    if requested is not None:
        run_dir = Path(requested)
        if is_finished(run_dir) and not overwrite:
            raise FileExistsError(
                f"Run folder {run_dir} already contains a finished run. Pass another --run-dir, or "
                "--overwrite to replace it."
            )
        return run_dir
    candidate, suffix = Path(root) / default_name, 1
    while is_finished(candidate) and not overwrite:
        suffix += 1
        candidate = Path(root) / f"{default_name}-{suffix}"
    return candidate


def remove_run(run_dir: Path) -> None:
    """Delete a run folder that the user asked to replace (`--overwrite`)."""
    shutil.rmtree(run_dir)
    logger.info("Removed the earlier run in %s", run_dir)


def callbacks(run_dir: Path) -> list[keras.callbacks.Callback]:
    """Return the callbacks of a resumable run: a backup each epoch and a CSV log."""
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_FOLDER)),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]


def write_json(path: Path, data) -> None:
    """Write `data` as indented JSON through a temporary file, so a crash leaves no half file."""
    path = Path(path)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(temporary, path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Cannot write {type(value).__name__} as JSON")
