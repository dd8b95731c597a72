"""The machine a benchmark ran on: CPU model, cores, RAM, GPU and library versions, recorded in
every report so that tables from different machines can be compared; and why CUDA is missing
when it is."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to ``platform.processor()``)."""
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def ram_gib() -> float | None:
    """Total RAM in GiB from /proc/meminfo (None when unreadable)."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on: CPU, cores, RAM, GPU and library versions."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": ram_gib(),
        "python": platform.python_version(),
        # other work on the machine skews every number: record how busy it was
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    packages = {
        "numpy": "numpy",
        "torch": "torch",
        "torchvision": "torchvision",
        "onnxruntime": "onnxruntime",
        "timm": "timm",
        "onnx": "onnx",
        "scikit-learn": "scikit-learn",
        "pillow": "pillow",
    }
    info["versions"] = {name: _version(dist) for name, dist in packages.items()}
    info["gpu"] = None
    info["cuda_available"] = False
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_available"] = True
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = {
                "name": torch.cuda.get_device_name(0),
                "count": torch.cuda.device_count(),
                "memory_gib": round(props.total_memory / 1024**3, 1),
                "capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda,
                "bf16": bool(torch.cuda.is_bf16_supported()),
            }
    except Exception as exc:  # a broken torch install should not stop the CPU rows
        info["torch_error"] = str(exc)
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
    except Exception:
        pass
    return info


def cuda_unavailable_reason() -> str | None:
    """None when torch can use CUDA here, else the plain reason it cannot."""
    try:
        import torch
    except Exception as exc:
        return f"torch not importable ({exc})"
    if not torch.cuda.is_available():
        return "not available: no CUDA device on this machine (torch.cuda.is_available() is False)"
    return None
