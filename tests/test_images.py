"""Decoding hostile inputs: high-bit-depth images in bounded memory, bombs, FIFOs and devices."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from vasari.core.images import DecodeBudget, ImageError, ImageLimits, load_image

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def reference_rgb(data: bytes, min_side: int | None) -> np.ndarray:
    """How 8-bit images were always decoded: draft (JPEG), load, EXIF rotation, RGB."""
    img = Image.open(io.BytesIO(data))
    if min_side and img.format == "JPEG":
        img.draft("RGB", (min_side, min_side))
    img = ImageOps.exif_transpose(img)
    return np.asarray(img.convert("RGB"))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` (8-bit grey) with one empty IDAT: Pillow reads the size only."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------- 8-bit stays bit-identical


def test_normal_8bit_images_decode_to_the_same_pixels_as_before():
    rng = np.random.default_rng(11)
    rgb = Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the EXIF transpose path
    samples = {
        "jpeg": encode(rgb, "JPEG", quality=90), "png": encode(rgb, "PNG"), "grey_png": encode(rgb.convert("L"), "PNG"),
        "palette_png": encode(rgb.convert("P"), "PNG"), "cmyk_jpeg": encode(rgb.convert("CMYK"), "JPEG"),
        "rotated_jpeg": encode(rgb, "JPEG", exif=exif),
    }
    for name, data in samples.items():
        for min_side in (None, 40):
            got = np.asarray(load_image(data, min_side=min_side))
            want = reference_rgb(data, min_side)
            assert got.shape == want.shape and np.array_equal(got, want), (name, min_side)
    assert np.asarray(load_image(samples["rotated_jpeg"])).shape == (130, 90, 3)


def test_shared_paintings_decode_to_the_same_pixels_as_before(shared_data):
    files = sorted((shared_data / "louvre").rglob("*.jp*g"))[:12]
    assert files, "no Louvre JPEGs in ../shared/data"
    for path in files:
        for min_side in (None, 234):
            got = np.asarray(load_image(path, min_side=min_side))
            assert np.array_equal(got, reference_rgb(path.read_bytes(), min_side)), (path, min_side)


# ---------------------------------------------------------------------------- high bit depth


def test_16bit_values_scale_like_before_and_reduce_with_min_side():
    values = np.array([[0, 300, 1000, 32768, 65535]], dtype=np.uint16)
    img = load_image(encode(Image.fromarray(values), "PNG"))
    # v / 65535 * 255, truncated: 1.17 -> 1, 3.89 -> 3, 127.5 -> 127
    assert img.mode == "RGB" and np.asarray(img)[0, :, 0].tolist() == [0, 1, 3, 127, 255]
    wide = np.full((300, 400), 65535, dtype=np.uint16)
    wide[:, :200] = 0
    small = load_image(encode(Image.fromarray(wide), "PNG"), min_side=100)
    # reduced by 3 (keeps the short side >= 100): 400x300 -> ceil(400/3) x 100
    assert small.size == (134, 100)
    grey = np.asarray(small)[..., 0]
    assert (grey[:, :66] == 0).all() and (grey[:, 67:] == 255).all()  # column 66 straddles the edge


def test_32bit_integer_image_uses_the_16bit_range_when_values_exceed_255():
    values = np.array([[-7, 0, 600, 70000]], dtype=np.int32)
    img = load_image(encode(Image.fromarray(values, "I"), "TIFF"))
    # 600 / 65535 * 255 = 2.33 -> 2; below 0 and above 65535 are clipped
    assert np.asarray(img)[0, :, 0].tolist() == [0, 0, 2, 255]


@pytest.fixture(scope="module")
def wide_png(tmp_path_factory) -> Path:
    """A 7999x7999 16-bit greyscale ramp: about 140 KB on disk, 128 MB of samples decoded."""
    path = tmp_path_factory.mktemp("wide") / "wide16.png"
    ramp = np.linspace(0, 65535, 7999).astype(np.uint16)
    Image.fromarray(np.broadcast_to(ramp, (7999, 7999)).copy()).save(path)
    return path


PEAK_CHILD = r"""
import json, sys, threading
from vasari.core.images import load_image
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
data = open(sys.argv[1], "rb").read()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # peak RSS (VmHWM) starts again from here
base = status("VmRSS:")
out = [None] * 3
threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, load_image(data, min_side=234))) for i in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"peak": status("VmHWM:") - base, "idle": status("VmRSS:") - base, "sizes": [im.size for im in out]}))
"""


def test_three_16bit_7999px_pngs_at_once_stay_under_600_mb(wide_png):
    """The old decoder made full-image float64 copies: +4.9 GB peak for these three here."""
    run = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(wide_png)], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["peak"] < 600e6, result
    assert result["idle"] < 300e6, result  # the decodes' memory went back to the system
    assert result["sizes"] == [[236, 236]] * 3  # reduced by 33, both sides >= 234


def test_decoded_bytes_limit_refuses_wide_images_the_pixel_limit_lets_through():
    data = encode(Image.fromarray(np.zeros((100, 100), dtype=np.int32), "I"), "TIFF")
    limits = ImageLimits(max_pixels=10_000, max_decoded_bytes=30_000)  # 10,000 pixels x 4 bytes = 40,000
    with pytest.raises(ImageError, match=r"decodes to 40000 bytes, over the 30000-byte limit") as info:
        load_image(data, limits=limits)
    assert info.value.code == "decompression_bomb"
    grey = encode(Image.fromarray(np.zeros((100, 100), dtype=np.uint8)), "PNG")
    assert load_image(grey, limits=limits).size == (100, 100)  # 1 byte per pixel fits


def test_decode_budget_queues_decodes_that_would_exceed_it():
    budget = DecodeBudget(100)
    acquired = threading.Event()

    def second() -> None:
        with budget.hold(60):
            acquired.set()

    with budget.hold(60):
        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 30
        while budget.waiting != 1:
            assert time.monotonic() < deadline, "the second decode never asked the budget"
            time.sleep(0.001)
        assert not acquired.is_set() and budget.in_use == 60
    thread.join(timeout=30)
    assert acquired.is_set() and budget.in_use == 0
    with budget.hold(500):  # larger than the whole budget: runs alone, counted as the whole budget
        assert budget.in_use == 100


# ---------------------------------------------------------------------------- bombs


@pytest.mark.parametrize("side", [10_000, 20_000])  # Pillow warns above 89 M pixels and refuses above 179 M
def test_bomb_message_quotes_vasaris_limit_not_pillows(side):
    with pytest.raises(ImageError, match=r"exceeds the 64000000-pixel limit") as info:
        load_image(png_header(side, side))
    assert info.value.code == "decompression_bomb"
    assert "178956970" not in str(info.value) and "89478485" not in str(info.value)


# ---------------------------------------------------------------------------- files that are not files


def test_fifo_device_and_folder_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a character device"), (tmp_path, "a folder")):
        with pytest.raises(ImageError, match=rf"not a regular file \({kind}\)") as info:
            load_image(path)
        assert info.value.code == "unreadable" and str(path) in str(info.value)


def test_file_over_the_byte_limit_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.jpg"
    with big.open("wb") as f:
        f.truncate(2_000_001)  # sparse: nothing is written, and nothing must be read
    with pytest.raises(ImageError, match=r"big.jpg: 2000001 bytes exceeds the 2000000-byte limit") as info:
        load_image(big, limits=ImageLimits(max_bytes=2_000_000))
    assert info.value.code == "too_large"


def test_cli_predict_refuses_a_fifo_and_dev_zero(tmp_path):
    """Before: the FIFO blocked the CLI for ever and /dev/zero was read until memory ran out."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    good = tmp_path / "good.jpg"
    good.write_bytes(encode(Image.fromarray(np.random.default_rng(3).integers(0, 256, (80, 96, 3), dtype=np.uint8)), "JPEG"))
    limit_memory = "import resource; resource.setrlimit(resource.RLIMIT_DATA, (4 << 30, 4 << 30)); "
    run = subprocess.run([sys.executable, "-c", limit_memory + "from vasari.cli import app; app()", "predict", str(fifo),
                          "/dev/zero", str(good), "--json"], capture_output=True, text=True, env=ENV, timeout=60)
    assert run.returncode == 1, run.stderr  # one or more images failed, the good one was predicted
    results = {r["image"]: r for r in json.loads(run.stdout)}
    assert results[str(fifo)]["error"]["message"] == f"{fifo}: not a regular file (a FIFO); refusing to read it"
    assert results["/dev/zero"]["error"]["message"] == "/dev/zero: not a regular file (a character device); refusing to read it"
    assert "predictions" in results[str(good)]
