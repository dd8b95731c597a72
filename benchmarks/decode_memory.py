"""Peak memory of decoding small files that expand to large 16-bit images, at once.

A 16-bit greyscale 7999x7999 PNG (about 125 KB of a smooth ramp) decodes to 128 MB of
samples; the code before issue 11 also made three full-image float64 copies of it. Each
variant runs in its own child process, which reads the files into memory, resets its peak
RSS (``/proc/self/clear_refs``), decodes ``--n`` of them in ``--n`` threads at once with
``load_image(min_side=...)`` (234 is the shipped bundle's ``draft_min_side``; 0 decodes at
full size) and keeps the results, as the service does until the batch runs. Reported: peak
RSS above the baseline, wall time. ``--baseline REV`` also measures ``vasari/images.py`` at a
git revision (the code before the fix is b5afd83).

``--download N`` also measures ``download_images`` fetching N such PNGs at concurrency 16
from ``python -m http.server`` on 127.0.0.1 (its own process), for this tree and for the
whole package at ``--baseline`` (exported with ``git archive``).

    python benchmarks/decode_memory.py                          # this tree, 3 at once
    python benchmarks/decode_memory.py --baseline b5afd83 --n 3

Prints a table and writes benchmarks/results/decode_memory.json.
Goal (issue 11): three at once <= +600 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import importlib.util, json, sys, threading, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
module_path, n, min_side, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) or None, sys.argv[4:]
spec = importlib.util.spec_from_file_location("images_under_test", module_path)
images = importlib.util.module_from_spec(spec); sys.modules[spec.name] = images; spec.loader.exec_module(images)
data = [open(f, "rb").read() for f in files]
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset VmHWM to the current RSS
base = status("VmRSS:")
results = [None] * n
def decode(i):
    results[i] = images.load_image(data[i % len(data)], min_side=min_side)
start = time.perf_counter()
threads = [threading.Thread(target=decode, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"peak_mb": (status("VmHWM:") - base) / 1e6, "seconds": time.perf_counter() - start,
                  "sizes": [r.size for r in results], "after_mb": (status("VmRSS:") - base) / 1e6}))
"""

DOWNLOAD_CHILD = r"""
import json, sys, tempfile, time
from vasari.download.downloader import DownloadConfig, download_images
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
urls = sys.argv[1:]
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
base = status("VmRSS:")
start = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    summary = download_images(urls, out, DownloadConfig(concurrency=16, rate=None, trust_env=False), progress=False)
import vasari
print(json.dumps({"peak_mb": (status("VmHWM:") - base) / 1e6, "seconds": time.perf_counter() - start,
                  "ok": summary.ok, "package": vasari.__file__, "after_mb": (status("VmRSS:") - base) / 1e6}))
"""


def measure_download(package_root: Path, folder: Path, n: int) -> dict:
    """A child process downloading ``n`` copies of the PNG in ``folder`` from a local server."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # wait until it listens
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        urls = [f"http://127.0.0.1:{port}/copy{i}.png" for i in range(n)]
        env = {**os.environ, "PYTHONPATH": str(package_root), "NO_PROXY": "127.0.0.1"}
        out = subprocess.run([sys.executable, "-c", DOWNLOAD_CHILD, *urls], capture_output=True, text=True, env=env,
                             cwd=folder, check=False)  # cwd: "-c" puts it first on sys.path
    finally:
        server.terminate()
        server.wait()
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout)


def make_wide_png(path: Path, side: int = 7999) -> None:
    """A 16-bit greyscale PNG of a horizontal ramp: tiny on disk, ``2 * side**2`` bytes decoded."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 65535, side).astype(np.uint16)
    Image.fromarray(np.broadcast_to(ramp, (side, side)).copy()).save(path)


def measure(module_path: Path, files: list[Path], n: int, min_side: int) -> dict:
    """One child process decoding ``n`` images at once; its peak RSS above baseline."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(module_path), str(n), str(min_side), *map(str, files)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout)


def download_rows(tmp: Path, png: Path, n: int, baseline: str | None) -> list[dict]:
    """The downloader on ``n`` copies of ``png``, for this tree and the package at ``baseline``."""
    served = tmp / "served"
    served.mkdir()
    for i in range(n):
        (served / f"copy{i}.png").write_bytes(png.read_bytes())
    roots = {"download, this tree": ROOT}
    if baseline:
        old = tmp / "baseline"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "vasari"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        roots[f"download, baseline {baseline}"] = old
    return [{"variant": name, "n": n, "min_side": "check", **measure_download(root, served, n)} for name, root in roots.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3, help="decodes at once")
    parser.add_argument("--min-side", type=int, nargs="+", default=[234, 0], help="min_side values (0: full size)")
    parser.add_argument("--baseline", help="also measure vasari/images.py at this git revision")
    parser.add_argument("--download", type=int, default=0, help="also measure the downloader on this many PNGs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "decode_memory.json")
    args = parser.parse_args()
    from _provenance import write_result

    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "wide16.png"
        make_wide_png(png)
        variants = {"this tree": ROOT / "vasari" / "images.py"}
        if args.baseline:
            old = Path(tmp) / "images_baseline.py"
            old.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{args.baseline}:vasari/images.py"],
                                           capture_output=True, check=True).stdout)
            variants[f"baseline {args.baseline}"] = old
        rows = [{"variant": name, "n": args.n, "min_side": side, "file_bytes": png.stat().st_size,
                 **measure(path, [png], args.n, side)} for name, path in variants.items() for side in args.min_side]
        if args.download:
            rows += download_rows(Path(tmp), png, args.download, args.baseline)
    print(f"{'variant':<30} {'n':>2} {'min_side':>8} {'peak MB':>8} {'after MB':>8} {'seconds':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['variant']:<30} {r['n']:>2} {r['min_side']:>8}  error: {r['error']}")
        else:
            print(f"{r['variant']:<30} {r['n']:>2} {r['min_side']:>8} {r['peak_mb']:>8.0f} {r['after_mb']:>8.0f} "
                  f"{r['seconds']:>8.2f}")
    result = {"rows": rows, "machine": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
