"""``POST /api/v1/artists`` on the full app around a bundle trained on generated artists (real
backbone, no mocked model): 403 when the operator set no token, 401 for a missing or wrong
one, failed enrolments leave the served model exactly as it was, a successful one is served
at once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from enrol_data import NEW_ARTIST, enrol_world
from fastapi.testclient import TestClient

from vasari.inference.predictor import Predictor
from vasari.service import ServiceConfig, create_app

TOKEN = "correct horse battery staple"


def form(paths: list[str], name: str = NEW_ARTIST, **extra: str) -> dict:
    return {"data": {"name": name, **extra},
            "files": [("files", (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in paths]}


def predict(client: TestClient, path: str) -> dict:
    r = client.post("/api/v1/predict", files={"file": (Path(path).name, Path(path).read_bytes(), "image/jpeg")},
                    params={"top_k": 3})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture()
def served(tmp_path):
    def make(token: str | None):
        w = enrol_world()
        config = ServiceConfig(admin_token=token, bundle_dir=str(tmp_path / "bundles"), warmup=False)
        return w, TestClient(create_app(Predictor.load(w.bundle), config))
    return make


def test_without_a_configured_token_enrolment_is_off(served):
    w, app = served(None)
    with app as client:
        before = predict(client, w.images("held")[0])
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            r = client.post("/api/v1/artists", headers=headers, **form(w.images("enrol")))
            assert r.status_code == 403 and r.json()["error"]["code"] == "enrolment_disabled"
        assert predict(client, w.images("held")[0]) == before


def test_missing_or_wrong_token_is_401_and_changes_nothing(served, tmp_path):
    w, app = served(TOKEN)
    with app as client:
        before = predict(client, w.images("held")[0])
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            r = client.post("/api/v1/artists", headers=headers, **form(w.images("enrol")))
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert predict(client, w.images("held")[0]) == before
    assert not (tmp_path / "bundles").exists()


def test_failed_enrolments_leave_the_served_model_as_it_was(served, tmp_path):
    w, app = served(TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with app as client:
        before = [predict(client, p) for p in w.images("held")[:2]]
        model = client.get("/api/v1/model").json()
        cases = [(form(w.images("enrol")[:4]), 400, "bad_file_count"),
                 (form([*w.images("enrol")[:5], str(bad)]), 422, "corrupt"),
                 (form(w.images("enrol"), name="Aldo Verde"), 409, "duplicate_artist"),
                 (form(w.images("enrol"), years="1900-1800"), 400, "bad_years")]
        for request, status, code in cases:
            r = client.post("/api/v1/artists", headers=auth, **request)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
        assert [predict(client, p) for p in w.images("held")[:2]] == before
        assert client.get("/api/v1/model").json() == model
    assert not any((tmp_path / "bundles").glob("*")) if (tmp_path / "bundles").exists() else True


def test_enrolment_is_served_at_once(served, tmp_path):
    w, app = served(TOKEN)
    with app as client:
        r = client.post("/api/v1/artists", headers={"Authorization": f"Bearer {TOKEN}"},
                        **form(w.images("enrol"), years="1601-1650"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["artist"] == NEW_ARTIST and body["version"] == 2 and body["class_index"] == 4
        card = json.loads((tmp_path / "bundles" / body["bundle"] / "bundle.json").read_text())["card"]
        images = card["enrolled"][-1]["images"]
        assert [i["path"] for i in images] == [f"upload:{Path(p).name}" for p in w.images("enrol")]
        assert [i["sha256"] for i in images] == [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in w.images("enrol")]
        held = [predict(client, p) for p in w.images("held")]
        assert sum(h["verdict"]["artist"] == NEW_ARTIST for h in held) >= 0.75 * len(held)
        assert NEW_ARTIST in client.get("/api/v1/model").json()["labels"]["artist"]
        assert NEW_ARTIST in client.get("/api/v1/model/card").text


def test_token_and_bundle_dir_come_from_the_environment():
    config = ServiceConfig.from_env({"VASARI_ADMIN_TOKEN": "tok-7f3a", "VASARI_BUNDLE_DIR": "/srv/bundles"})
    assert config.admin_token == "tok-7f3a" and config.bundle_dir == "/srv/bundles"
    assert "tok-7f3a" not in repr(config)  # logs of the config never show the token
    assert ServiceConfig.from_env({}).admin_token is None
