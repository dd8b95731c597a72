"""The Ray engine (``vasari.features.ray_engine``): the same vectors and predictions as the local
engine, on a two-node local cluster and on the local Ray the CLI starts.

Marked slow (Ray starts in seconds, not milliseconds) and skipped with a reason when Ray Data is
not installed; each test runs under a timeout so a hung Ray job fails instead of blocking.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from answers_close import assert_answers_close

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'vasari-art[ray]')")
pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'vasari-art[ray]')")

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def _real_pictures(shared_data: Path, n: int) -> list[str]:
    """``n`` real paintings from two sources (different sizes and aspect ratios)."""
    from vasari.core.images import is_image_file

    files = sorted(str(p) for p in (shared_data / "louvre" / "val").rglob("*") if is_image_file(p))
    files += sorted(str(p) for p in (shared_data / "aic").rglob("*") if is_image_file(p))
    if len(files) < n:
        pytest.skip(f"needs {n} pictures in louvre/val + aic, found {len(files)}")
    return files[::max(1, len(files) // n)][:n]


#: seconds a Ray test may take before it fails (a hung Ray Data job must not block the suite)
DEADLINE_S = 240


@pytest.fixture(autouse=True)
def deadline():
    """Fail the test with TimeoutError after DEADLINE_S (SIGALRM interrupts the driver's wait)."""
    def expire(signum, frame):
        raise TimeoutError(f"Ray test still running after {DEADLINE_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(DEADLINE_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def two_node_cluster(monkeypatch):
    """A local Ray cluster of two nodes (1 CPU, 256 MiB object store each), connected."""
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 256 * MIB})
    cluster.add_node(num_cpus=1, object_store_memory=256 * MIB)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_two_nodes_embed_like_the_local_engine(two_node_cluster, shared_data, tmp_path):
    from vasari.features import Embedder
    from vasari.features.collection import CollectionConfig, embed_to_shards
    from vasari.features.ray_engine import RayConfig
    from vasari.features.shards import iter_shard_batches

    paths = _real_pictures(shared_data, 200)
    embedder = Embedder(engine="onnx", threads=1)
    config = CollectionConfig(engine="ray", ray=RayConfig(workers=2), shard_size=64)
    manifest = embed_to_shards(embedder, paths, None, tmp_path / "ray", config=config, progress=False)

    local = embedder.embed_paths(paths, progress=False)
    got = {img: vec for images, _, vecs in iter_shard_batches(tmp_path / "ray") for img, vec in zip(images, vecs)}
    expected = {p: local.features[i] for i, p in enumerate(paths) if i not in local.errors}
    assert set(got) == set(expected) and len(got) >= 200 - len(local.errors) and len(got) >= 190
    delta = max(float(np.abs(got[p] - expected[p]).max()) for p in got)
    assert delta <= 1e-4, delta

    rows_per_node: dict[str, int] = {}
    for entry in manifest["shards"]:
        for node, rows in entry["nodes"].items():
            rows_per_node[node] = rows_per_node.get(node, 0) + rows
    assert len(rows_per_node) == 2, rows_per_node  # both nodes embedded rows
    assert sum(rows_per_node.values()) == len(got)


def test_cli_ray_engine_predicts_like_the_local_engine(shared_data, tmp_path):
    """`vasari predict --engine ray` (a local Ray started by the CLI) and `vasari embed --engine
    ray` write what the local engine writes."""
    paths = _real_pictures(shared_data, 24)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_AUTH_MODE", None)  # the CLI turns token auth off for its own local Ray

    def vasari(*args: str) -> None:
        cmd = [sys.executable, "-c", "from vasari.cli import app; app()", *args]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    vasari("predict", *paths, "--out", str(tmp_path / "ray"), "--engine", "ray", "--ray-workers", "2",
           "--shard-size", "10")
    vasari("predict", *paths, "--out", str(tmp_path / "local"), "--shard-size", "10")
    from vasari.features.shards import iter_prediction_objects

    ray_rows, local_rows = list(iter_prediction_objects(tmp_path / "ray")), list(iter_prediction_objects(tmp_path / "local"))
    assert len(ray_rows) == 24
    assert_answers_close(ray_rows, local_rows)  # another process and batch split: float paths differ
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["identity"]["kind"] == "predictions" and all(e["nodes"] for e in manifest["shards"])


#: The Ray Serve check, run in its own interpreter: Serve reconfigures the driver's logging and
#: streams, and a crash of its controller must fail this test, not take pytest down with it.
SERVE_CHECK = """
import io, json, socket, sys, time
import httpx, numpy as np, ray
from PIL import Image
from ray import serve
from vasari.service.ray_serve import ServeOptions, vasari_deployment

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
try:
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(vasari_deployment(ServeOptions(num_replicas=2, num_cpus=0.5)), name="vasari", route_prefix="/")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(buf, "JPEG")

    def predict():
        for _ in range(120):  # a replica still loading its model answers 503 for a while
            r = httpx.post(f"http://127.0.0.1:{port}/api/v1/predict", files={"file": ("p.jpg", buf.getvalue())}, timeout=120)
            if r.status_code != 503:
                return r
            time.sleep(1)
        return r

    answers = [predict() for _ in range(4)]
    out = {"status": [r.status_code for r in answers], "bodies": [r.json() if r.status_code == 200 else r.text[:200] for r in answers]}
finally:
    serve.shutdown()
    ray.shutdown()
sys.stdout.write("RESULT " + json.dumps(out) + "\\n")
"""


def test_ray_serve_replicas_answer():
    """The app as a Ray Serve deployment with two replicas answers the same prediction."""
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'vasari-art[ray-serve]')")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SERVE_CHECK], env=env, capture_output=True, text=True,
                          timeout=DEADLINE_S - 20)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["status"] == [200] * 4, out["bodies"]
    assert all(body == out["bodies"][0] for body in out["bodies"]) and out["bodies"][0]["predictions"]
