"""Serving replicas without Ray: two `vasari serve` processes (what a load balancer would put
behind one address) open the same bundle read-only and give the same answer to the same
picture. Marked slow: two servers load the model."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from learn_data import painting
from vasari.inference.predictor import default_model_dir

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file of a folder and the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _read_only(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        mode = p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        p.chmod(mode)


def _wait_ready(proc: subprocess.Popen, url: str, deadline_s: float = 180) -> None:
    """Until ``url/readyz`` answers 200 (the model is loaded and warm); fails if the server exits."""
    import httpx

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"{url} did not become ready within {deadline_s} s")


def test_two_serve_replicas_share_a_read_only_bundle(tmp_path):
    import httpx

    if not (default_model_dir() / "bundle.json").is_file():
        pytest.skip("the default bundle is not installed")
    bundle = tmp_path / "bundle"
    shutil.copytree(default_model_dir(), bundle)
    _read_only(bundle)
    before = _fingerprint(bundle)
    img, _ = painting(np.random.default_rng(3), "portrait", size=300)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)

    ports = [_free_port(), _free_port()]
    procs = [subprocess.Popen([sys.executable, "-c", "from vasari.cli import app; app()", "serve", "--port", str(port),
                               "--model", str(bundle), "--log-level", "warning", "--inference-workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for port in ports]
    try:
        answers = []
        for proc, port in zip(procs, ports):
            url = f"http://127.0.0.1:{port}"
            _wait_ready(proc, url)
            r = httpx.post(f"{url}/api/v1/predict", files={"file": ("p.jpg", buf.getvalue())}, timeout=120)
            assert r.status_code == 200, r.text
            answers.append(r.json())
        assert answers[0] == answers[1] and answers[0]["predictions"]
        assert _fingerprint(bundle) == before  # nothing written into the shared bundle
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
