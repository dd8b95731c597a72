"""Thumbnails of similar paintings, served by opaque URLs of this server.

The predictor returns server-local paths; a client gets ``/api/v1/thumbnails/<key>``
instead. Only paths that resolve (links followed) inside the allowed roots (the shared
data, the bundle's folder, ``ServiceConfig.thumbnail_roots``) get a URL: a tampered gallery
row ("/etc/passwd", "../../..") gets no thumbnail. The last 4096 keys are remembered.
"""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path
from typing import Any, Callable, Iterable

from vasari.service.config import API_PREFIX

#: Keys remembered (a thumbnail URL stays valid while its key is among the latest ones).
MAX_THUMBNAILS = 4096


class ThumbnailRegistry:
    """Maps opaque keys to the thumbnail files they stand for (most recent ``MAX_THUMBNAILS``)."""

    def __init__(self, roots: Callable[[], Iterable[Any]]):
        #: called for every new path: the folders thumbnails may come from (None ignored)
        self._roots = roots
        self._paths: "collections.OrderedDict[str, str]" = collections.OrderedDict()
        #: what each path given resolved to (None: not served), so a path is checked against
        #: the file system and the roots once, not on every request that shows it (about 20
        #: thumbnails per prediction, each a realpath + stat + roots look-up on the event loop)
        self._checked: "collections.OrderedDict[str, str | None]" = collections.OrderedDict()

    def allowed_roots(self) -> list[Path]:
        return [Path(r).resolve() for r in self._roots() if r is not None]

    def url_for(self, path: Any) -> str | None:
        """A server-local thumbnail path -> an opaque URL of this server (None: not served)."""
        if not isinstance(path, str) or not path:
            return None
        if path.startswith(("data:image/", "/api/")):
            return path
        if path not in self._checked:
            self._checked[path] = self._servable(path)
        self._checked.move_to_end(path)
        while len(self._checked) > MAX_THUMBNAILS:
            self._checked.popitem(last=False)
        resolved = self._checked[path]
        if resolved is None:
            return None
        key = hashlib.sha1(resolved.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        self._paths[key] = resolved
        self._paths.move_to_end(key)
        while len(self._paths) > MAX_THUMBNAILS:
            self._paths.popitem(last=False)
        return f"{API_PREFIX}/thumbnails/{key}"

    def _servable(self, path: str) -> str | None:
        """``path`` resolved (links followed) when it is a file inside an allowed root, else None."""
        resolved = Path(path).resolve()
        if not resolved.is_file() or not any(resolved.is_relative_to(root) for root in self.allowed_roots()):
            return None
        return str(resolved)

    def path_of(self, key: str) -> str | None:
        """The file behind ``key`` (None: unknown or forgotten)."""
        return self._paths.get(key)

    def link(self, item: Any) -> None:
        """Replace the ``thumbnail`` path of a similar painting (or evidence) by its URL, or
        drop it when that path may not be served."""
        if isinstance(item, dict) and "thumbnail" in item:
            url = self.url_for(item["thumbnail"])
            if url:
                item["thumbnail"] = url
            else:
                item.pop("thumbnail")
