"""PNG figures for comparison reports: bar charts, learning curves, heat maps and image panels.

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot, so
they need no display and leave matplotlib's global state alone.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

logger = logging.getLogger(__name__)

DPI = 110


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    logger.info("Wrote %s", path)
    return path


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def bar_chart(path, title: str, groups) -> Path:
    """Draw one panel per dataset with a bar per variant: the mean and a standard-deviation bar.

    `groups` is a list of (dataset, [(variant, mean, std or None), ...]).
    """
    figure = Figure(figsize=(4.2 * len(groups), 3.6), layout="constrained")
    figure.suptitle(title)
    for index, (dataset, bars) in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), index)
        names = [name for name, _, _ in bars]
        means = [mean for _, mean, _ in bars]
        errors = [std or 0.0 for _, _, std in bars]
        axes.bar(range(len(bars)), means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
        axes.set_xticks(range(len(bars)), names, rotation=35, ha="right", fontsize=8)
        axes.set_title(dataset, fontsize=10)
        axes.set_ylabel("held-out mean IoU")
        if bars:
            # Bars start at 0 so that their heights compare honestly. The table has the digits.
            high = max(mean + error for mean, error in zip(means, errors))
            axes.set_ylim(0.0, min(1.0, high + 0.05))
        axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def learning_curves(path, title: str, groups, metric: str = "training loss") -> Path:
    """Draw one panel per dataset with the mean curve of each variant and a band of one std.

    `groups` is a list of (dataset, {variant: [per-seed list of per-epoch values]}).
    """
    figure = Figure(figsize=(4.2 * len(groups), 3.4), layout="constrained")
    figure.suptitle(title)
    for index, (dataset, curves) in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), index)
        for variant, runs in curves.items():
            length = min(len(run) for run in runs)
            values = np.asarray([run[:length] for run in runs], dtype="float64")
            epochs = np.arange(1, length + 1)
            mean = values.mean(axis=0)
            axes.plot(epochs, mean, marker="o", markersize=3, label=variant)
            if len(runs) > 1:
                std = values.std(axis=0, ddof=1)
                axes.fill_between(epochs, mean - std, mean + std, alpha=0.15)
        axes.set_title(dataset, fontsize=10)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return _save(figure, path)


def heat_maps(path, title: str, panels, columns: int = 5) -> Path:
    """Draw each map on a log scale, with a circle of the given radius around the centre.

    `panels` is a list of (caption, 2-D map, radius in pixels or None). Values are shown as
    log10(value / max), clipped at -4, so the faint tails stay visible.
    """
    rows, columns = _grid(len(panels), columns)
    figure = Figure(figsize=(2.6 * columns, 2.7 * rows), layout="constrained")
    figure.suptitle(title)
    for index, (caption, field, radius) in enumerate(panels, start=1):
        axes = figure.add_subplot(rows, columns, index)
        field = np.asarray(field, dtype="float64")
        peak = field.max()
        log_share = np.full(field.shape, -4.0)
        if peak > 0:
            log_share = np.log10(np.maximum(field / peak, 1e-4))
        image = axes.imshow(log_share, cmap="magma", vmin=-4, vmax=0, interpolation="nearest")
        if radius is not None:
            centre = (field.shape[1] // 2, field.shape[0] // 2)
            axes.add_patch(Circle(centre, radius, fill=False, color="cyan", linewidth=1))
        axes.set_title(caption, fontsize=8)
        axes.set_axis_off()
    figure.colorbar(image, ax=figure.axes, shrink=0.6, label="log10 share of the peak")
    return _save(figure, path)


def image_panels(path, title: str, column_titles, rows) -> Path:
    """Draw a grid of images: one row per entry of `rows`, one column per `column_titles`.

    `rows` is a list of (row label, [image, ...]). A 2-D image is drawn with its own colour
    range, a (height, width, 3) one as RGB in [0, 1] and a (height, width, 1) one in grey
    over [0, 1]. Pixels are
    drawn as blocks (nearest interpolation), so a period-2 pattern stays visible.
    """
    columns = len(column_titles)
    figure = Figure(figsize=(2.3 * columns, 2.3 * len(rows) + 0.4), layout="constrained")
    figure.suptitle(title)
    for row_index, (label, images) in enumerate(rows):
        for column_index, image in enumerate(images):
            axes = figure.add_subplot(len(rows), columns, row_index * columns + column_index + 1)
            image = np.asarray(image, dtype="float32")
            if image.ndim == 3 and image.shape[-1] == 1:
                axes.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            elif image.ndim == 3:
                axes.imshow(np.clip(image, 0, 1), interpolation="nearest")
            else:
                axes.imshow(image, cmap="viridis", interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if row_index == 0:
                axes.set_title(column_titles[column_index], fontsize=8)
            if column_index == 0:
                axes.set_ylabel(label, fontsize=8)
    return _save(figure, path)
