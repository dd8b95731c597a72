"""``ScoreCache``: what an explanation needs from the network, kept per picture.

The page's "Why?" link sits under every task card and each click sends the same picture
again; an explanation embeds the picture and its ~64 occluded copies (about a second) and the
heads score every task at once, so the second card can be drawn from the first card's scores
without touching the network. The service keeps one small cache (``ServiceConfig.
explain_cache_size`` entries, least recently used dropped first) keyed by the upload's sha256.

Entries also remember which predictor scored them (a weak reference): after the service
adopts a new bundle (an enrolment) the old scores are not reused, and the cache does not keep
the old predictor alive.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vasari.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from vasari.inference.schema import Prediction


@dataclass(frozen=True)
class Scores:
    """Every task's probabilities on the centre crop (row 0) and its occluded copies, and the
    predictor's answer for the picture: all an explanation of any task or label needs."""

    proba: dict[str, "np.ndarray"]
    prediction: "Prediction"


class ScoreCache:
    """A bounded, thread-safe LRU of ``Scores`` by key (the explanation runs on the
    batcher's worker threads). Two requests for the same new picture at once may both
    compute it: the second result simply replaces the first."""

    def __init__(self, size: int):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InputError(f"the explanation cache size must be a whole number >= 0, got {size!r}")
        self.size = size
        self._entries: OrderedDict[Any, tuple[weakref.ref, Scores]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any, predictor: Any) -> Scores | None:
        """The scores ``predictor`` computed for ``key``, or None (and the entry is dropped
        when another predictor computed it)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0]() is not predictor:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Any, predictor: Any, scores: Scores) -> None:
        """Keep ``scores``; past ``size`` entries the least recently used one goes."""
        if self.size == 0:
            return
        with self._lock:
            self._entries[key] = (weakref.ref(predictor), scores)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
