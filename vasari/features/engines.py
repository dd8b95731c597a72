"""The two inference engines behind ``Embedder``: onnxruntime over the exported graph (the
default, cached once per spec) and torch (the fallback, and the CUDA path when onnxruntime has
no CUDA provider). Both take ``(N, H, W, 3)`` uint8 crops and return ``(N, dim)`` float32."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask on Linux), the default thread count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- engines


class OnnxEngine:
    """onnxruntime over the exported graph: ``(N, H, W, 3)`` uint8 -> ``(N, dim)`` float32.

    On CPU the batch is cut into micro-batches (``micro_batch``, default 1: small batches keep
    the activations in cache; measured on the 2-core EPYC here, batch 1 costs ~12.5 ms of CPU
    per picture, batch 32 ~20 ms) that run on ``streams`` concurrent single-threaded calls of
    one session (no intra-op barriers: each core runs its own picture). ``streams=1`` with
    ``threads>1`` uses onnxruntime's intra-op thread pool instead. Thread spinning is off
    by default: on a shared machine spinning threads burn the CPU that decoding needs.
    """

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 streams: int | None = None, micro_batch: int | None = None, spinning: bool = False):
        import onnxruntime as ort

        threads = threads or usable_cpus()
        use_cuda = device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers()
        if streams is None:
            streams = 1 if use_cuda else threads
        streams = max(1, min(int(streams), threads))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = max(1, threads // streams)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.input_name = self.session.get_inputs()[0].name
        self.threads = threads
        self.streams = streams if self.device == "cpu" else 1
        self.micro_batch = int(micro_batch or (1 if self.device == "cpu" else 64))
        self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="vasari-ort") if self.streams > 1 else None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mb = self.micro_batch
        if len(x) <= mb:
            return self._run(x)
        parts = [x[i:i + mb] for i in range(0, len(x), mb)]
        outs = list(self._pool.map(self._run, parts)) if self._pool else [self._run(p) for p in parts]
        return np.concatenate(outs, axis=0)

    def describe(self) -> str:
        if self.device != "cpu":
            return f"onnxruntime {self.providers[0]}"
        return (f"onnxruntime CPU, {self.streams} stream(s) x {self.threads // self.streams} thread(s), "
                f"micro-batch {self.micro_batch}")


class TorchEngine:
    """torch module (``inference_module``: uint8 NHWC in) on cpu or cuda."""

    name = "torch"

    def __init__(self, net: Any, device: str | None = None, threads: int | None = None):
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.net = net.to(device).eval()
        self.threads = threads
        if threads and device == "cpu":
            torch.set_num_threads(threads)

    def describe(self) -> str:
        return f"torch {self.device}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.net(torch.from_numpy(x).to(self.device, non_blocking=True))
        return out.float().cpu().numpy()


def has_nvidia() -> bool:
    """Whether an NVIDIA driver is installed (without importing torch or onnxruntime)."""
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None
