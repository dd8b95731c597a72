"""``vasari download``: fetch a catalog's images, concurrently, politely and resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from vasari.cli.common import fail

HELP = """Download a catalog's images into OUT (concurrent, rate-limited, resumable).

CATALOG is a catalog spec read by vasari.catalog (wga:catalog.csv; WGA page URLs become image URLs), a catalog path, or any CSV with a URL column (--url-column names it). Images land under OUT at their URL path (art/a/abbate/deerhunt.jpg -> OUT/a/abbate/deerhunt.jpg).

OUT/manifest.jsonl records every finished image, so a re-run skips what is done; OUT/failed.csv lists the failures, which --retry-failed OUT fetches again. Exit code: 0 when nothing failed, 1 when some images failed, 2 for bad input.

Examples:

  vasari download wga:../shared/data/wga/catalog.csv --out runs/images --concurrency 16 --rate 10/s --max-side 1024

  vasari download ../shared/data/catalogs/wga_paintings.csv --url-column jpg_link --out runs/images

  vasari download --retry-failed runs/images
"""


def register(app: typer.Typer) -> None:
    app.command("download", help=HELP, no_args_is_help=True)(download)


def _catalog_jobs(spec: str, console: Console):
    """Jobs from a vasari.catalog spec or path (WGA page URLs mapped to image URLs); None when
    a bare path is not a catalog with URLs, so that it is read as a plain CSV instead."""
    from vasari.catalog import parse_spec, read_sources
    from vasari.download import jobs_from_urls

    explicit = parse_spec(spec)[0] is not None
    try:
        catalog = read_sources([spec])[0]
    except (ValueError, OSError) as exc:  # CatalogError is a ValueError
        if explicit:
            fail(str(exc) or type(exc).__name__)
        return None
    urls = [a.url for a in catalog.artworks if a.url]
    if not urls:
        if explicit:
            fail(f"{spec}: the catalog has no image URLs ({len(catalog.artworks)} artworks)")
        return None
    skipped = sum(catalog.report.skipped.values())
    console.print(f"{spec}: {len(urls)} image URLs from {len(catalog.artworks)} artworks"
                  + (f" ({skipped} rows skipped by the reader)" if skipped else ""), soft_wrap=True)
    return jobs_from_urls(urls)


def download(
    catalog: Optional[str] = typer.Argument(
        None, help="catalog spec or path (wga:catalog.csv), or a CSV with a URL column", show_default=False
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder", show_default=False),
    retry_failed: Optional[Path] = typer.Option(
        None, "--retry-failed", help="fetch again the failures listed in DIR/failed.csv (DIR is the default --out)",
        metavar="DIR", show_default=False,
    ),
    url_column: Optional[str] = typer.Option(None, help="read CATALOG as a plain CSV with URLs in this column"),
    path_column: Optional[str] = typer.Option(None, help="CSV column with each image's path under OUT (default: from the URL)"),
    concurrency: int = typer.Option(16, min=1, help="requests in flight at once"),
    rate: str = typer.Option("10/s", help="requests per second per host (10/s, 600/min, off)"),
    max_side: Optional[int] = typer.Option(None, min=1, help="downscale saved images to this long side (px)"),
    retries: int = typer.Option(4, min=0, help="retries on 429/5xx, timeouts and connection errors"),
    timeout: float = typer.Option(30.0, min=0.01, help="read timeout in seconds"),
    connect_timeout: float = typer.Option(10.0, min=0.01, help="connect timeout in seconds"),
    backoff: float = typer.Option(0.5, min=0.0, help="first retry delay in seconds (doubles, with jitter)"),
    verify: bool = typer.Option(False, "--verify", help="on resume, check finished files' sha256 (default: size)"),
    limit: Optional[int] = typer.Option(None, min=1, help="only the first N images (a trial run)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    from vasari.download import (DownloadConfig, download_images, failed_jobs, jobs_from_csv,
                                 parse_rate)

    console = Console(highlight=False)
    if (catalog is None) == (retry_failed is None):
        fail("give a CATALOG or --retry-failed DIR (one of the two)")
    try:
        if retry_failed is not None:
            folder = retry_failed if retry_failed.is_dir() else retry_failed.parent
            out = out or folder
            jobs = failed_jobs(folder)
            if not jobs:
                console.print(f"{folder}: no failed.csv, nothing to retry", soft_wrap=True)
                raise typer.Exit(code=0)
        else:
            if out is None:
                fail("--out DIR is required")
            jobs = None if url_column or path_column else _catalog_jobs(catalog, console)
            if jobs is None:
                jobs = jobs_from_csv(catalog, url_column, path_column)
        if limit:
            jobs = jobs[:limit]
        config = DownloadConfig(
            concurrency=concurrency, rate=parse_rate(rate), max_side=max_side, retries=retries,
            read_timeout=timeout, connect_timeout=connect_timeout, backoff=backoff, verify=verify,
        )
        summary = download_images(jobs, out, config, progress=progress)
    except OSError as exc:  # unreadable file, output folder not writable (a DownloadError: report_errors)
        fail(str(exc))
    console.print(summary.as_table())
    if summary.failed:
        console.print(f"{summary.failed} failed; see {out / 'failed.csv'} and retry with: vasari download --retry-failed {out}",
                      soft_wrap=True)
        raise typer.Exit(code=1)
