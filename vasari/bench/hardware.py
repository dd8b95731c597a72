"""Hardware benchmark: the seed study's CPU-vs-GPU comparison, measured the same way on every machine.

The artist study behind Vasari compared training time on a K80, a K40, a cloud CPU and a
laptop (7,711 s on the K80 for 3,444 images). ``run_bench`` measures, on the same images,
for every engine the machine has — onnxruntime on CPU, torch on CPU, torch on CUDA when
``torch.cuda.is_available()`` —

* embedding throughput (img/s) at batch 1 and batch 32 (decoded images in memory: network
  input preparation + inference),
* single-image latency p50/p99 (one preprocessed image, repeated),
* head training time (``vasari.heads.train.train_heads`` on the features this engine produced),
* the end-to-end pipeline: read + decode + embed every image (``Embedder.embed_paths``,
  decoding overlapped with inference), train the heads, evaluate on val; each stage timed.

An engine the machine lacks is reported as ``available: false`` with the reason; numbers
are never invented for it. The report records the machine (CPU model, cores, RAM, GPU,
library versions) so that tables from different machines can be compared.
"""

from __future__ import annotations

import datetime as _dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vasari.bench.images import BenchImages, collect_images, default_images, subsample
from vasari.bench.machine import cuda_unavailable_reason, machine_info
from vasari.core.images import ImageError, load_image
from vasari.features.defaults import DEFAULT_BACKBONE, DEFAULT_FEATURE
from vasari.features.embedder import Embedder

#: The seed study's measurement: 3,444 images trained end to end in 7,711 s on a K80.
SEED_STUDY = {
    "device": "NVIDIA Tesla K80 (seed study)",
    "images": 3444,
    "seconds": 7711.0,
    "images_per_s": 3444 / 7711.0,
    "what": "end-to-end training of the seed study's CNN (fine-tuned, several epochs)",
}

#: (engine, device, display name) — the rows every report has, in this order.
ENGINE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("onnx", "cpu", "onnxruntime CPU"),
    ("torch", "cpu", "torch CPU"),
    ("torch", "cuda", "torch CUDA"),
)


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how much. ``quick`` is CI-sized (well under two minutes on 2 cores)."""

    devices: tuple[str, ...] = ("cpu", "cuda")
    images: Path | None = None  # folder of images (class subfolders = labels); None -> shared Louvre or generated
    quick: bool = False
    backbone: str = DEFAULT_BACKBONE
    feature: str = DEFAULT_FEATURE
    max_images: int | None = None  # cap for the pipeline images (None: quick 32, full all)
    throughput_images: int | None = None  # decoded images for the batch-32 throughput (None: quick 32, full 256)
    latency_runs: int | None = None  # single-image runs for p50/p99 and batch-1 img/s (None: quick 10, full 100)
    warmup: int = 2
    seed: int = 0

    @property
    def n_pipeline(self) -> int | None:
        return self.max_images if self.max_images is not None else (32 if self.quick else None)

    @property
    def n_throughput(self) -> int:
        return self.throughput_images if self.throughput_images is not None else (32 if self.quick else 256)

    @property
    def n_latency(self) -> int:
        return self.latency_runs if self.latency_runs is not None else (10 if self.quick else 100)



# --------------------------------------------------------------------------- measurements


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def measure_latency(
    embed: Callable[[list], np.ndarray], images: Sequence, runs: int, device: str, warmup: int = 2
) -> dict:
    """Single-image latency (ms) over ``runs`` calls on distinct images (cycled): p50, p99, mean."""
    for i in range(warmup):
        embed([images[i % len(images)]])
    times = []
    for i in range(runs):
        image = images[i % len(images)]
        _sync(device)
        start = time.perf_counter()
        embed([image])
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"p50": percentile(times, 50), "p99": percentile(times, 99), "mean": statistics.fmean(times), "runs": runs}


def _train_and_evaluate(features: np.ndarray, images: BenchImages) -> dict[str, Any]:
    """Train heads on the train split of ``features`` and score val; times for both stages."""
    from vasari.heads.train import train_heads

    split = np.asarray(images.splits)
    labels = np.asarray(images.labels, dtype=object)
    ok = np.isfinite(features).all(axis=1)  # images that failed to decode have NaN rows
    tr, va = (split == "train") & ok, (split == "val") & ok
    t_train, heads = _timed(
        lambda: train_heads(
            features[tr],
            {"type": list(labels[tr])},
            [None] * int(tr.sum()),
            features[va],
            {"type": list(labels[va])},
            [None] * int(va.sum()),
        )
    )
    t_eval, metrics = _timed(lambda: evaluate_type_heads(heads, features[va], list(labels[va])))
    return {
        "train_s": t_train,
        "evaluate_s": t_eval,
        "metrics": metrics,
        "n_train": int(tr.sum()),
        "n_val": int(va.sum()),
    }


def evaluate_type_heads(heads, features: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Top-1 accuracy of each head on ``features`` (the pipeline's "evaluate" stage)."""
    proba = heads.predict_proba(features)
    out: dict[str, Any] = {}
    for task, p in proba.items():
        classes = heads.classifiers[task].classes
        predicted = [classes[i] for i in p.argmax(axis=1)]
        out[f"{task}_top1"] = float(np.mean([a == b for a, b in zip(predicted, labels)]))
    return out


@dataclass
class EngineResult:
    """One row of the report: an engine on a device, or why it could not run."""

    name: str
    engine: str
    device: str
    available: bool
    reason: str | None = None
    load_s: float | None = None
    throughput: dict[str, float] = field(default_factory=dict)  # "batch_1", "batch_32" -> img/s
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p99, mean, runs
    head_training_s: float | None = None
    pipeline: dict[str, Any] = field(
        default_factory=dict
    )  # load_s, embed_s (incl. decode), train_s, evaluate_s, total_s, images_per_s, metrics
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_engine(
    engine: str,
    device: str,
    name: str,
    images: BenchImages,
    decoded: list,
    config: BenchConfig,
    embedder_factory: Callable[..., Any] = Embedder,
) -> EngineResult:
    """Measure one engine on one device; a failure becomes an error in its row, not a crash.

    * ``load_s``: building the embedder (ONNX session / torch module) plus one warm-up batch
      of 32 (first calls pay for kernel selection and memory allocation);
    * batch 1: ``latency_runs`` single-image calls on distinct decoded images (cycled),
      after two warm-up calls: p50/p99 latency, and throughput = 1000 / mean latency;
    * batch 32: the decoded images (``throughput_images`` of them) in batches of 32:
      network input preparation + inference, no file reading;
    * pipeline: ``Embedder.embed_paths`` over every image (read + decode in its thread pool,
      overlapped with inference, as ``vasari embed``/``train`` run it), then ``train_heads``
      on the train split and top-1 on the val split. total = load + embed + train + evaluate.
    """
    result = EngineResult(name=name, engine=engine, device=device, available=True)
    try:

        def load():
            embedder = embedder_factory(config.backbone, config.feature, engine, device)
            embedder.embed_images(decoded[:32])
            _sync(device)
            return embedder

        result.load_s, embedder = _timed(load)
        embed = embedder.embed_images
        result.latency_ms = measure_latency(embed, decoded, config.n_latency, device, config.warmup)
        result.throughput["batch_1"] = 1000.0 / result.latency_ms["mean"]

        def embed_decoded() -> None:
            for i in range(0, len(decoded), 32):
                embed(decoded[i : i + 32])
            _sync(device)

        result.throughput["batch_32"] = len(decoded) / _timed(embed_decoded)[0]

        def embed_files():
            out = embedder.embed_paths([str(p) for p in images.paths], batch_size=32, progress=False)
            _sync(device)
            return out

        embed_s, embedded = _timed(embed_files)
        stages = _train_and_evaluate(embedded.features, images)
        result.head_training_s = stages["train_s"]
        n = len(images.paths)
        total = result.load_s + embed_s + stages["train_s"] + stages["evaluate_s"]
        result.pipeline = {
            "images": n,
            "failed_images": len(embedded.errors),
            "load_s": result.load_s,
            "embed_s": embed_s,
            "embed_images_per_s": n / embed_s,
            "train_s": stages["train_s"],
            "evaluate_s": stages["evaluate_s"],
            "total_s": total,
            "images_per_s": n / total,
            "vs_seed_study": (n / total) / SEED_STUDY["images_per_s"],
            "n_train": stages["n_train"],
            "n_val": stages["n_val"],
            "metrics": stages["metrics"],
        }
    except Exception as exc:  # keep the other rows; say what broke
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def decode_images(paths: Sequence[Path], min_side: int = 292) -> tuple[float, list, list[int]]:
    """Decode every path (timed). Returns (seconds, images, indices of images that decoded)."""
    start = time.perf_counter()
    decoded, kept = [], []
    for i, p in enumerate(paths):
        try:
            decoded.append(load_image(p, min_side=min_side))
            kept.append(i)
        except ImageError:
            continue
    return time.perf_counter() - start, decoded, kept


def _preload() -> None:
    """Import the training stack before timing (a first import is not head-training time)."""
    import scipy.optimize  # noqa: F401  (temperature scaling)
    import sklearn.linear_model  # noqa: F401

    from vasari.heads.train import HeadConfig, train_heads

    # one tiny fit: sklearn/scipy set up thread pools and lazy imports on their first call
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 4)).astype(np.float32)
    train_heads(
        X,
        {"type": ["a", "b"] * 4},
        None,
        X,
        {"type": ["a", "b"] * 4},
        None,
        config=HeadConfig(novelty=False, year=False),
    )


def run_bench(
    config: BenchConfig = BenchConfig(),
    progress: Callable[[str], None] | None = None,
    embedder_factory: Callable[..., Any] = Embedder,
) -> dict[str, Any]:
    """Run the benchmark and return the JSON-ready report (see module docstring)."""
    say = progress or (lambda msg: None)
    started = time.perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="vasari-bench-") as tmp:
        if config.images is not None:
            images = collect_images(config.images, seed=config.seed)
        else:
            images = default_images(Path(tmp))
        images = subsample(images, config.n_pipeline, seed=config.seed)
        sample = subsample(images, config.n_throughput, seed=config.seed + 1)
        say(f"{len(images.paths)} images from {images.source}; decoding {len(sample.paths)} for throughput and latency")
        decode_s, decoded, _ = decode_images(sample.paths)
        if not decoded:
            raise ValueError(f"{images.source}: none of the images could be decoded")
        if len(set(images.splits)) < 2 or len(set(images.labels)) < 2:
            raise ValueError(f"{images.source}: need at least two classes and both train and val images to train heads")

        _preload()
        rows: list[EngineResult] = []
        for engine, device, name in ENGINE_ROWS:
            if device not in config.devices:
                continue
            if device == "cuda" and (reason := cuda_unavailable_reason()):
                rows.append(EngineResult(name=name, engine=engine, device=device, available=False, reason=reason))
                say(f"{name}: {reason}")
                continue
            say(f"{name}: measuring")
            rows.append(bench_engine(engine, device, name, images, decoded, config, embedder_factory))

    report = {
        "vasari_version": _vasari_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if config.quick else "full",
        "config": {
            "devices": list(config.devices),
            "backbone": config.backbone,
            "feature": config.feature,
            "pipeline_images": len(images.paths),
            "latency_runs": config.n_latency,
            "throughput_images": len(decoded),
            "decode_ms_per_image": 1000.0 * decode_s / len(decoded),  # one thread, reduced-size JPEG decoding
        },
        "machine": machine,
        "images": images.summary(),
        "seed_study": SEED_STUDY,
        "results": [r.to_dict() for r in rows],
    }
    report["duration_s"] = time.perf_counter() - started
    if hasattr(os, "getloadavg"):
        machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return report


def _vasari_version() -> str:
    from vasari import __version__

    return __version__
