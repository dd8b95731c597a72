"""Load benchmark of the web service: N concurrent clients posting 768 px JPEGs.

Starts ``uvicorn`` (one worker) serving the default bundle (or ``--model``), waits until
``/readyz`` answers, then runs ``--clients`` threads that POST JPEGs to
``/api/v1/predict`` back to back for ``--duration`` seconds (after a short warm-up that is
not counted). Records p50/p90/p99 latency, throughput, errors, the server's resident memory
(peak and end, psutil when installed, else /proc) and the load average of the machine, prints a
table and writes ``benchmarks/results/load.json``.

    python benchmarks/load.py                       # default bundle, 4 clients, 60 s
    python benchmarks/load.py --model runs/model --duration 30 --max-batch 1
    python benchmarks/load.py --url http://127.0.0.1:8000   # an already running server
    python benchmarks/load.py --saturation --duration 30     # 8 and 32 clients vs `vasari embed`
                                                            # (the CLI, before and after all runs) and
                                                            # vs the same embedding in-process (before
                                                            # and after each run), then 128 clients
                                                            # with a 3 s deadline (issue 11's goals)
    python benchmarks/load.py --saturation --baseline 21c33c9   # the same on this tree and on 21c33c9,
                                                                # alternating

Goals (issue 4): p50 <= 80 ms, p99 <= 250 ms, >= 25 req/s, 0 errors, RSS <= 600 MB on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from _provenance import write_result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOALS = {"p50_ms": 80.0, "p99_ms": 250.0, "throughput_rps": 25.0, "errors": 0, "rss_mb_peak": 600.0}


# --------------------------------------------------------------------------- inputs


def _shared_images(limit: int) -> list[Path]:
    from vasari.core.paths import shared_data_dir

    data = shared_data_dir()
    if data is None:
        return []
    found: list[Path] = []
    for sub in ("wga/images", "aic", "louvre/val", "louvre/train"):
        folder = data / sub
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    random.Random(0).shuffle(found)
    return found[:limit]


def _generated(index: int, size: int) -> Image.Image:
    """A painting-like picture: smooth colour fields, a horizon, blobs and noise."""
    rng = np.random.default_rng(index)
    h, w = int(size * 0.75), size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = base[c] + 40 * np.sin(x / rng.uniform(30, 120) + c) + 30 * np.cos(y / rng.uniform(20, 90))
    horizon = int(h * rng.uniform(0.3, 0.7))
    img[horizon:] *= rng.uniform(0.5, 0.9)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(20, 120)
        mask = ((y - cy) ** 2 + (x - cx) ** 2) < r * r
        img[mask] = rng.uniform(0, 255, size=3)
    img += rng.normal(0, 8, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_jpegs(count: int = 24, size: int = 768, quality: int = 90) -> tuple[list[bytes], str]:
    """``count`` JPEGs with a ``size`` px long side: real paintings when shared data exists."""
    from vasari.core.images import load_image

    out: list[bytes] = []
    for path in _shared_images(count * 2):
        try:
            img = load_image(path)
        except Exception:  # noqa: BLE001 - skip unreadable files
            continue
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
        if len(out) == count:
            return out, "shared data, resized"
    source = "shared data, resized + generated" if out else "generated"
    while len(out) < count:
        buf = io.BytesIO()
        _generated(len(out), size).save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out, source


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    try:
        import psutil

        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - process gone
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def start_server(model: str | None, port: int, window_ms: float, max_batch: int, workers: int, log: Path,
                 shed_wait_s: float = 1.0, tree: Path = REPO) -> subprocess.Popen:
    """``vasari serve`` in a subprocess: the CLI users run, with its timeouts and shedding;
    ``tree``: the folder its ``vasari`` package is imported from (``--baseline``: an export)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable, "-c", "from vasari.cli import app; app()", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--batch-window-ms", str(window_ms), "--max-batch", str(max_batch),
        "--inference-workers", str(workers), "--shed-wait-s", str(shed_wait_s), "--max-connections", "4096",
        "--log-level", "warning",
    ] + (["--model", str(Path(model).resolve())] if model else [])
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    return subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=str(tree))


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before it was ready")
        try:
            r = httpx.get(f"{url}/readyz", timeout=2.0)
            if r.status_code == 200:
                return
            if r.status_code == 503 and "Error" in r.text:
                raise RuntimeError(f"server failed to load the model: {r.text}")
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"server not ready after {timeout:.0f} s")


# --------------------------------------------------------------------------- load


@dataclass
class ClientStats:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    server: dict[str, list[float]] = field(default_factory=dict)  # Server-Timing durations (ms)


def parse_server_timing(header: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        if rest.startswith("dur="):
            try:
                out[name] = float(rest[4:])
            except ValueError:
                pass
        elif name == "batch" and 'desc="' in rest:
            try:
                out["batch"] = float(rest.split('desc="')[1].split()[0])
            except (IndexError, ValueError):
                pass
    return out


def client_loop(url: str, jpegs: list[bytes], seed: int, start_at: float, stop_at: float, stats: ClientStats,
                deadline_s: float = 30.0) -> None:
    """One client posting back to back; gives up on a request after ``deadline_s`` (counted
    as ``ReadTimeout``); after a 503 (shed) waits its Retry-After, at most 1 s."""
    rng = random.Random(seed)
    with httpx.Client(timeout=deadline_s) as client:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            data = jpegs[rng.randrange(len(jpegs))]
            t0 = time.perf_counter()
            timing: dict[str, float] = {}
            try:
                r = client.post(f"{url}/api/v1/predict", files={"file": ("painting.jpg", data, "image/jpeg")})
                ok = r.status_code == 200 and "predictions" in r.json()
                key = None if ok else f"http_{r.status_code}"
                timing = parse_server_timing(r.headers.get("server-timing"))
                if r.status_code == 503:
                    time.sleep(min(1.0, float(r.headers.get("retry-after") or 1)))
            except Exception as exc:  # noqa: BLE001 - counted
                key = type(exc).__name__
            t1 = time.perf_counter()
            if t0 < start_at:  # warm-up, not counted
                continue
            if t1 > stop_at:
                return
            if key is None:
                stats.latencies.append(t1 - t0)
                for name, value in timing.items():
                    stats.server.setdefault(name, []).append(value)
            else:
                stats.errors[key] = stats.errors.get(key, 0) + 1


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_load(url: str, jpegs: list[bytes], clients: int, duration: float, warmup: float, pid: int | None,
             deadline_s: float = 30.0) -> dict:
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration
    stats = [ClientStats() for _ in range(clients)]
    threads = [
        threading.Thread(target=client_loop, args=(url, jpegs, i, start_at, stop_at, stats[i], deadline_s), daemon=True)
        for i in range(clients)
    ]
    rss_samples: list[float] = []
    load_samples: list[float] = []
    cpu: dict[str, float | None] = {"start": None, "stop": None, "clients_start": None, "clients_stop": None}
    done = threading.Event()

    def sampler() -> None:
        while not done.wait(0.05 if cpu["start"] is None else 0.5):
            if time.perf_counter() < start_at:
                continue
            if cpu["clients_start"] is None:
                cpu["clients_start"] = time.process_time()
                cpu["start"] = cpu_seconds(pid) if pid is not None else None
            if time.perf_counter() >= stop_at:
                if cpu["clients_stop"] is None:
                    cpu["clients_stop"] = time.process_time()
                    cpu["stop"] = cpu_seconds(pid) if pid is not None else None
                continue
            if pid is not None:
                value = rss_mb(pid)
                if value is not None:
                    rss_samples.append(value)
            load_samples.append(os.getloadavg()[0])

    sampler_thread = threading.Thread(target=sampler, daemon=True)
    sampler_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    sampler_thread.join()
    if cpu["clients_stop"] is None and cpu["clients_start"] is not None:
        cpu["clients_stop"] = time.process_time()
        cpu["stop"] = cpu_seconds(pid) if pid is not None else None
    latencies = [x for s in stats for x in s.latencies]
    errors: dict[str, int] = {}
    for s in stats:
        for k, v in s.errors.items():
            errors[k] = errors.get(k, 0) + v
    ms = [x * 1000 for x in latencies]
    server: dict[str, list[float]] = {}
    for s in stats:
        for k, v in s.server.items():
            server.setdefault(k, []).extend(v)
    breakdown = {f"server_{k}_ms_p50": percentile(v, 50) for k, v in server.items() if k != "batch"}
    breakdown.update({f"server_{k}_ms_mean": statistics.fmean(v) for k, v in server.items() if k != "batch"})
    if server.get("batch"):
        breakdown["images_per_forward_seen"] = statistics.fmean(server["batch"])
    shed = errors.get("http_503", 0)
    timeouts = sum(v for k, v in errors.items() if "Timeout" in k)
    return {
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "shed_503": shed,
        "client_timeouts": timeouts,
        "client_timeout_rate": timeouts / max(1, len(latencies) + sum(errors.values())),
        "error_kinds": errors,
        "throughput_rps": len(latencies) / duration,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "rss_mb_peak": max(rss_samples) if rss_samples else None,
        "rss_mb_end": rss_samples[-1] if rss_samples else None,
        "loadavg_1m_during": statistics.fmean(load_samples) if load_samples else None,
        # CPU the server spent per answered request: less sensitive to other processes than
        # wall-clock latency (a 2-core machine to itself serves at most 2000 / this req/s)
        "server_cpu_ms_per_request": (
            (cpu["stop"] - cpu["start"]) * 1000 / len(latencies)
            if cpu["start"] is not None and cpu["stop"] is not None and latencies else None
        ),
        # CPU of this process (the clients) per answered request: on the same machine the
        # load generator takes its share of the cores the server could have used
        "client_cpu_ms_per_request": (
            (cpu["clients_stop"] - cpu["clients_start"]) * 1000 / len(latencies)
            if cpu["clients_start"] is not None and cpu["clients_stop"] is not None and latencies else None
        ),
        **breakdown,
    }


def print_table(result: dict) -> None:
    r = result["results"]
    rows = [
        ("requests (ok / errors)", f"{r['ok']} / {r['errors']}", ""),
        ("throughput", f"{r['throughput_rps']:.1f} req/s", f">= {GOALS['throughput_rps']:.0f}"),
        ("latency p50", f"{r['p50_ms']:.0f} ms", f"<= {GOALS['p50_ms']:.0f}"),
        ("latency p90", f"{r['p90_ms']:.0f} ms", ""),
        ("latency p99", f"{r['p99_ms']:.0f} ms", f"<= {GOALS['p99_ms']:.0f}"),
        ("latency max", f"{r['max_ms']:.0f} ms", ""),
        ("server RSS peak / end", f"{r['rss_mb_peak'] or float('nan'):.0f} / {r['rss_mb_end'] or float('nan'):.0f} MB", f"<= {GOALS['rss_mb_peak']:.0f}"),
        ("images per forward pass", f"{result['server'].get('avg_batch', float('nan')):.2f}", ""),
        ("server CPU per request", f"{r['server_cpu_ms_per_request'] or float('nan'):.1f} ms", ""),
        ("server p50: decode / queue / forward",
         f"{r.get('server_decode_ms_p50', float('nan')):.0f} / {r.get('server_queue_ms_p50', float('nan')):.0f} / "
         f"{r.get('server_infer_ms_p50', float('nan')):.0f} ms", ""),
        ("load average (before / during / after)",
         f"{result['machine']['loadavg_before']:.2f} / {r['loadavg_1m_during'] or float('nan'):.2f} / {result['machine']['loadavg_after']:.2f}", ""),
    ]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"vasari serve under load: {result['config']['clients']} clients, {result['config']['duration_s']:.0f} s, "
                            f"{result['config']['image_px']} px JPEGs ({result['config']['images']})")
        for col in ("measure", "value", "goal"):
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        table.add_row("all goals met", "yes" if result["goals_met"] else "no", "")
        Console().print(table)
    except ImportError:  # pragma: no cover
        for row in rows:
            print(" | ".join(row))


def _finite(obj):
    """NaN/inf -> None so the file is strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


SATURATION_GOALS = {"throughput_vs_vasari_embed": 0.8, "p99_s": 1.5, "deadline_timeout_rate": 0.05, "deadline_p99_s": 3.0}


class EmbedBaseline:
    """What ``vasari embed`` does (decode files + forward passes of 32) with the served
    bundle's backbone, in this process: the ceiling for the service. Measured again around
    every saturation run, so that a machine shared with other work is compared with itself
    (the ratio uses the mean of the measurements before and after the run)."""

    def __init__(self, model: str | None, jpegs: list[bytes]):
        from vasari.inference.predictor import Predictor

        self.embedder = Predictor.load(Path(model) if model else None).embedder
        self._tmp = tempfile.TemporaryDirectory(prefix="vasari-load-embed-")
        self.paths = []
        for i, data in enumerate(jpegs * 3):
            path = Path(self._tmp.name) / f"{i}.jpg"
            path.write_bytes(data)
            self.paths.append(path)
        self.embedder.embed_paths(self.paths[:8], progress=False)  # warm-up

    def measure(self, seconds: float) -> dict:
        """Images per second and CPU milliseconds per image (this process, all threads)."""
        done, t0, cpu0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            self.embedder.embed_paths(self.paths, progress=False)
            done += len(self.paths)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"img_per_s": done / wall, "cpu_ms_per_img": cpu * 1000 / done, "loadavg_1m": os.getloadavg()[0]}

    def close(self) -> None:
        self._tmp.cleanup()


def cli_embed_rate(model: str | None, jpegs: list[bytes], copies: int = 32) -> dict:
    """``vasari embed`` itself, as a user runs it (a subprocess on ``copies`` x the JPEGs as
    files, the served bundle's backbone, feature and views, no cache so every picture is
    computed): the img/s it prints (pictures over the seconds of embedding, start-up
    excluded). The issue's goal is a share of this figure; ``EmbedBaseline`` (the same work
    in this process, no progress bar, no output file) is the stricter reference beside it."""
    from vasari.bundle import load_bundle
    from vasari.inference.predictor import default_model_dir

    spec = load_bundle(Path(model) if model else default_model_dir()).spec
    with tempfile.TemporaryDirectory(prefix="vasari-load-cli-") as tmp:
        folder = Path(tmp) / "pictures"
        folder.mkdir()
        for i, data in enumerate(jpegs * copies):
            (folder / f"{i}.jpg").write_bytes(data)
        cmd = [sys.executable, "-c", "from vasari.cli import app; app()", "embed", str(folder), "--out",
               str(Path(tmp) / "out.npz"), "--no-cache", "--backbone", spec.name, "--feature", spec.feature,
               "--views", spec.views]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO), env={**os.environ, "COLUMNS": "200"})
    found = re.search(r"computed in ([0-9.]+)s \(([0-9.]+) img/s\)", done.stdout + done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"vasari embed failed (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return {"img_per_s": float(found.group(2)), "seconds": float(found.group(1)), "pictures": len(jpegs) * copies,
            "loadavg_1m": os.getloadavg()[0]}


def saturation_row(clients: int, r: dict, before: dict, after: dict) -> dict:
    """One saturation run against the embed rate measured just before and just after it.

    ``cpu_share``: embed's CPU per image over the server's CPU per answered request. It
    changes little with other work on the machine (wall-clock rates do), and on a machine
    of its own the service cannot beat it: the share of embed it could reach if its cores
    never idled."""
    embed_ips = (before["img_per_s"] + after["img_per_s"]) / 2
    embed_cpu = (before["cpu_ms_per_img"] + after["cpu_ms_per_img"]) / 2
    server_cpu = r["server_cpu_ms_per_request"]
    return {
        "clients": clients, "req_per_s": r["throughput_rps"], "img_per_s": r["throughput_rps"],
        "embed_img_per_s": embed_ips, "embed_img_per_s_before_after": [before["img_per_s"], after["img_per_s"]],
        "vs_embed": r["throughput_rps"] / embed_ips, "p50_s": r["p50_ms"] / 1000, "p99_s": r["p99_ms"] / 1000,
        "shed_503": r["shed_503"], "errors": r["errors"], "error_kinds": r["error_kinds"],
        "server_cpu_ms_per_request": server_cpu, "client_cpu_ms_per_request": r["client_cpu_ms_per_request"],
        "embed_cpu_ms_per_img": embed_cpu,
        "cpu_share": embed_cpu / server_cpu if server_cpu else None,
        "images_per_forward": r.get("images_per_forward_seen"),
        "server_ms_p50": {k: r.get(f"server_{k}_ms_p50") for k in ("decode", "queue", "infer")},
        "loadavg_1m_during": r["loadavg_1m_during"],
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_saturation(result: dict, label: str) -> None:
    """The saturation rows of the server ``label`` as a table (share of embed, latency, CPU
    per picture, load)."""
    headers = ("clients", "img/s", "vasari embed img/s", "vs vasari embed", "engine img/s", "vs engine", "p50 s", "p99 s", "shed", "per forward",
               "server CPU ms/req", "clients CPU ms/req", "embed CPU ms/img", "CPU share", "load")
    rows = []
    for r in result["saturation"].values():
        rows.append((str(r["clients"]), f"{r['img_per_s']:.1f}", f"{r['vasari_embed_img_per_s']:.1f}",
                     f"{r['vs_vasari_embed']:.0%}", f"{r['embed_img_per_s']:.1f}", f"{r['vs_embed']:.0%}",
                     f"{r['p50_s']:.2f}", f"{r['p99_s']:.2f}", str(r["shed_503"]), _fmt(r["images_per_forward"], ".2f"),
                     _fmt(r["server_cpu_ms_per_request"], ".1f"), _fmt(r["client_cpu_ms_per_request"], ".1f"),
                     f"{r['embed_cpu_ms_per_img']:.1f}", _fmt(r["cpu_share"], ".0%"), _fmt(r["loadavg_1m_during"], ".1f")))
    d = result["deadline"]
    title = (f"vasari serve ({label}) at saturation vs `vasari embed` (the CLI, before and after all runs) and vs the "
             f"same embedding in-process (engine, before and after each run), same machine; "
             f"{d['clients']} clients with {d['deadline_s']:g} s deadlines: {d['client_timeouts']} of {d['requests']} "
             f"timed out ({d['client_timeout_rate']:.1%}), {d['shed_503']} shed, p99 accepted {d['p99_s']:.2f} s")
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for col in headers:
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        Console(width=170).print(table)
    except ImportError:  # pragma: no cover
        print(title)
        for row in (headers, *rows):
            print(" | ".join(row))


def deadline_row(args, d: dict) -> dict:
    """The ``--deadline-clients`` run: timeouts, sheds and latency of the accepted requests."""
    return {
        "clients": args.deadline_clients, "deadline_s": args.deadline_s, "requests": d["requests"], "ok": d["ok"],
        "client_timeouts": d["client_timeouts"], "client_timeout_rate": d["client_timeout_rate"],
        "shed_503": d["shed_503"], "p50_s": d["p50_ms"] / 1000, "p99_s": d["p99_ms"] / 1000,
        "img_per_s": d["throughput_rps"], "error_kinds": d["error_kinds"],
    }


def goals_met(rows: dict, deadline: dict) -> bool:
    g = SATURATION_GOALS
    met = all(r["vs_vasari_embed"] >= g["throughput_vs_vasari_embed"] and r["p99_s"] <= g["p99_s"] for r in rows.values())
    return met and deadline["client_timeout_rate"] <= g["deadline_timeout_rate"] and deadline["p99_s"] <= g["deadline_p99_s"]


def run_saturation(args, servers: dict[str, tuple[str, int | None]], jpegs: list[bytes]) -> dict:
    """Throughput at ``--saturation-clients`` as a share of the embed rate measured around
    each run, p50/p99 of the accepted requests and the shed count; then
    ``--deadline-clients`` clients that give up after ``--deadline-s``. ``servers``: label
    -> (url, pid), run one after the other at each client count (which one first
    alternates), so that both meet the same moment of a shared machine."""
    baseline = EmbedBaseline(args.model, jpegs)
    rows: dict[str, dict] = {label: {} for label in servers}
    cli = [cli_embed_rate(args.model, jpegs)]
    print(f"vasari embed (the CLI, same machine, same run): {cli[0]['img_per_s']:.1f} img/s")
    try:
        before = baseline.measure(args.embed_seconds)
        print(f"vasari embed (same machine, same run): {before['img_per_s']:.1f} img/s")
        for i, clients in enumerate(args.saturation_clients):
            order = list(servers.items())  # alternating which server runs first at each client count
            for label, (url, pid) in (order[::-1] if i % 2 else order):
                r = run_load(url, jpegs, clients, args.duration, args.warmup, pid)
                after = baseline.measure(args.embed_seconds)
                rows[label][str(clients)] = row = saturation_row(clients, r, before, after)
                print(f"{label}, {clients:4d} clients: {r['throughput_rps']:.1f} img/s = {row['vs_embed']:.0%} of embed "
                      f"({row['embed_img_per_s']:.1f} img/s), p99 {r['p99_ms'] / 1000:.2f} s, CPU share {row['cpu_share'] or 0:.0%}")
                before = after
    finally:
        baseline.close()
    cli.append(cli_embed_rate(args.model, jpegs))
    print(f"vasari embed (the CLI, after the saturation runs): {cli[1]['img_per_s']:.1f} img/s")
    cli_ips = statistics.fmean(c["img_per_s"] for c in cli)
    for label_rows in rows.values():
        for row in label_rows.values():
            row["vasari_embed_img_per_s"] = cli_ips
            row["vs_vasari_embed"] = row["img_per_s"] / cli_ips
    results = {}
    for label, (url, pid) in servers.items():
        deadline = deadline_row(args, run_load(url, jpegs, args.deadline_clients, args.duration, args.warmup, pid,
                                               deadline_s=args.deadline_s))
        results[label] = {"embed_img_per_s": statistics.fmean(r["embed_img_per_s"] for r in rows[label].values()),
                          "vasari_embed_cli": cli,
                          "saturation": rows[label], "deadline": deadline, "goals": SATURATION_GOALS,
                          "goals_met": goals_met(rows[label], deadline)}
    main_label, *others = servers
    result = results[main_label]
    for label in others:
        result["baseline"] = {"code": label, **results[label]}
    for label in servers:
        print_saturation(results[label], label)
    return result


def saturation_servers(args, url: str, pid: int | None, jpegs: list[bytes]) -> dict:
    """``run_saturation`` against the server at ``url`` and, with ``--baseline REV``, a
    second server running the package exported from that git revision (the same default
    bundle, flags and machine): the before/after of a change, side by side in one run."""
    if not args.baseline:
        return run_saturation(args, {"this tree": (url, pid)}, jpegs)
    with tempfile.TemporaryDirectory(prefix="vasari-load-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "vasari"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        port = free_port()
        log = Path(tempfile.gettempdir()) / f"vasari-load-server-{port}.log"
        proc = start_server(args.model, port, args.window_ms, args.max_batch, args.workers, log, args.shed_wait_s, Path(tmp))
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            servers = {"this tree": (url, pid), f"baseline {args.baseline}": (f"http://127.0.0.1:{port}", proc.pid)}
            return run_saturation(args, servers, jpegs)
        finally:
            proc.terminate()
            proc.wait(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="bundle folder (default: the shipped default bundle)")
    parser.add_argument("--url", help="benchmark a server already running at this URL instead of starting one")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--size", type=int, default=768, help="long side of the JPEGs")
    parser.add_argument("--window-ms", type=float, default=5.0, help="micro-batch window of the server")
    parser.add_argument("--max-batch", type=int, default=8, help="micro-batch size limit of the server")
    parser.add_argument("--workers", type=int, default=3, help="inference threads of the server (batches run at once; the service default)")
    parser.add_argument("--shed-wait-s", type=float, default=1.0, help="server sheds (503) beyond this expected queue wait; 0: never")
    parser.add_argument("--saturation", action="store_true",
                        help="instead of one run: embed img/s, then --saturation-clients, then --deadline-clients "
                             "(writes benchmarks/results/load_saturation.json unless --out)")
    parser.add_argument("--saturation-clients", type=lambda v: [int(x) for x in v.split(",")], default=[8, 32],
                        help="comma-separated client counts of the saturation runs (default 8,32)")
    parser.add_argument("--baseline", metavar="REV",
                        help="with --saturation: also serve the package at this git revision and run every scenario "
                             "on both, alternating (e.g. --baseline 21c33c9)")
    parser.add_argument("--deadline-clients", type=int, default=128, help="clients of the deadline scenario")
    parser.add_argument("--deadline-s", type=float, default=3.0, help="a client gives up after this many seconds")
    parser.add_argument("--embed-seconds", type=float, default=10.0,
                        help="seconds of each embed measurement (before the first saturation run and after each)")
    parser.add_argument("--out", type=Path, default=None, help="JSON written (default benchmarks/results/load.json)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = REPO / "benchmarks" / "results" / ("load_saturation.json" if args.saturation else "load.json")

    jpegs, source = make_jpegs(size=args.size)
    load_before = os.getloadavg()[0]
    proc = None
    if args.url:
        url, pid = args.url.rstrip("/"), None
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tempfile.gettempdir()) / f"vasari-load-server-{port}.log"  # read it if the server fails
        proc = start_server(args.model, port, args.window_ms, args.max_batch, args.workers, log, args.shed_wait_s)
        pid = proc.pid
    try:
        t0 = time.perf_counter()
        wait_ready(url, proc)
        ready_s = time.perf_counter() - t0
        model_info = httpx.get(f"{url}/api/v1/model").json()
        before = httpx.get(f"{url}/readyz").json()
        if args.saturation:
            return write_saturation(args, saturation_servers(args, url, pid, jpegs), model_info, load_before)
        results = run_load(url, jpegs, args.clients, args.duration, args.warmup, pid)
        after = httpx.get(f"{url}/readyz").json()
        healthy = httpx.get(f"{url}/healthz").status_code == 200
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    batches = after.get("batches", 0) - before.get("batches", 0)
    images = after.get("images", 0) - before.get("images", 0)
    result = {
        "config": {
            "clients": args.clients, "duration_s": args.duration, "warmup_s": args.warmup, "image_px": args.size,
            "images": source, "jpeg_kb_mean": round(statistics.fmean(len(j) for j in jpegs) / 1024, 1),
            "model": args.model or "default bundle", "window_ms": args.window_ms, "max_batch": args.max_batch, "inference_workers": args.workers,
            "server": args.url or "uvicorn, 1 worker, started by the benchmark",
        },
        "model_info": {
            "backbone": (model_info.get("backbone") or {}).get("name"),
            "feature": (model_info.get("backbone") or {}).get("feature"),
            "tasks": model_info.get("tasks"),
            "gallery_index": model_info.get("index"),
            "card_name": (model_info.get("card") or {}).get("name"),
        },
        "results": results,
        "server": {"ready_s": None if args.url else round(ready_s, 1), "batches": batches, "images": images,
                   "avg_batch": images / batches if batches else float("nan"), "healthy_after": healthy},
        "machine": {
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0],
        },
        "goals": GOALS,
    }
    r = results
    result["goals_met"] = bool(
        r["p50_ms"] <= GOALS["p50_ms"] and r["p99_ms"] <= GOALS["p99_ms"]
        and r["throughput_rps"] >= GOALS["throughput_rps"] and r["errors"] == GOALS["errors"]
        and (r["rss_mb_peak"] is None or r["rss_mb_peak"] <= GOALS["rss_mb_peak"])
    )
    print_table(result)
    write_result(args.out, _finite(result))
    print(f"wrote {args.out}")
    return 0 if r["errors"] == 0 and healthy else 1


def write_saturation(args, result: dict, model_info: dict, load_before: float) -> int:
    result["config"] = {"duration_s": args.duration, "warmup_s": args.warmup, "image_px": args.size, "baseline": args.baseline,
                        "max_batch": args.max_batch, "window_ms": args.window_ms, "shed_wait_s": args.shed_wait_s,
                        "model": args.model or "default bundle", "backbone": (model_info.get("backbone") or {}).get("name")}
    result["machine"] = {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                         "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]}
    write_result(args.out, _finite(result))
    print(f"goals met: {result['goals_met']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
