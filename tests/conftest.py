"""Shared test setup: quiet TensorFlow logs, fixed seeds and the location of ../shared/data."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UNET_ZOO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Give every test the same seeds and the float32 policy, whatever ran before it."""
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def shared_dataset(name: str) -> Path:
    """Return ../shared/data/<name>, or skip the test with the reason when it is absent."""
    path = SHARED_DATA / name
    if not (path / "images").is_dir():
        pytest.skip(f"real dataset not found at {path}; set UNET_ZOO_SHARED_DATA to its parent folder")
    return path
