"""unet-zoo: named, comparable U-Net segmentation variants for Keras 3.

Example:
    >>> import zoo
    >>> model = zoo.build("unet-spatialdrop", input_shape=(None, None, 1), num_classes=2)
    >>> zoo.names()[:3]
    ['unet', 'unet-dropout', 'unet-spatialdrop']
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import keras

from zoo import layers as _layers  # noqa: F401  (registers the custom layers)
from zoo import data  # noqa: F401  (registers the TFDS builders, such as zoo_shapes)
from zoo import losses, metrics  # noqa: F401  (registers the custom losses and metrics)
from zoo.analysis import conv_flops, receptive_field
from zoo.config import UNetConfig
from zoo.unet import build_unet
from zoo.variants import Variant, get as get_variant, names, register

__all__ = [
    "UNetConfig", "Variant", "build", "config_of", "describe", "names", "register",
]

__version__ = "0.1.0"


def _coerce_config(config: Any) -> UNetConfig:
    if isinstance(config, UNetConfig):
        return config
    if isinstance(config, dict):
        return UNetConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        text = str(config)
        if not text.lstrip().startswith("{"):
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        return UNetConfig.from_dict(json.loads(text))
    raise ValueError(
        f"Invalid config: {type(config).__name__}. Expected a UNetConfig, a dict, a JSON string "
        "or the path of a JSON file."
    )


def config_of(name: str = "unet", config: Any = None, **overrides: Any) -> UNetConfig:
    """Return the validated config of variant `name`, or of `config`, with `overrides` applied."""
    if config is not None:
        return _coerce_config(config).replace(**overrides)
    return get_variant(name).config().replace(**overrides)


def build(
    name: str | None = None,
    input_shape: tuple = (None, None, 3),
    num_classes: int = 2,
    *,
    config: Any = None,
    **overrides: Any,
) -> keras.Model:
    """Build the U-Net variant `name` (or a given `config`) as a Keras Functional model.

    The model takes float images in [0, 1] of shape (batch, height, width, channels) and
    returns per-pixel class scores (softmax by default) at the input's height and width.
    `overrides` are `UNetConfig` fields, for example `depth=3` or `dropout_rate=0.1`.

    Example:
        >>> model = zoo.build("unet-upsample", input_shape=(None, None, 1), num_classes=2, depth=3)
        >>> model = zoo.build(config="best_config.json", input_shape=(128, 128, 3), num_classes=3)
    """
    if name is not None and config is not None:
        raise ValueError(
            f"Pass either a variant name or a config, not both (received name={name!r}). "
            "To change a variant, pass its fields as keyword overrides instead."
        )
    if config is not None:
        resolved = config_of(config=config, **overrides)
        model_name = "unet-custom"
    else:
        variant = get_variant(name or "unet")
        resolved = config_of(variant.name, **overrides)
        model_name = variant.name
    return build_unet(resolved, input_shape, num_classes, name=model_name)


@dataclasses.dataclass(frozen=True)
class Description:
    """What `describe` reports about a variant at one input size."""

    name: str
    purpose: str
    input_shape: tuple
    num_classes: int
    config: UNetConfig
    parameters: int
    flops: int
    receptive_field: int

    def __str__(self) -> str:
        rows = [
            f"{self.name}: {self.purpose}",
            f"  input shape      {self.input_shape}, {self.num_classes} classes",
            f"  parameters       {self.parameters:,}",
            f"  FLOPs per image  {self.flops / 1e9:.2f} G (2 x conv multiply-adds)",
            f"  receptive field  {self.receptive_field} px (theoretical)",
            "  config:",
        ]
        rows += [f"    {key:<22} {value}" for key, value in self.config.to_dict().items()]
        return "\n".join(rows)


def describe(
    name: str = "unet",
    input_shape: tuple = (256, 256, 3),
    num_classes: int = 2,
    *,
    verbose: bool = True,
    **overrides: Any,
) -> Description:
    """Return (and print, unless `verbose=False`) the resolved config and costs of a variant."""
    height, width, _ = tuple(input_shape)
    if height is None or width is None:
        raise ValueError(
            f"describe needs a fixed height and width to count FLOPs; received {input_shape}."
        )
    variant = get_variant(name)
    model = build(variant.name, input_shape=input_shape, num_classes=num_classes, **overrides)
    config = config_of(variant.name, **overrides)
    description = Description(
        name=variant.name,
        purpose=variant.purpose,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        config=config,
        parameters=model.count_params(),
        flops=conv_flops(model),
        receptive_field=receptive_field(config),
    )
    if verbose:
        print(description)
    return description
