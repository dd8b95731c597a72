"""Retrieval: nearest-neighbour artist accuracy, artist affinity calibration, novelty detection,
and search speed, on ../shared/data with the default backbone (cached embeddings).

    python benchmarks/retrieval.py [DATA_DIR] [--cache DIR]

1. artists7 (7 artists, 1,039 paintings): each painting queries the rest less its own
   near-duplicate group. Nearest-neighbour artist top-1; affinity (softmax over artists of
   the mean top-3 similarity) top-1 / top-3, log-loss and expected calibration error, with
   the temperature fitted on one half of the groups and measured on the other (2-fold).
2. Novelty: a gallery of every painting source (louvre, wga, wga_thumbs paintings, aic,
   artists7, wikiart), 10% of the groups held out. The threshold is fitted by
   leave-group-out on the gallery (99th percentile). Two variants: distance only, and with
   references of known non-paintings (the wga_thumbs non-painting rows of half of the
   authors; the other half is tested). Reported: false alarms on the held-out paintings
   and on the Louvre museum photos (whole and cropped), detection of the other authors'
   wga_thumbs non-paintings (per FORM), two real photos that are not paintings (sklearn's
   sample images), and generated blanks, noise, gradients, screenshots, documents, charts.
   Also the heads' own detector (heads trained on the gallery, threshold at 1% of its val)
   and the predictor's rule: novel when the index *or* the heads' detector says so.
3. Search speed: exact numpy search on the gallery and on a random 100k x 256 gallery;
   FAISS (IndexFlatIP) when installed, checked to return the same neighbours.

Writes benchmarks/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from vasari.catalog import Catalog, ParseReport, read_catalog, read_wga, shared_catalogs
from vasari.dataset import DatasetConfig, build_dataset
from vasari.features import Embedder, EmbeddingCache
from _provenance import write_result
from vasari.core.images import load_image
from vasari.gallery import GalleryIndex, IndexConfig
from vasari.gallery.search import _faiss
from vasari.inference.photo import find_painting
from vasari.heads.train import HeadConfig, Heads, train_heads
from vasari.core.paths import shared_data_dir


def generated_non_paintings(seed: int = 0) -> dict[str, list[Image.Image]]:
    """Pictures that are not paintings: blanks, noise, gradients, screenshots, documents, charts."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Image.Image]] = {k: [] for k in ("blank", "noise", "gradient", "screenshot", "document", "chart")}
    for c in [(255, 255, 255), (0, 0, 0), (128, 128, 128)] + [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(7)]:
        out["blank"].append(Image.new("RGB", (400, 300), c))
    for i in range(10):
        a = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8) if i % 2 == 0 else \
            np.repeat(rng.integers(0, 256, size=(300, 400, 1), dtype=np.uint8), 3, axis=2)
        out["noise"].append(Image.fromarray(a))
    for i in range(10):
        c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, 400)[None, :, None] if i % 2 == 0 else np.linspace(0, 1, 300)[:, None, None]
        a = (c1 * (1 - t) + c2 * t) * np.ones((300, 400, 1))
        out["gradient"].append(Image.fromarray(a.astype(np.uint8)))
    for i in range(10):
        dark = i % 3 == 0
        img = Image.new("RGB", (640, 400), (30, 30, 30) if dark else (245, 245, 245))
        d = ImageDraw.Draw(img)
        d.rectangle([0, 0, 640, 28], fill=(60, 90, 160))
        d.rectangle([0, 28, 140, 400], fill=(50, 50, 50) if dark else (225, 228, 235))
        for r in range(14):
            y = 40 + r * 24
            d.text((150, y), "".join(chr(int(c)) for c in rng.integers(97, 123, int(rng.integers(20, 60)))),
                   fill=(220, 220, 220) if dark else (20, 20, 20))
        for _ in range(3):
            x, y = int(rng.integers(160, 560)), int(rng.integers(60, 340))
            d.rectangle([x, y, x + 70, y + 22], outline=(90, 120, 200), width=2)
        out["screenshot"].append(img)
    for i in range(10):
        img = Image.new("RGB", (420, 594), (252, 250, 245))
        d = ImageDraw.Draw(img)
        for r in range(40):
            words = " ".join("".join(chr(int(c)) for c in rng.integers(97, 123, int(rng.integers(2, 9)))) for _ in range(8))
            d.text((30, 30 + r * 13), words, fill=(10, 10, 10))
        out["document"].append(img)
    for i in range(10):
        img = Image.new("RGB", (500, 350), (255, 255, 255))
        d = ImageDraw.Draw(img)
        d.line([40, 310, 480, 310], fill=(0, 0, 0), width=2)
        d.line([40, 310, 40, 20], fill=(0, 0, 0), width=2)
        if i % 2 == 0:
            for b in range(8):
                h = int(rng.integers(20, 280))
                d.rectangle([55 + b * 52, 310 - h, 90 + b * 52, 310], fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
        else:
            pts = [(40 + x * 20, 310 - int(150 + 100 * np.sin(x / 3 + i) + rng.normal(0, 10))) for x in range(22)]
            d.line(pts, fill=(200, 30, 30), width=3)
        out["chart"].append(img)
    return out


def _groups(artworks, cache_dir: Path | None) -> dict[str, str]:
    config = DatasetConfig(first_year=0, last_year=9999, keep_undated=True, paintings_only=False, min_per_class=0,
                           stratify_on=None, val_fraction=0.0, test_fraction=0.0)
    ds = build_dataset([Catalog(artworks=list(artworks), report=ParseReport(source="bench"))], config,
                       progress=False, cache_dir=cache_dir)
    return {a.artwork_id: a.group for a in ds.artworks if a.group}


def _ece(prob: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (prob > lo) & (prob <= hi)
        if sel.any():
            total += sel.mean() * abs(prob[sel].mean() - correct[sel].mean())
    return float(total)


def bench_artists(embedder, cache, data: Path, console: Console, cache_dir: Path | None) -> dict:
    cat = read_catalog(f"kaggle:{data / 'artists7'}")
    arts = [a for a in cat.artworks if a.image]
    groups = _groups(arts, cache_dir)
    arts = [replace(a, group=groups.get(a.artwork_id, a.artwork_id)) for a in arts]
    feats = embedder.embed_paths([a.image for a in arts], cache=cache, progress=False).features
    index = GalleryIndex.build(feats, arts, embedder.spec, IndexConfig(), calibrate=False)
    rows, sims = index.leave_group_out(max_queries=len(index))
    y = np.array([a.artist for a in arts])
    nn = sims.argmax(axis=1)
    nn_top1 = float((y[nn] == y[rows]).mean())
    scores = index._artist_scores(sims)
    names = np.array(index.artists)
    target = np.array([list(names).index(a) for a in y[rows]])
    # 2-fold over groups: temperature fitted on one half, measured on the other
    g = index._groups()[rows]
    fold = (np.random.default_rng(0).permutation(g.max() + 1) % 2)[g]
    probs = np.zeros_like(scores)
    temps = []
    for f in (0, 1):
        fit = fold == f
        best_t, best = 0.05, np.inf
        for t in np.exp(np.linspace(np.log(0.002), np.log(1.0), 60)):
            z = scores[fit] / t
            z = z - z.max(1, keepdims=True)
            lp = z - np.log(np.exp(z).sum(1, keepdims=True))
            nll = -lp[np.arange(fit.sum()), target[fit]].mean()
            if nll < best:
                best_t, best = float(t), nll
        temps.append(best_t)
        z = scores[~fit] / best_t
        z = np.exp(z - z.max(1, keepdims=True))
        probs[~fit] = z / z.sum(1, keepdims=True)
    top = np.argsort(-probs, axis=1)
    top1 = float((top[:, 0] == target).mean())
    top3 = float((top[:, :3] == target[:, None]).any(axis=1).mean())
    nll = float(-np.log(probs[np.arange(len(target)), target] + 1e-12).mean())
    ece = _ece(probs.max(axis=1), top[:, 0] == target)
    res = {"works": len(arts), "groups": int(len(set(a.group for a in arts))), "artists": len(names),
           "nn_artist_top1": nn_top1, "affinity_top1": top1, "affinity_top3": top3, "affinity_nll": nll,
           "affinity_ece": ece, "temperatures": temps, "chance": float(np.bincount(target).max() / len(target))}
    console.print(f"artists7: nearest-neighbour artist top-1 {nn_top1:.3f}; affinity top-1 {top1:.3f}, top-3 {top3:.3f}, "
                  f"NLL {nll:.3f}, ECE {ece:.3f} (T={temps}); majority class {res['chance']:.3f}")
    return res


def heads_detector(feats: np.ndarray, arts: list) -> Heads:
    """Heads trained as a bundle's are (train rows + 10% of the groups as val), for their
    novelty detector: the predictor calls a picture novel when it *or* the index says so."""
    groups = np.array([a.group for a in arts])
    keys = sorted(set(groups))
    val_groups = np.random.default_rng(2).choice(keys, size=len(keys) // 10, replace=False)
    is_val = np.isin(groups, val_groups)
    labels = [a.type for a in arts]
    return train_heads(feats[~is_val], {"type": [t for t, v in zip(labels, is_val) if not v]}, None,
                       feats[is_val], {"type": [t for t, v in zip(labels, is_val) if v]}, None,
                       HeadConfig(tasks=("type",), year=False))


def bench_novelty(embedder, cache, data: Path, console: Console, cache_dir: Path | None) -> tuple[dict, GalleryIndex]:
    arts = [a for cat in shared_catalogs(data) for a in cat.artworks if a.image]
    seen, uniq = set(), []
    for a in arts:
        if a.artwork_id not in seen:
            seen.add(a.artwork_id)
            uniq.append(a)
    arts = uniq
    groups = _groups(arts, cache_dir)
    arts = [replace(a, group=groups.get(a.artwork_id, a.artwork_id)) for a in arts]
    feats = embedder.embed_paths([a.image for a in arts], cache=cache, progress=True).features
    ok = np.isfinite(feats).all(axis=1)
    arts = [a for a, k in zip(arts, ok) if k]
    feats = feats[ok]
    gkeys = sorted(set(a.group for a in arts))
    rng = np.random.default_rng(0)
    held_groups = set(rng.choice(gkeys, size=len(gkeys) // 10, replace=False).tolist())
    held = np.array([a.group in held_groups for a in arts])
    gallery = [a for a, h in zip(arts, held) if not h]

    # WGA non-paintings: half of the authors are references in the index, the other half tests
    neg = read_wga(data / "wga_thumbs" / "catalog.csv", source="wga_thumbs", form="not-painting")
    neg_arts = [a for a in neg.artworks if a.image]
    neg_feats = embedder.embed_paths([a.image for a in neg_arts], cache=cache, progress=False).features
    keep = np.isfinite(neg_feats).all(axis=1)
    forms = np.array([(a.extra or {}).get("form") or a.type or "?" for a in neg_arts])
    authors = sorted(set((a.extra or {}).get("author") or a.artwork_id for a in neg_arts))
    ref_authors = set(np.random.default_rng(1).permutation(authors)[: len(authors) // 2].tolist())
    is_ref = np.array([((a.extra or {}).get("author") or a.artwork_id) in ref_authors for a in neg_arts]) & keep
    is_test = ~is_ref & keep

    plain = GalleryIndex.build(feats[~held], gallery, embedder.spec, IndexConfig())
    index = GalleryIndex.build(feats[~held], gallery, embedder.spec, IndexConfig(),
                               negatives=neg_feats[is_ref], negative_labels=forms[is_ref].tolist())
    thr = index.calibration["novelty_threshold"]
    heads = heads_detector(feats[~held], gallery)
    rows: dict[str, dict] = {}

    def add(name: str, x: np.ndarray, kind: str) -> None:
        rows[name] = {"n": int(len(x)), "kind": kind}
        if not len(x):
            rows[name].update(dict.fromkeys(("flagged_distance_only", "flagged_with_references", "flagged_heads_only",
                                             "flagged_predictor_rule", "median_distance")))
            return
        by_index = index.is_novel(x)
        by_heads = heads.novelty.is_novel(heads.transform(x))
        rows[name].update({"flagged_distance_only": float(plain.is_novel(x).mean()),
                           "flagged_with_references": float(by_index.mean()),
                           "flagged_heads_only": float(by_heads.mean()),
                           "flagged_predictor_rule": float((by_index | by_heads).mean()),
                           "median_distance": float(np.median(index.nearest_distance(x)))})

    add("held-out paintings (10% of groups)", feats[held], "painting")
    per_source: dict[str, list[int]] = {}
    for i in np.nonzero(held)[0]:
        per_source.setdefault(arts[i].source, []).append(int(i))
    for src, idx in sorted(per_source.items()):
        add(f"  held-out {src}", feats[idx], "painting")

    photos_dir = data / "louvre" / "photos"
    photo_paths = sorted(p for p in photos_dir.rglob("*.jpg"))
    photo_imgs = [load_image(p) for p in photo_paths]
    add("Louvre museum photos, whole", embedder.embed_images(photo_imgs), "painting")
    add("Louvre museum photos, cropped", embedder.embed_images([find_painting(im).image for im in photo_imgs]), "painting")

    add("wga_thumbs non-paintings, authors not in the references", neg_feats[is_test], "not painting")
    for form in sorted(set(forms[is_test])):
        sel = is_test & (forms == form)
        if sel.sum() >= 5:
            add(f"  FORM {form}", neg_feats[sel], "not painting")

    from sklearn.datasets import load_sample_images

    samples = [Image.fromarray(a) for a in load_sample_images().images]
    add("real photos, not paintings (sklearn samples)", embedder.embed_images(samples), "not painting")
    gen = generated_non_paintings()
    all_gen = []
    for name, ims in gen.items():
        x = embedder.embed_images(ims)
        all_gen.append(x)
        add(f"  generated {name}", x, "not painting")
    add("generated non-paintings (all)", np.concatenate(all_gen), "not painting")

    # the distance-only trade-off at other quantiles of the gallery's leave-group-out distances
    rows_lgo, sims_lgo = plain.leave_group_out()
    d_gal = 1.0 - np.max(np.where(np.isfinite(sims_lgo), sims_lgo, -1.0), axis=1) * plain.explained[rows_lgo]
    curve = []
    held_d = plain.nearest_distance(feats[held])
    neg_d = plain.nearest_distance(neg_feats[is_test])
    gen_d = plain.nearest_distance(np.concatenate(all_gen))
    for q in (0.9, 0.95, 0.98, 0.99, 0.995):
        t = float(np.quantile(d_gal, q))
        curve.append({"quantile": q, "threshold": t, "held_out_paintings_flagged": float((held_d > t).mean()),
                      "wga_non_paintings_flagged": float((neg_d > t).mean()), "generated_flagged": float((gen_d > t).mean())})
    curve_table = Table(title="Distance-only threshold trade-off", title_justify="left")
    for col in ("quantile", "threshold", "held-out paintings", "WGA non-paintings", "generated"):
        curve_table.add_column(col, justify="right")
    for c in curve:
        curve_table.add_row(f"{c['quantile']:.3f}", f"{c['threshold']:.4f}", f"{c['held_out_paintings_flagged']:.3f}",
                            f"{c['wga_non_paintings_flagged']:.3f}", f"{c['generated_flagged']:.3f}")

    table = Table(title=(f"Novelty: share flagged as unknown (gallery {len(index)} works; distance threshold {thr:.3f}; "
                         f"{int(is_ref.sum())} non-painting references, margin {index.calibration.get('negative_margin', 0):.3f})"),
                  title_justify="left")
    table.add_column("queries")
    table.add_column("n", justify="right")
    table.add_column("distance only", justify="right")
    table.add_column("+ non-painting refs", justify="right")
    table.add_column("heads' detector", justify="right")
    table.add_column("predictor (either)", justify="right")
    table.add_column("median distance", justify="right")
    for name, r in rows.items():
        table.add_row(name, str(r["n"]), f"{r['flagged_distance_only']:.3f}", f"{r['flagged_with_references']:.3f}",
                      f"{r['flagged_heads_only']:.3f}", f"{r['flagged_predictor_rule']:.3f}",
                      f"{r['median_distance']:.3f}" if r["median_distance"] is not None else "")
    console.print(table)
    console.print(curve_table)
    res = {"gallery": len(index), "held_out": int(held.sum()), "threshold": thr, "references": int(is_ref.sum()),
           "calibration": index.calibration, "rows": rows, "tradeoff_distance_only": curve}
    return res, index


def bench_speed(index: GalleryIndex, console: Console) -> dict:
    res: dict = {}
    rng = np.random.default_rng(0)
    q = index.vectors[rng.choice(len(index), 64, replace=False)].astype(np.float32)
    t = time.perf_counter()
    for row in q:
        index.search_rows(row[None], 5, projected=True)
    res["gallery_single_query_ms"] = (time.perf_counter() - t) / len(q) * 1000
    t = time.perf_counter()
    index.search_rows(q, 5, projected=True)
    res["gallery_batch64_ms"] = (time.perf_counter() - t) * 1000
    big_vectors = rng.normal(size=(100_000, 256)).astype(np.float32)
    big_vectors /= np.linalg.norm(big_vectors, axis=1, keepdims=True)
    meta = [{"artwork_id": str(i)} for i in range(len(big_vectors))]
    from vasari.gallery import Projection

    proj = Projection(np.zeros(256, np.float32), np.ones(256, np.float32))
    big = GalleryIndex(big_vectors.astype(np.float16), meta, proj, None, IndexConfig(faiss_min_size=10**9))
    qb = big_vectors[:64] + 0.1 * rng.normal(size=(64, 256)).astype(np.float32)
    qb /= np.linalg.norm(qb, axis=1, keepdims=True)
    t = time.perf_counter()
    for row in qb[:16]:
        big.search_rows(row[None], 10, projected=True, use_faiss=False)
    res["100k_single_query_ms_numpy"] = (time.perf_counter() - t) / 16 * 1000
    t = time.perf_counter()
    _, rows_np = big.search_rows(qb, 10, projected=True, use_faiss=False)
    res["100k_batch64_ms_numpy"] = (time.perf_counter() - t) * 1000
    if _faiss() is not None:
        big._faiss_search(qb[:1], 1)  # build
        t = time.perf_counter()
        for row in qb[:16]:
            big.search_rows(row[None], 10, projected=True, use_faiss=True)
        res["100k_single_query_ms_faiss"] = (time.perf_counter() - t) / 16 * 1000
        _, rows_f = big.search_rows(qb, 10, projected=True, use_faiss=True)
        res["faiss_same_top10"] = float((rows_f == rows_np).mean())
    else:
        res["faiss"] = "not installed"
    console.print("search: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache folder (default: user cache)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "retrieval.json")
    args = ap.parse_args(argv)
    console = Console()
    data = args.data or shared_data_dir()
    if data is None or not (data / "artists7").is_dir():
        console.print("[red]../shared/data is absent (pass DATA_DIR or set VASARI_DATA)[/]")
        return 2
    embedder = Embedder()
    cache = EmbeddingCache(args.cache, embedder.spec) if args.cache else EmbeddingCache.default(embedder.spec)
    phash_dir = (args.cache or Path(cache.dir)).parent
    t0 = time.perf_counter()
    result = {"backbone": embedder.spec.key()}
    result["artists7"] = bench_artists(embedder, cache, data, console, phash_dir)
    result["novelty"], index = bench_novelty(embedder, cache, data, console, phash_dir)
    result["search"] = bench_speed(index, console)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["machine"] = {"cpus": os.cpu_count()}
    write_result(args.out, result)
    console.print(f"wrote {args.out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
