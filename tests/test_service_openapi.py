"""The OpenAPI document tells the truth: Schemathesis (``st run --checks all``) against the
REAL app (default bundle) served by uvicorn on 127.0.0.1 finds no status, media type or
body that the document does not state. What a schema cannot say (an upload's bytes must
decode as an image) is in ``schemathesis.toml`` with its reason.

Bounded: a fixed seed, 30 examples per operation and no stateful phase (a few hundred cases,
~30 s on 2 cores; the stateful phase only chains the same operations and triples the time).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from vasari.service import ServiceConfig, create_app, uvicorn_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def live_url():
    """The service on a free port of 127.0.0.1, ready (model loaded and warm)."""
    import uvicorn

    from vasari.inference.predictor import Predictor

    config = ServiceConfig()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(create_app(Predictor.load(), config), config, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(15)


def test_schemathesis_finds_no_mismatch(live_url, tmp_path):
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    run = subprocess.run(
        [st, "--config-file", str(REPO / "schemathesis.toml"), "run", f"{live_url}/openapi.json",
         "--checks", "all", "--phases", "examples,coverage,fuzzing", "--max-examples", "30", "--seed", "20260101", "--workers", "1", "--no-color"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # its cache stays out of the repo
    )
    assert run.returncode == 0 and "No issues found" in run.stdout, run.stdout[-6000:] + run.stderr[-2000:]
