"""The downloader against a local fault-injecting server (127.0.0.1 only, never the network)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fault_server import FaultServer, make_image
from vasari import __version__
from vasari.download import (PROJECT_URL, DownloadConfig, DownloadError, DownloadJob, TokenBucket, download_images,
                             failed_jobs, jobs_from_csv, parse_rate, parse_retry_after, read_download_manifest,
                             safe_destination, url_to_path)
from vasari.core.images import load_image

# A local answer must never look like a stall, even on a loaded machine: the read timeout is
# generous, and the stall faults below sleep well past it (STALL), so which side of the timeout
# a response falls does not depend on the machine's speed.
FAST = DownloadConfig(concurrency=8, rate=None, retries=2, backoff=0.01, backoff_max=0.05, read_timeout=2.0,
                      connect_timeout=5.0, trust_env=False)
STALL = f"stall:{FAST.read_timeout * 2.5:g}"
LOCAL_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {"NO_PROXY": "127.0.0.1"}


@pytest.fixture
def server():
    with FaultServer(lifetime=60) as s:
        yield s


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


def by_path(summary) -> dict:
    return {r.path: r for r in summary.records}


# ---------------------------------------------------------------------------- pure helpers


def test_url_to_path_maps_wga_urls_and_refuses_escapes():
    assert url_to_path("http://www.wga.hu/art/a/abbate/deerhunt.jpg") == "a/abbate/deerhunt.jpg"
    assert url_to_path("https://example.org/images/x%20y.png") == "images/x y.png"
    assert url_to_path("https://h/art/a/b.jpg", strip_prefix=None) == "art/a/b.jpg"
    with_query = url_to_path("https://h/img/view.jpg?id=5")
    assert with_query.startswith("img/view-") and with_query.endswith(".jpg")
    assert with_query != url_to_path("https://h/img/view.jpg?id=6")
    assert url_to_path("https://h/a/b:c%3F.jpg") == "a/b_c_.jpg"
    climbs, scheme, no_name = "path climbs out with '..'", "is not an http.s. URL", "has no file name in its path"
    for bad, message in (("https://h/art/../../etc/passwd", climbs), ("https://h/a/%2e%2e/%2e%2e/x.jpg", climbs),
                         ("https://h/a/..%5C..%5Cx.jpg", climbs), ("ftp://h/x.jpg", scheme), ("https://h/", no_name),
                         ("https://h/dir/", no_name), ("not a url", scheme)):
        with pytest.raises(ValueError, match=message):
            url_to_path(bad)


def test_url_to_path_shortens_names_too_long_for_the_file_system():
    long_stem = "très-long-" * 40  # 440 bytes in UTF-8
    path = url_to_path(f"https://h/art/{'d' * 300}/{long_stem}.jpg")
    folder, name = path.split("/")
    assert len(folder.encode()) <= 255 and len(name.encode()) <= 255 - 24
    assert folder.startswith("d" * 200) and name.startswith("très-long-") and name.endswith(".jpg")
    other = url_to_path(f"https://h/art/{'d' * 300}/{long_stem}x.jpg")  # same first bytes, another name
    assert other != path and len(other.encode()) == len(path.encode())
    assert url_to_path("https://h/art/a/short.jpg") == "a/short.jpg"  # names that fit are untouched


def test_safe_destination_stays_inside(tmp_path):
    assert safe_destination(tmp_path, "a/b.jpg") == (tmp_path / "a" / "b.jpg").resolve()
    (tmp_path / "link").symlink_to("/tmp")
    escapes, ours = "escapes the output folder", "is a name the downloader keeps for itself"
    for bad, message in (("../x.jpg", escapes), ("/etc/x.jpg", escapes), ("a/../../x.jpg", escapes), ("C:/x.jpg", escapes),
                         ("..\\x.jpg", escapes), ("manifest.jsonl", ours), ("x.jpg.tmp-12", ours),
                         ("x.jpg.tmp-12-abcdef", ours), ("link/x.jpg", r"escapes the output folder \(through a link\?\)"),
                         ("", "empty destination path"), ("a/" + "x" * 300 + ".jpg", "a name of 304 bytes, over the 231-byte limit"),
                         ("a/" + "y" * 240 + ".jpg", "a name of 244 bytes, over the 231-byte limit"),
                         ("d" * 256 + "/x.jpg", "a name of 256 bytes, over the 255-byte limit")):
        with pytest.raises(ValueError, match=message):
            safe_destination(tmp_path, bad)
    assert safe_destination(tmp_path, "a/" + "z" * 227 + ".jpg").name == "z" * 227 + ".jpg"  # 231 bytes fit


def test_parse_rate_and_retry_after():
    assert parse_rate("10/s") == 10 and parse_rate("10") == 10 and parse_rate("600/min") == 10
    assert parse_rate("off") is None and parse_rate("0") is None and parse_rate(None) is None
    with pytest.raises(DownloadError):
        parse_rate("fast")
    assert parse_retry_after("3") == 3 and parse_retry_after(" 0.5 ") == 0.5 and parse_retry_after("-4") == 0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after("nan") is None


def test_token_bucket_spaces_requests():
    async def go() -> float:
        bucket = TokenBucket(rate=50, burst=1)
        start = time.monotonic()
        for _ in range(6):
            await bucket.acquire()
        bucket.pause(0.1)
        await bucket.acquire()
        return time.monotonic() - start

    assert asyncio.run(go()) >= 5 / 50 + 0.1 - 0.01


def test_config_refuses_nonsense():
    for bad in ({"concurrency": 0}, {"rate": -1}, {"retries": -1}, {"max_side": 0}):
        with pytest.raises(DownloadError):
            DownloadConfig(**bad)


# ---------------------------------------------------------------------------- fault injection


def test_faults_end_to_end(server, tmp_path):
    good = {f"/art/g/ok{i}.jpg": make_image(seed=i) for i in range(5)} | {"/art/g/ok.png": make_image(fmt="PNG", seed=9)}
    for path, body in good.items():
        server.add(path, body, content_type="image/png" if path.endswith(".png") else "image/jpeg")
    body = make_image(seed=20)
    server.add("/art/f/e500.jpg", body, faults=["500", "503"])
    server.add("/art/f/r429.jpg", body, faults=["429:1"])
    server.add("/art/f/r429date.jpg", body, faults=["429-date:2"])
    server.add("/art/f/stall_once.jpg", body, faults=[STALL])
    server.add("/art/f/slow.jpg", body, delay=0.1)
    server.add("/art/f/trunc_once.jpg", body, faults=["truncate"])
    server.add("/art/f/reset_once.jpg", body, faults=["reset"])
    server.add("/art/f/moved.jpg", status=302, headers={"Location": "/art/g/ok0.jpg"})
    # and those that must fail, each with its reason
    server.add("/art/x/always500.jpg", body, always="500")
    server.add("/art/x/always_stall.jpg", body, always=STALL)
    server.add("/art/x/always_trunc.jpg", body, always="truncate")
    server.add("/art/x/html.jpg", always="html")
    server.add("/art/x/html_as_jpeg.jpg", b"<html><body>Not found</body></html>")
    server.add("/art/x/cut_jpeg.jpg", body[: len(body) // 2])  # consistent length, broken image
    server.add("/art/x/loop.jpg", status=302, headers={"Location": "/art/x/loop.jpg"})
    paths = list(server.routes) + ["/art/x/missing.jpg"]
    out = tmp_path / "out"
    summary = download_images([server.url(p) for p in paths], out, FAST, progress=False)
    records = by_path(summary)

    expected_failures = {
        "x/always500.jpg": "http_500", "x/always_stall.jpg": "timeout", "x/always_trunc.jpg": "truncated",
        "x/html.jpg": "content_type", "x/html_as_jpeg.jpg": "not_an_image", "x/cut_jpeg.jpg": "corrupt",
        "x/loop.jpg": "redirects", "x/missing.jpg": "http_404",
    }
    assert {p: r.reason for p, r in records.items() if r.status == "failed"} == expected_failures
    assert summary.failed == len(expected_failures) and summary.ok == len(paths) - len(expected_failures)
    # every good image is present, valid and exactly what the server sent
    for path, record in records.items():
        dest = out / path
        if record.status == "ok":
            source = server.routes["/art/" + path].body or good["/art/g/ok0.jpg"]
            assert dest.read_bytes() == source and record.bytes == len(source)
            load_image(dest)
        else:
            assert not dest.exists()
    assert temp_files(out) == []
    # retries: transient faults retried, permanent ones not, the hopeless ones to the limit
    assert records["f/e500.jpg"].attempts == 3 and server.hits["/art/f/e500.jpg"] == 3
    assert server.hits["/art/x/always500.jpg"] == FAST.retries + 1 == records["x/always500.jpg"].attempts
    for permanent in ("html", "html_as_jpeg", "cut_jpeg", "missing"):
        assert server.hits[f"/art/x/{permanent}.jpg"] == 1
    for once in ("stall_once", "trunc_once", "reset_once", "r429", "r429date"):
        assert records[f"f/{once}.jpg"].status == "ok" and records[f"f/{once}.jpg"].attempts == 2
    # Retry-After honoured (seconds and HTTP-date)
    first, second = server.times["/art/f/r429.jpg"]
    assert second - first >= 0.95
    first, second = server.times["/art/f/r429date.jpg"]
    assert second - first >= 0.95  # an HTTP-date has whole seconds: "now + 2 s" is 1 to 2 s away
    # polite: a User-Agent naming Vasari, its version and the project URL
    assert server.user_agents == {f"Vasari/{__version__} (+{PROJECT_URL}; image downloader)"}
    # the failures are listed with their reasons, ready to retry; the manifest has every job
    with (out / "failed.csv").open() as f:
        failed = {row["path"]: row["reason"] for row in csv.DictReader(f)}
    assert failed == expected_failures
    assert {j.path for j in failed_jobs(out)} == set(expected_failures)
    manifest = read_download_manifest(out)
    assert set(manifest) == set(records)
    assert all(len(m["sha256"]) == 64 for m in manifest.values() if m["status"] == "ok")
    assert summary.reasons("failed")["http_404"] == 1


def test_rerun_skips_done_and_refetches_damaged(server, tmp_path):
    urls = [server.add(f"/art/r/img{i}.jpg", make_image(seed=i)) for i in range(6)]
    server.add("/art/r/flaky.jpg", make_image(seed=7), always="503")
    urls.append(server.url("/art/r/flaky.jpg"))
    out = tmp_path / "out"
    first = download_images(urls, out, FAST, progress=False)
    assert (first.ok, first.failed) == (6, 1)

    (out / "r/img0.jpg").unlink()  # lost
    (out / "r/img1.jpg").write_bytes((out / "r/img1.jpg").read_bytes()[:100])  # damaged
    server.routes["/art/r/flaky.jpg"].always = None  # the server recovered
    hits = dict(server.hits)
    second = download_images(urls, out, FAST, progress=False)
    records = by_path(second)
    assert {p for p, r in records.items() if r.status == "ok"} == {"r/img0.jpg", "r/img1.jpg", "r/flaky.jpg"}
    assert {p for p, r in records.items() if r.status == "skipped"} == {f"r/img{i}.jpg" for i in range(2, 6)}
    for i in range(2, 6):
        assert server.hits[f"/art/r/img{i}.jpg"] == hits[f"/art/r/img{i}.jpg"] == 1
    assert not (out / "failed.csv").exists()
    load_image(out / "r/img1.jpg")

    # verify=True catches a same-size change that the size check cannot see
    data = bytearray((out / "r/img2.jpg").read_bytes())
    data[-3] ^= 0xFF
    (out / "r/img2.jpg").write_bytes(bytes(data))
    third = download_images(urls, out, replace(FAST, verify=True), progress=False)
    assert [r.path for r in third.records if r.status == "ok"] == ["r/img2.jpg"]
    assert (out / "r/img2.jpg").read_bytes() == server.routes["/art/r/img2.jpg"].body


def test_existing_valid_file_is_adopted_and_duplicates_skipped(server, tmp_path):
    url = server.add("/art/a/one.jpg", make_image(seed=1))
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a/one.jpg").write_bytes(make_image(seed=1))  # e.g. killed between rename and manifest line
    summary = download_images([url, url], out, FAST, progress=False)
    assert [(r.status, r.reason) for r in summary.records] == [("skipped", "existing"), ("skipped", "duplicate")]
    assert server.hits["/art/a/one.jpg"] == 0
    assert read_download_manifest(out)["a/one.jpg"]["status"] == "ok"


def test_interrupted_run_resumes_where_it_stopped(server, tmp_path):
    """A folder as a killed run leaves it, built by hand; each resume rule has its own file."""
    bodies = {name: make_image(seed=i) for i, name in enumerate(
        ("done", "resized", "failed", "failed_present", "emptied", "partial", "adopted", "broken", "new"))}
    urls = {name: server.add(f"/art/r/{name}.jpg", body) for name, body in bodies.items()}
    out = tmp_path / "out"
    (out / "r").mkdir(parents=True)

    def line(name: str, status: str, body: bytes = b"") -> str:
        return json.dumps({"url": urls[name], "path": f"r/{name}.jpg", "status": status,
                           "reason": "" if status == "ok" else "http_503", "bytes": len(body),
                           "sha256": hashlib.sha256(body).hexdigest() if body else "", "attempts": 1}) + "\n"

    (out / "r/done.jpg").write_bytes(bodies["done"])  # recorded, right size: skipped without a request
    (out / "r/resized.jpg").write_bytes(make_image(120, 90, seed=50))  # recorded, size differs: fetched again
    (out / "r/failed_present.jpg").write_bytes(bodies["failed_present"])  # a retry renamed, killed before its line
    (out / "r/emptied.jpg").write_bytes(b"")  # 0 bytes, like the 0 of its failed record: not done for that
    (out / "r/partial.jpg.tmp-4242-0a1b2c").write_bytes(bodies["partial"][:100])  # a body cut by the kill
    (out / "r/adopted.jpg").write_bytes(bodies["adopted"])  # renamed into place, killed before its line
    (out / "r/broken.jpg").write_bytes(bodies["broken"][:200])  # not a valid image: fetched again
    (out / "manifest.jsonl").write_text(line("done", "ok", bodies["done"]) + line("resized", "ok", bodies["resized"])
                                        + line("failed", "failed") + line("failed_present", "failed")
                                        + line("emptied", "failed"))
    summary = download_images(list(urls.values()), out, FAST, progress=False)

    assert {r.path: (r.status, r.reason) for r in summary.records} == {
        "r/done.jpg": ("skipped", "done"), "r/resized.jpg": ("ok", ""), "r/failed.jpg": ("ok", ""),
        "r/failed_present.jpg": ("skipped", "existing"), "r/emptied.jpg": ("ok", ""),
        "r/partial.jpg": ("ok", ""), "r/adopted.jpg": ("skipped", "existing"), "r/broken.jpg": ("ok", ""),
        "r/new.jpg": ("ok", "")}
    assert {name: server.hits[f"/art/r/{name}.jpg"] for name in bodies} == {
        "done": 0, "resized": 1, "failed": 1, "failed_present": 0, "emptied": 1, "partial": 1, "adopted": 0, "broken": 1, "new": 1}
    assert summary.stale_removed == 1 and temp_files(out) == []
    for name, body in bodies.items():
        assert (out / f"r/{name}.jpg").read_bytes() == body, name
    manifest = read_download_manifest(out)
    assert {m["path"]: (m["status"], m["bytes"]) for m in manifest.values()} == {
        f"r/{name}.jpg": ("ok", len(body)) for name, body in bodies.items()}
    assert not (out / "failed.csv").exists()
    again = download_images(list(urls.values()), out, FAST, progress=False)  # nothing left to do
    assert [(r.status, r.reason) for r in again.records] == [("skipped", "done")] * len(bodies)
    assert sum(server.hits.values()) == 6


def test_long_names_and_unwritable_folders_fail_alone(server, tmp_path):
    """Before: one name over 255 bytes with its temp suffix (or a file where a folder must go)
    ended the whole run, without failed.csv, because the clean-up raised the same error again."""
    urls = [server.add(f"/art/n/ok{i}.jpg", make_image(seed=i)) for i in range(4)]
    out = tmp_path / "out"
    (out / "n").mkdir(parents=True)
    (out / "n/file.jpg").write_bytes(b"a file where a folder must go")
    bad = [DownloadJob(urls[0], "n/" + "x" * 300 + ".jpg"), DownloadJob(urls[1], "n/" + "y" * 240 + ".jpg"),
           DownloadJob(urls[2], "n/file.jpg/inner.jpg")]
    jobs = [DownloadJob(u, f"n/ok{i}.jpg") for i, u in enumerate(urls)] + bad
    summary = download_images(jobs, out, FAST, progress=False)
    assert [(r.status, r.reason) for r in summary.records] == [("ok", "")] * 4 + [("failed", "bad_path")] * 2 + [
        ("failed", "write")]
    assert "over the 231-byte limit" in summary.records[4].detail and "n/file.jpg" in summary.records[6].detail
    with (out / "failed.csv").open() as f:
        assert {row["path"]: row["reason"] for row in csv.DictReader(f)} == {
            bad[0].path: "bad_path", bad[1].path: "bad_path", bad[2].path: "write"}
    assert temp_files(out) == []


def test_cli_run_with_a_too_long_name_finishes_the_others_and_writes_failed_csv(server, tmp_path):
    """Before: exit 2 (the run aborted), the other jobs cancelled and no failed.csv."""
    from vasari.cli import app

    urls = [server.add(f"/art/c/ok{i}.jpg", make_image(seed=i)) for i in range(3)]
    table = tmp_path / "jobs.csv"
    rows = [(u, f"c/ok{i}.jpg") for i, u in enumerate(urls)] + [(urls[0], "c/" + "z" * 260 + ".jpg")]
    table.write_text("url,dest\n" + "".join(f"{u},{p}\n" for u, p in rows))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["download", str(table), "--url-column", "url", "--path-column", "dest", "--out",
                                      str(out), "--rate", "off", "--no-progress"], env=LOCAL_ENV)
    assert result.exit_code == 1, result.output  # some failed; not 2 (the run itself did not fail)
    assert all((out / f"c/ok{i}.jpg").read_bytes() == server.routes[f"/art/c/ok{i}.jpg"].body for i in range(3))
    with (out / "failed.csv").open() as f:
        assert [(row["path"], row["reason"]) for row in csv.DictReader(f)] == [(rows[3][1], "bad_path")]


def test_long_url_names_download_under_a_shortened_name(server, tmp_path):
    url = server.add("/art/l/" + "n" * 300 + ".jpg", make_image(seed=2))
    summary = download_images([url], tmp_path / "out", FAST, progress=False)
    (record,) = summary.records
    assert record.status == "ok" and record.path == url_to_path(url) and len(record.path.encode()) < 300
    assert (tmp_path / "out" / record.path).read_bytes() == server.routes["/art/l/" + "n" * 300 + ".jpg"].body


def test_resize_decides_by_the_original_size(server, tmp_path):
    """A 200 px JPEG checked at reduced scale decodes at 100 px; it must still be resized to 100."""
    url = server.add("/art/b/square.jpg", make_image(200, 200, seed=6))
    summary = download_images([url], tmp_path / "out", replace(FAST, max_side=100), progress=False)
    assert summary.ok == 1
    with Image.open(tmp_path / "out/b/square.jpg") as img:
        assert (img.format, img.size) == ("JPEG", (100, 100))


def test_16bit_png_downloads_unchanged(server, tmp_path):
    body = io.BytesIO()
    Image.fromarray(np.linspace(0, 65535, 600 * 400).astype(np.uint16).reshape(400, 600)).save(body, "PNG")
    url = server.add("/art/w/deep.png", body.getvalue(), content_type="image/png")
    summary = download_images([url], tmp_path / "out", FAST, progress=False)
    assert summary.ok == 1 and (tmp_path / "out/w/deep.png").read_bytes() == body.getvalue()


def test_resize_on_save_keeps_format(server, tmp_path):
    big_jpeg = server.add("/art/b/big.jpg", make_image(400, 300, seed=3))
    big_png = server.add("/art/b/big.png", make_image(300, 500, "PNG", seed=4), content_type="image/png")
    small = server.add("/art/b/small.jpg", make_image(80, 60, seed=5))
    out = tmp_path / "out"
    config = replace(FAST, max_side=100)
    summary = download_images([big_jpeg, big_png, small], out, config, progress=False)
    assert summary.ok == 3
    sizes = {}
    for name in ("big.jpg", "big.png", "small.jpg"):
        with Image.open(out / "b" / name) as img:
            sizes[name] = (img.format, img.size)
    assert sizes == {"big.jpg": ("JPEG", (100, 75)), "big.png": ("PNG", (60, 100)), "small.jpg": ("JPEG", (80, 60))}
    assert (out / "b/small.jpg").read_bytes() == server.routes["/art/b/small.jpg"].body  # untouched when small
    manifest = read_download_manifest(out)
    assert manifest["b/big.jpg"]["bytes"] == (out / "b/big.jpg").stat().st_size


def test_rate_limit_per_host(server, tmp_path):
    urls = [server.add(f"/art/p/i{i}.jpg", make_image(seed=i)) for i in range(8)]
    download_images(urls, tmp_path / "out", replace(FAST, rate=20.0), progress=False)
    starts = sorted(t for ts in server.times.values() for t in ts)
    assert starts[-1] - starts[0] >= 7 / 20 - 0.03


def test_stale_temps_removed_lock_and_torn_manifest(server, tmp_path):
    url = server.add("/art/s/x.jpg", make_image(seed=1))
    out = tmp_path / "out"
    (out / "s").mkdir(parents=True)
    (out / "s/x.jpg.tmp-999999").write_bytes(b"partial")  # an earlier version's temp name
    (out / "s/y.jpg.tmp-999999-0a1b2c").write_bytes(b"partial")  # fileio.temp_path's
    (out / "failed.csv.tmp-999999-0a1b2c").write_text("url,path\n")
    (out / "s/keep.tmp-notes.txt").write_text("not ours")
    (out / "manifest.jsonl").write_text('{"url": "u", "path": "s/old.jpg", "status": "failed"}\n{"url": "u", "pa')
    summary = download_images([url], out, FAST, progress=False)
    assert summary.stale_removed == 3 and summary.ok == 1
    assert temp_files(out) == [out / "s/keep.tmp-notes.txt"]
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["s/old.jpg", "s/x.jpg"]  # torn line cut off
    # a second downloader on the same folder is refused while the first holds it
    from vasari.download import RunLock

    held = RunLock(out)
    try:
        with pytest.raises(DownloadError, match="in use"):
            download_images([url], out, FAST, progress=False)
    finally:
        held.release()


def test_csv_jobs_and_path_traversal(server, tmp_path):
    good = server.add("/art/c/good.jpg", make_image(seed=1))
    table = tmp_path / "cat.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["title", "image", "dest"])
        writer.writerow(["good", good, "mine/good.jpg"])
        writer.writerow(["evil", good, "../../evil.jpg"])
        writer.writerow(["no url", "", "x.jpg"])
    jobs = jobs_from_csv(table, path_column="dest")  # URL column found from its values
    assert jobs == [DownloadJob(good, "mine/good.jpg"), DownloadJob(good, "../../evil.jpg")]
    out = tmp_path / "deep" / "out"
    summary = download_images(jobs, out, FAST, progress=False)
    assert [(r.status, r.reason) for r in summary.records] == [("ok", ""), ("failed", "bad_path")]
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "deep" / "evil.jpg").exists()
    with pytest.raises(DownloadError, match="no column"):
        jobs_from_csv(table, url_column="nope")
    (tmp_path / "plain.csv").write_text("title,year\na,1500\n")
    with pytest.raises(DownloadError, match="no URL column"):
        jobs_from_csv(tmp_path / "plain.csv")


def test_cli_reports_failures_and_retries_them(server, tmp_path):
    from vasari.cli import app

    urls = [server.add(f"/art/k/ok{i}.jpg", make_image(seed=i)) for i in range(3)]
    server.add("/art/k/down.jpg", make_image(seed=8), always="500")
    table = tmp_path / "urls.csv"
    table.write_text("url,title\n" + "".join(f"{u},t\n" for u in urls + [server.url("/art/k/down.jpg")]))
    out = tmp_path / "out"
    args = ["download", str(table), "--url-column", "url", "--out", str(out), "--rate", "off", "--retries", "1",
            "--backoff", "0.01", "--timeout", "5", "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(app, args, env=LOCAL_ENV)
    assert first.exit_code == 1, first.output
    assert "http_500" in first.output and "--retry-failed" in first.output
    server.routes["/art/k/down.jpg"].always = None
    retry = runner.invoke(app, ["download", "--retry-failed", str(out), "--rate", "off", "--no-progress"], env=LOCAL_ENV)
    assert retry.exit_code == 0, retry.output
    assert server.hits["/art/k/ok0.jpg"] == 1 and (out / "k/down.jpg").exists() and not (out / "failed.csv").exists()
    nothing = runner.invoke(app, ["download", "--retry-failed", str(out)], env=LOCAL_ENV)
    assert nothing.exit_code == 0 and "nothing to retry" in nothing.output
    bad = runner.invoke(app, ["download", str(tmp_path / "missing.csv"), "--url-column", "url", "--out", str(out)])
    assert bad.exit_code == 2 and "missing.csv" in bad.output


# ---------------------------------------------------------------------------- kill and resume


def test_sigkill_midway_then_resume_refetches_nothing_done(tmp_path):
    n = 40
    with FaultServer(latency=0.05, lifetime=60) as server:
        urls = [server.add(f"/art/k/img{i:02d}.jpg", make_image(160, 120, seed=i)) for i in range(n)]
        table = tmp_path / "urls.csv"
        table.write_text("url\n" + "\n".join(urls) + "\n")
        out = tmp_path / "out"
        cmd = [sys.executable, "-c", "from vasari.cli import app; app()", "download", str(table), "--url-column", "url",
               "--out", str(out), "--concurrency", "2", "--rate", "off", "--no-progress"]
        proc = subprocess.Popen(cmd, env=LOCAL_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        manifest = out / "manifest.jsonl"
        while not (manifest.exists() and manifest.read_text().count('"ok"') >= 8):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the download never got going"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stderr.close()

        recorded = {p for p, r in read_download_manifest(out).items() if r["status"] == "ok"}
        on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
        assert 8 <= len(recorded) < n and recorded <= on_disk
        for path in on_disk:  # zero corrupt files under a final name, even right after the kill
            load_image(out / path)
        hits = dict(server.hits)

        rerun = subprocess.run(cmd, env=LOCAL_ENV, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        for path in on_disk:  # nothing completed before the kill was fetched again
            assert server.hits[f"/art/{path}"] == hits[f"/art/{path}"] == 1, path
        for i in range(n):
            path = out / f"k/img{i:02d}.jpg"
            assert path.read_bytes() == server.routes[f"/art/k/img{i:02d}.jpg"].body
        assert temp_files(out) == []
        assert {r["status"] for r in read_download_manifest(out).values()} == {"ok"}


def test_cli_reads_a_wga_catalog_mapping_pages_to_images(server, tmp_path):
    from vasari.cli import app

    rows = [("ABBATE, Niccolò dell'", "Stag Hunt", "a/abbate/deerhunt"), ("ACHENBACH, Oswald", "Fireworks", "a/achenbac/firework")]
    for i, (_, _, stem) in enumerate(rows):
        server.add(f"/art/{stem}.jpg", make_image(seed=i))
        server.add(f"/html/{stem}.html", always="html")
    table = tmp_path / "catalog.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["AUTHOR", "BORN-DIED", "TITLE", "DATE", "TECHNIQUE", "LOCATION", "URL", "FORM", "TYPE", "SCHOOL",
                         "TIMEFRAME"])
        for author, title, stem in rows:
            writer.writerow([author, "", title, "1875", "Oil on canvas", "Rome", server.url(f"/html/{stem}.html"),
                             "painting", "landscape", "Italian", "1851-1900"])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["download", f"wga:{table}", "--out", str(out), "--rate", "off"], env=LOCAL_ENV)
    assert result.exit_code == 0, result.output
    assert "2 image URLs" in result.output
    for _, _, stem in rows:
        assert (out / f"{stem}.jpg").read_bytes() == server.routes[f"/art/{stem}.jpg"].body
        assert server.hits[f"/html/{stem}.html"] == 0


def test_shared_wga_catalogs_give_image_urls_and_safe_paths(shared_data):
    from rich.console import Console

    from vasari.cli.download import _catalog_jobs

    jobs = _catalog_jobs(f"wga:{shared_data / 'wga' / 'catalog.csv'}", Console(quiet=True))
    assert DownloadJob("http://www.wga.hu/art/a/abbate/deerhunt.jpg", "a/abbate/deerhunt.jpg") in jobs
    assert len(jobs) >= 50 and len({j.path for j in jobs}) == len(jobs)
    for job in jobs:  # no network: only the mapping and the destinations are checked
        assert job.url.startswith("http") and job.url.endswith(".jpg") and "/art/" in job.url
        safe_destination(Path("/tmp/out"), job.path)


def test_manifest_reading_skips_bad_lines_keeps_the_latest_record_and_ignores_a_torn_tail(tmp_path):
    from vasari.download.manifest import _load_manifest

    lines = [
        json.dumps({"path": "a.jpg", "status": "failed"}),
        "{not json",                                   # a damaged line in the middle: skipped
        json.dumps(["a list", "not a record"]),        # valid JSON that is no record: skipped
        json.dumps({"status": "ok"}),                  # a record without a path: skipped
        json.dumps({"path": "b.jpg", "status": "ok"}),
        json.dumps({"path": "a.jpg", "status": "ok"}),  # the later record of a.jpg wins
    ]
    whole = ("\n".join(lines) + "\n").encode()
    torn = json.dumps({"path": "c.jpg", "status": "ok"}).encode()[:12]  # killed mid-write: no newline
    (tmp_path / "manifest.jsonl").write_bytes(whole + torn)
    latest, end, size = _load_manifest(tmp_path / "manifest.jsonl")
    assert {p: r["status"] for p, r in latest.items()} == {"a.jpg": "ok", "b.jpg": "ok"}
    assert (end, size) == (len(whole), len(whole) + len(torn))  # appending resumes after the last whole line
    assert read_download_manifest(tmp_path) == latest
    assert _load_manifest(tmp_path / "absent.jsonl") == ({}, 0, 0)


def test_failed_jobs_of_a_folder_without_failed_csv_is_empty(tmp_path):
    assert failed_jobs(tmp_path) == []
    # the destination is the one recorded, not one derived from the URL again
    (tmp_path / "failed.csv").write_text("url,path,reason\nhttp://127.0.0.1:9/x.jpg,saved/y.jpg,http_404\n")
    assert failed_jobs(tmp_path) == [DownloadJob(url="http://127.0.0.1:9/x.jpg", path="saved/y.jpg")]
