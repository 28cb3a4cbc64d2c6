"""How often the Training page redraws a running job: slower as more tabs watch.

While a run trains, its page redraws in parts: the progress and the loss of the last steps
every `every` seconds, the per-epoch curves, the learning rate and the run list five times
less often. `every` is 2 s for each tab watching, so that eight tabs together redraw no more
often than one alone: a class with eight tabs open keeps the machine for the training
(bench/bench_load.py: a redraw costs the browser about 0.3 CPU-seconds).
"""
from __future__ import annotations

import threading

PER_TAB_S = 2.0
MAX_EVERY_S = 30.0
TAB_TTL_S = 60.0  # a tab not seen redrawing for this long was closed or went elsewhere


class WatchingTabs:
    """Tab id -> when it last redrew a running job; one per server, shared by every session."""

    def __init__(self, per_tab_s: float = PER_TAB_S, max_every_s: float = MAX_EVERY_S,
                 ttl_s: float = TAB_TTL_S) -> None:
        self.per_tab_s, self.max_every_s, self.ttl_s = per_tab_s, max_every_s, ttl_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def every(self, tab_id: str, now: float) -> float:
        """Note that `tab_id` redraws at `now` (monotonic seconds); its redraw interval in seconds."""
        with self._lock:
            self._seen[tab_id] = now
            for tab, seen in list(self._seen.items()):
                if now - seen > self.ttl_s:
                    del self._seen[tab]
            return min(self.max_every_s, self.per_tab_s * len(self._seen))

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
