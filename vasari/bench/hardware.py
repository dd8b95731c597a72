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
import json
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vasari.core.fileio import atomic_open, atomic_write_text
from vasari.core.images import ImageError, is_image_file, load_image

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
    backbone: str = "efficientnet_lite2"
    feature: str = "stats"
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


# --------------------------------------------------------------------------- machine


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


# --------------------------------------------------------------------------- images


@dataclass
class BenchImages:
    """The images a benchmark runs on: paths, one label each, a train/val split."""

    source: str
    paths: list[Path]
    labels: list[str]
    splits: list[str]
    generated: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "count": len(self.paths),
            "generated": self.generated,
            "classes": dict(sorted(Counter(self.labels).items())),
            "splits": dict(sorted(Counter(self.splits).items())),
        }


def generate_images(out_dir: Path, per_class: int = 12, size: int = 320, seed: int = 0) -> Path:
    """Write small synthetic "paintings" in class folders (colour family + texture differ by class).

    Used when no real images are available, and by tests. Returns ``out_dir``.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    classes = {
        "warm": ((200, 80, 40), "ellipse"),
        "cool": ((40, 90, 200), "rectangle"),
        "green": ((60, 160, 70), "line"),
        "dark": ((40, 35, 30), "ellipse"),
    }
    for name, (base, shape) in classes.items():
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(size * rng.uniform(0.8, 1.2)), int(size * rng.uniform(0.8, 1.2))
            noise = rng.normal(0, 25, (h, w, 3))
            arr = np.clip(np.array(base, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
            img = Image.fromarray(arr, "RGB")
            draw = ImageDraw.Draw(img)
            for _ in range(6):
                x0, y0 = int(rng.uniform(0, w * 0.7)), int(rng.uniform(0, h * 0.7))
                x1, y1 = x0 + int(w * rng.uniform(0.08, 0.3)), y0 + int(h * rng.uniform(0.08, 0.3))
                colour = tuple(int(c) for c in np.clip(np.array(base) + rng.normal(0, 60, 3), 0, 255))
                getattr(draw, shape)([x0, y0, x1, y1], fill=colour) if shape != "line" else draw.line(
                    [x0, y0, x1, y1], fill=colour, width=8
                )
            img.save(folder / f"{name}_{i:03d}.jpg", quality=90)
    return out_dir


def collect_images(root: Path, seed: int = 0) -> BenchImages:
    """Images under ``root`` with their class-folder label and split.

    The label is the image's parent folder name. A path component named ``train``/``val``/
    ``test`` gives the split; other components (e.g. ``photos``) are skipped when split
    folders exist. Without split folders a deterministic 80/20 split is made per class.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such image folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise FileNotFoundError(f"{root}: no images found (expected class subfolders of .jpg/.png files)")
    rel_parts = [p.relative_to(root).parts for p in files]
    has_splits = any(part in ("train", "val") for parts in rel_parts for part in parts[:-1])
    paths, labels, splits = [], [], []
    for path, parts in zip(files, rel_parts):
        split = next((s for s in ("train", "val", "test") if s in parts[:-1]), None)
        if has_splits and split is None:
            continue
        paths.append(path)
        labels.append(path.parent.name if len(parts) > 1 else "unlabelled")
        splits.append(split or "")
    if not has_splits:
        rng = np.random.default_rng(seed)
        by_class: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            by_class.setdefault(label, []).append(i)
        for idx in by_class.values():
            order = rng.permutation(idx)
            n_val = max(1, round(len(order) * 0.2)) if len(order) > 1 else 0
            for j, i in enumerate(order):
                splits[i] = "val" if j < n_val else "train"
    splits = ["val" if s == "test" else s for s in splits]
    return BenchImages(source=str(root), paths=paths, labels=labels, splits=splits)


def subsample(images: BenchImages, n: int | None, seed: int = 0) -> BenchImages:
    """A class- and split-stratified subset of ``n`` images (all when ``n`` is None or larger)."""
    if n is None or n >= len(images.paths):
        return images
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(images.labels, images.splits)):
        strata.setdefault(key, []).append(i)
    queues = [list(rng.permutation(idx)) for _, idx in sorted(strata.items())]
    chosen: list[int] = []
    while len(chosen) < n and any(queues):  # round-robin over strata keeps every class in both splits
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(int(q.pop()))
    chosen.sort()
    return BenchImages(
        source=images.source,
        paths=[images.paths[i] for i in chosen],
        labels=[images.labels[i] for i in chosen],
        splits=[images.splits[i] for i in chosen],
        generated=images.generated,
    )


def default_images(work_dir: Path) -> BenchImages:
    """The shared Louvre images (train + val) when present, else generated ones in ``work_dir``."""
    from vasari.core.paths import shared_data_dir

    data = shared_data_dir()
    if data is not None and (data / "louvre" / "train").is_dir():
        return collect_images(data / "louvre")
    images = collect_images(generate_images(work_dir / "generated"))
    images.generated = True
    images.source = "generated (no ../shared/data/louvre)"
    return images


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


def make_embedder(backbone: str, feature: str, engine: str, device: str):
    """The project's ``Embedder`` for one engine/device (imported lazily: torch/onnxruntime are heavy)."""
    from vasari.features.embedder import Embedder

    return Embedder(backbone=backbone, feature=feature, engine=engine, device=device)


def bench_engine(
    engine: str,
    device: str,
    name: str,
    images: BenchImages,
    decoded: list,
    config: BenchConfig,
    embedder_factory: Callable[..., Any] = make_embedder,
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
    embedder_factory: Callable[..., Any] = make_embedder,
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


# --------------------------------------------------------------------------- output


def write_json(report: dict[str, Any], path: Path) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
    return Path(path)


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """A bar-chart PNG: throughput (batch 1/32), latency (p50/p99) and pipeline time per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = [
        (
            "embedding throughput (img/s, higher is better)",
            [("batch 1", "throughput", "batch_1"), ("batch 32", "throughput", "batch_32")],
        ),
        ("single-image latency (ms, lower is better)", [("p50", "latency_ms", "p50"), ("p99", "latency_ms", "p99")]),
        ("pipeline (s, lower is better)", [("embed", "pipeline", "embed_s"), ("total", "pipeline", "total_s")]),
    ]
    for ax, (title, series) in zip(axes, panels):
        width = 0.8 / len(series)
        for k, (label, group, key) in enumerate(series):
            values = [
                float(r.get(group, {}).get(key) or 0.0) if r["available"] and not r.get("error") else 0.0 for r in rows
            ]
            bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
            ax.bar_label(
                bars, labels=[(f"{v:.0f}" if v >= 100 else f"{v:.3g}") if v else "" for v in values], fontsize=7
            )
        for i, r in enumerate(rows):
            if not r["available"] or r.get("error"):
                ax.text(
                    i,
                    0,
                    "not available" if not r["available"] else "error",
                    ha="center",
                    va="bottom",
                    rotation=90,
                    fontsize=8,
                    color="grey",
                )
        ax.set_xticks(x, names, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    m = report["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "no GPU"
    fig.suptitle(
        f"vasari bench ({report['mode']}, {report['images']['count']} images) — {m['cpu']}, "
        f"{m['cores_usable']} cores, {gpu}, load average {m.get('load_average', '?')}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, dpi=110, format="png")
    plt.close(fig)
    return path


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def report_table(report: dict[str, Any]):
    """A rich table of the report, one row per engine (unavailable engines say why in the caption)."""
    from rich.table import Table

    m = report["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "no GPU"
    table = Table(
        title=f"vasari bench ({report['mode']}, {report['images']['count']} images)",
        caption=f"{m['cpu']}, {m['cores_usable']} cores, {gpu}; load average {m.get('load_average', '?')}",
    )
    for col in (
        "engine",
        "b1 img/s",
        "b32 img/s",
        "p50 ms",
        "p99 ms",
        "heads s",
        "e2e s",
        "e2e img/s",
        "vs K80",
        "top-1",
    ):
        table.add_column(col, justify="left" if col == "engine" else "right", no_wrap=col == "engine")
    notes = []
    for r in report["results"]:
        if not r["available"]:
            table.add_row(r["name"], "[dim]not available[/dim]", *["[dim]—[/dim]"] * 8)
            notes.append(f"{r['name']}: {r['reason']}")
            continue
        if r.get("error"):
            table.add_row(r["name"], "[red]error[/red]", *["—"] * 8)
            notes.append(f"{r['name']}: {r['error']}")
            continue
        p = r["pipeline"]
        top1 = next(iter(p.get("metrics", {}).values()), None)
        table.add_row(
            r["name"],
            _fmt(r["throughput"].get("batch_1")),
            _fmt(r["throughput"].get("batch_32")),
            _fmt(r["latency_ms"].get("p50"), ".0f"),
            _fmt(r["latency_ms"].get("p99"), ".0f"),
            _fmt(r["head_training_s"], ".2f"),
            _fmt(p.get("total_s"), ".1f"),
            _fmt(p.get("images_per_s"), ".2f"),
            _fmt(p.get("vs_seed_study"), ".1f") + "x",
            _fmt(top1, ".3f"),
        )
    if notes:
        table.caption += "\n" + "\n".join(notes)
    return table


def save_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``bench.json`` and ``bench.png`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    return {"json": write_json(report, out_dir / "bench.json"), "png": plot_report(report, out_dir / "bench.png")}


def comparison_markdown(report: dict[str, Any]) -> str:
    """The benchmarks/README.md table for one report: every engine against the seed study's K80."""
    seed = report.get("seed_study", SEED_STUDY)
    m = report["machine"]
    lines = [
        "| device / engine | embed img/s (batch 1 / 32) | latency p50 / p99 ms | heads s | end-to-end s "
        f"({report['images']['count']} images) | end-to-end img/s | vs seed K80 ({seed['images_per_s']:.2f} img/s) |",
        "|---|---|---|---|---|---|---|",
        f"| seed study: Tesla K80, fine-tuned CNN | — | — | — | {seed['seconds']:,.0f} ({seed['images']:,} images) "
        f"| {seed['images_per_s']:.3f} | 1.0x |",
    ]
    for r in report["results"]:
        where = (
            f"{m['cpu']} ({m['cores_usable']} cores)"
            if r["device"] == "cpu"
            else (m["gpu"]["name"] if m.get("gpu") else "CUDA GPU")
        )
        label = f"{where}, {r['name']}"
        if not r["available"] or r.get("error"):
            why = r.get("reason") or r.get("error")
            lines.append(f"| {label} | {why} | | | | | |")
            continue
        p = r["pipeline"]
        lines.append(
            f"| {label} | {r['throughput']['batch_1']:.1f} / {r['throughput']['batch_32']:.1f} "
            f"| {r['latency_ms']['p50']:.0f} / {r['latency_ms']['p99']:.0f} | {r['head_training_s']:.2f} "
            f"| {p['total_s']:.1f} | {p['images_per_s']:.2f} | {p['vs_seed_study']:.1f}x |"
        )
    return "\n".join(lines)
