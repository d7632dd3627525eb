"""The models that the benchmark compares, built at the same depth and widths.

- `zoo`: the zoo's baseline `unet` from `zoo.build`.
- `handwritten`: the same architecture written with standard Keras layers
  (`benchmarks/handwritten_unet.py`).
- `keras-unet`: `keras_unet.models.custom_unet` of keras-unet 0.1.2 with transposed-convolution
  upsampling and no dropout. Its blocks apply ReLU before BatchNorm, and its convolutions, like
  the zoo's, have no bias next to BatchNorm. Its parameters and FLOPs equal the zoo's.
- `keras-unet-collection`: `keras_unet_collection.models.unet_2d` of keras-unet-collection
  0.1.13 with max pooling and transposed convolutions. Each decoder stage has a 3x3 transposed
  convolution with BatchNorm and ReLU and an extra 3x3 convolution before the concatenation,
  so it has about 1.21x the zoo's parameters and 1.26x its FLOPs at the same widths.

The two peers are not dependencies of the zoo: `install_peers` installs the pinned versions
into a separate folder that only the benchmark puts on `sys.path`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ZOO = "zoo"
HANDWRITTEN = "handwritten"
KERAS_UNET = "keras-unet"
KERAS_UNET_COLLECTION = "keras-unet-collection"
CONTENDERS = (ZOO, HANDWRITTEN, KERAS_UNET, KERAS_UNET_COLLECTION)
PEERS = {
    KERAS_UNET: "keras-unet==0.1.2",
    KERAS_UNET_COLLECTION: "keras-unet-collection==0.1.13",
}
PEER_MODULES = {KERAS_UNET: "keras_unet", KERAS_UNET_COLLECTION: "keras_unet_collection"}
DEFAULT_PEERS_DIR = Path(__file__).resolve().parent / ".peers"


def build(contender: str, input_shape, num_classes: int, depth: int, base_filters: int):
    """Build `contender` with `depth` stages and `base_filters` filters doubling per stage.

    The peers must be importable, for example after `add_peers_to_path`.
    """
    if contender == ZOO:
        import zoo

        return zoo.build("unet", input_shape=input_shape, num_classes=num_classes,
                         depth=depth, base_filters=base_filters)
    if contender == HANDWRITTEN:
        from benchmarks.handwritten_unet import build_handwritten_unet

        return build_handwritten_unet(input_shape, num_classes, depth=depth,
                                      base_filters=base_filters)
    if contender == KERAS_UNET:
        from keras_unet.models import custom_unet

        return custom_unet(input_shape, num_classes=num_classes, activation="relu",
                           use_batch_norm=True, upsample_mode="deconv", dropout=0.0,
                           filters=base_filters, num_layers=depth, output_activation="softmax")
    if contender == KERAS_UNET_COLLECTION:
        from keras_unet_collection import models

        widths = [base_filters * 2**stage for stage in range(depth + 1)]
        return models.unet_2d(input_shape, widths, n_labels=num_classes, stack_num_down=2,
                              stack_num_up=2, activation="ReLU", output_activation="Softmax",
                              batch_norm=True, pool=True, unpool=False, backbone=None)
    raise ValueError(f"Unknown contender {contender!r}. Expected one of: {', '.join(CONTENDERS)}.")


def forward_flops(contender: str, input_shape, num_classes: int, depth: int,
                  base_filters: int) -> int:
    """Return the FLOPs of one forward pass of one image (2 x conv multiply-adds).

    The zoo's figure comes from `zoo.describe`; the others are counted the same way
    (`zoo.analysis.conv_flops`) on a copy built at the fixed `input_shape`.
    """
    import zoo
    from zoo.analysis import conv_flops

    if contender == ZOO:
        return zoo.describe("unet", input_shape=input_shape, num_classes=num_classes,
                            verbose=False, depth=depth, base_filters=base_filters).flops
    return conv_flops(build(contender, input_shape, num_classes, depth, base_filters))


def add_peers_to_path(peers_dir: Path) -> None:
    """Append `peers_dir` to `sys.path`, after the installed packages, so TF and Keras win."""
    if peers_dir.is_dir() and str(peers_dir) not in sys.path:
        sys.path.append(str(peers_dir))


def missing_peers(peers_dir: Path) -> list[str]:
    """Return the peers whose package folder is not in `peers_dir`."""
    return [name for name, module in PEER_MODULES.items() if not (peers_dir / module).is_dir()]


def install_peers(peers_dir: Path, names) -> str | None:
    """Install the pinned peers `names` into `peers_dir` with pip.

    Return pip's error output, or None on success. `--no-deps` keeps pip from installing
    TensorFlow or Keras into the folder, so the peers run on the installed ones.
    """
    requirements = [PEERS[name] for name in names]
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--target", str(peers_dir), *requirements]
    logger.info("Installing %s into %s", ", ".join(requirements), peers_dir)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        error = (result.stderr or result.stdout).strip()[-2000:]
        logger.error("pip install of %s failed with code %d: %s", ", ".join(requirements),
                     result.returncode, error)
        return error
    return None
