"""Describe the machine a benchmark runs on, from `/proc/cpuinfo`, `/proc/meminfo` and `os`."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The `/proc/cpuinfo` flags that decide how fast float32, bfloat16 and float16 math can run.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile",
                "amx_bf16", "amx_fp16")
# Any of these gives the CPU native bfloat16 dot products that oneDNN can use.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_fields(cpuinfo: str) -> dict:
    """Return the model name, family, model number, clock and vector flags of the first CPU."""
    info = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and "cpu_model" not in info:
            info["cpu_model"] = value
        elif key == "cpu family" and "cpu_family" not in info:
            info["cpu_family"] = value
        elif key == "model" and "cpu_model_number" not in info:
            info["cpu_model_number"] = value
        elif key == "cpu MHz" and "cpu_mhz" not in info:
            info["cpu_mhz"] = float(value)
        elif key == "flags" and "vector_flags" not in info:
            flags = set(value.split())
            info["vector_flags"] = [flag for flag in VECTOR_FLAGS if flag in flags]
            info["hypervisor"] = "hypervisor" in flags
    return info


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict:
    """Return the CPU model and flags, core counts, memory and load average of this machine."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "logical_cpus": os.cpu_count(), "load_average_start": os.getloadavg()}
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    info.update(_cpu_fields(_read("/proc/cpuinfo")))
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    return info


def has_bfloat16_instructions(machine: dict) -> bool | None:
    """Return whether the CPU flags list a bfloat16 dot-product instruction, or None if unknown."""
    if "vector_flags" not in machine:
        return None
    return any(flag in machine["vector_flags"] for flag in BFLOAT16_FLAGS)
