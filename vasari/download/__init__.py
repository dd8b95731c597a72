"""The concurrent, resumable, polite image downloader.

Modules: ``jobs`` (config, jobs, records), ``fetch`` (politeness and the httpx worker pool),
``files`` (writing and checking one body), ``manifest`` (state on disk: resume, failed.csv,
lock) and ``downloader`` (``download_images``, the entry point, with its progress bar).
"""

from vasari.download.jobs import (
    PROJECT_URL,
    USER_AGENT,
    MANIFEST_NAME,
    FAILED_NAME,
    LOCK_NAME,
    DownloadError,
    DownloadConfig,
    DownloadJob,
    DownloadRecord,
    DownloadSummary,
    url_to_path,
    as_job,
    jobs_from_urls,
    jobs_from_csv,
    safe_destination,
)
from vasari.download.fetch import (
    parse_rate,
    parse_retry_after,
    backoff_delay,
    TokenBucket,
    Fetcher,
)
from vasari.download.manifest import (
    Manifest,
    read_download_manifest,
    failed_jobs,
    write_failed,
    RunLock,
    remove_stale_temps,
)
from vasari.download.files import (
    FetchFailure,
)
from vasari.download.downloader import (
    download_images,
)

__all__ = [
    "PROJECT_URL",
    "USER_AGENT",
    "MANIFEST_NAME",
    "FAILED_NAME",
    "LOCK_NAME",
    "DownloadError",
    "DownloadConfig",
    "DownloadJob",
    "DownloadRecord",
    "DownloadSummary",
    "url_to_path",
    "as_job",
    "jobs_from_urls",
    "jobs_from_csv",
    "safe_destination",
    "parse_rate",
    "parse_retry_after",
    "backoff_delay",
    "TokenBucket",
    "Fetcher",
    "Manifest",
    "read_download_manifest",
    "failed_jobs",
    "write_failed",
    "RunLock",
    "remove_stale_temps",
    "FetchFailure",
    "download_images",
]
