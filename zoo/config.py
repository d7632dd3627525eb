"""UNetConfig: every architecture knob of the zoo, validated in one place.

A variant is a name plus a set of overrides on the default `UNetConfig`, so comparing two
variants means comparing two configs. Validation runs when a config is created, before any
layer is built, and every error names the field, the value received and what is accepted.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any

CONV_BLOCKS = ("stacked3x3", "single5x5", "factorized5x5", "asymmetric")
NORMS = ("batch", "group", "layer", "none")
ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu", "gelu", "swish")
DROPOUTS = ("none", "standard", "spatial")
DROPOUT_STAGES = ("encoder", "bottleneck", "decoder")
UPSAMPLINGS = ("transpose2", "transpose3", "transpose4", "nearest", "bilinear", "pixel_shuffle")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", "linear")

MAX_DEPTH = 7


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Architecture of one U-Net; the defaults are the baseline `unet` variant.

    Filters at encoder stage `i` (0-based) are `round(base_filters * filter_growth**i)`; the
    bottleneck is stage `depth`. `dropout_rate` applies only when `dropout` is not "none", in
    the parts named by `dropout_stages` (by default the bottleneck, the end of the encoder).
    `norm_momentum` is the BatchNormalization moving-average momentum: the Keras default of
    0.99 needs several hundred steps before the moving statistics used at inference match the
    batch statistics seen in training, so short runs on small sets evaluate badly with it.
    """

    depth: int = 4
    base_filters: int = 32
    filter_growth: float = 2.0
    convs_per_stage: int = 2
    conv_block: str = "stacked3x3"
    norm: str = "batch"
    norm_momentum: float = 0.7
    group_norm_groups: int = 8
    encoder_activation: str = "relu"
    bottleneck_activation: str = "relu"
    decoder_activation: str = "relu"
    leaky_relu_slope: float = 0.1
    dropout: str = "none"
    dropout_rate: float = 0.2
    dropout_stages: tuple[str, ...] = ("bottleneck",)
    upsampling: str = "transpose2"
    residual: bool = False
    attention: bool = False
    output_activation: str = "softmax"

    def __post_init__(self) -> None:
        # JSON gives lists; keep the frozen dataclass hashable and comparable.
        if isinstance(self.dropout_stages, (list, set)):
            object.__setattr__(self, "dropout_stages", tuple(self.dropout_stages))
        _validate(self)

    def filters(self, stage: int) -> int:
        """Return the number of filters of encoder stage `stage` (the bottleneck is `depth`)."""
        return max(1, int(round(self.base_filters * self.filter_growth**stage)))

    def replace(self, **overrides: Any) -> UNetConfig:
        """Return a copy with `overrides` applied; an unknown field raises ValueError."""
        check_field_names(overrides)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["dropout_stages"] = list(self.dropout_stages)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        check_field_names(data)
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UNetConfig:
        return cls.from_dict(json.loads(text))


FIELD_NAMES = tuple(field.name for field in dataclasses.fields(UNetConfig))


def check_field_names(fields: dict[str, Any]) -> None:
    """Raise ValueError for any key of `fields` that is not a UNetConfig field."""
    for name in fields:
        if name not in FIELD_NAMES:
            close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"Unknown U-Net config field '{name}'.{hint} "
                f"Valid fields: {', '.join(FIELD_NAMES)}."
            )


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"Invalid value for '{field}': {value!r}. Expected one of: {', '.join(choices)}."
        )


def _check_int(field: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Invalid value for '{field}': {value!r}. Expected an integer.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"Invalid value for '{field}': {value}. Expected an integer {bounds}.")


def _check_number(field: str, value: Any, low: float, high: float, *, open_high: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Invalid value for '{field}': {value!r}. Expected a number.")
    too_high = value >= high if open_high else value > high
    if value < low or too_high:
        bracket = ")" if open_high else "]"
        raise ValueError(
            f"Invalid value for '{field}': {value}. Expected a number in [{low}, {high}{bracket}."
        )


def _validate(config: UNetConfig) -> None:
    _check_int("depth", config.depth, 1, MAX_DEPTH)
    _check_int("base_filters", config.base_filters, 1, 4096)
    _check_number("filter_growth", config.filter_growth, 1.0, 4.0, open_high=False)
    _check_int("convs_per_stage", config.convs_per_stage, 1, 8)
    _check_choice("conv_block", config.conv_block, CONV_BLOCKS)
    _check_choice("norm", config.norm, NORMS)
    _check_number("norm_momentum", config.norm_momentum, 0.0, 1.0, open_high=True)
    _check_int("group_norm_groups", config.group_norm_groups, 1, 4096)
    for field in ("encoder_activation", "bottleneck_activation", "decoder_activation"):
        _check_choice(field, getattr(config, field), ACTIVATIONS)
    _check_number("leaky_relu_slope", config.leaky_relu_slope, 0.0, 1.0, open_high=True)
    _check_choice("dropout", config.dropout, DROPOUTS)
    _check_number("dropout_rate", config.dropout_rate, 0.0, 1.0, open_high=True)
    if config.dropout != "none" and config.dropout_rate <= 0.0:
        raise ValueError(
            f"Invalid value for 'dropout_rate': {config.dropout_rate} with dropout="
            f"'{config.dropout}'. Use a rate in (0, 1), or set dropout='none'."
        )
    if not isinstance(config.dropout_stages, tuple):
        raise ValueError(
            f"Invalid value for 'dropout_stages': {config.dropout_stages!r}. Expected a list of "
            f"stages from {', '.join(DROPOUT_STAGES)}, for example [\"{config.dropout_stages}\"]."
        )
    for stage in config.dropout_stages:
        _check_choice("dropout_stages", stage, DROPOUT_STAGES)
    _check_choice("upsampling", config.upsampling, UPSAMPLINGS)
    for field in ("residual", "attention"):
        if not isinstance(getattr(config, field), bool):
            raise ValueError(
                f"Invalid value for '{field}': {getattr(config, field)!r}. Expected True or False."
            )
    _check_choice("output_activation", config.output_activation, OUTPUT_ACTIVATIONS)
