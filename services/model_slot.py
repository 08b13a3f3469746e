"""The model slot: the one version serving now, swapped atomically between batches, and the
one it replaced, to fall back on when the new one turns out unfit."""

from __future__ import annotations

import threading

from services.loader import LoadedVersion

__all__ = ["ModelSlot"]


class ModelSlot:
    """Readers take ``current`` once per batch and stamp every prediction of the batch with
    its version; a swap replaces the reference, so no batch ever sees two versions."""

    def __init__(self) -> None:
        self._current: LoadedVersion | None = None
        self._previous: LoadedVersion | None = None
        self._lock = threading.Lock()
        self.ready = threading.Event()

    @property
    def current(self) -> LoadedVersion | None:
        return self._current

    def swap(self, loaded: LoadedVersion) -> LoadedVersion | None:
        with self._lock:
            previous, self._current = self._current, loaded
            if previous is not None and previous.version != loaded.version:
                self._previous = previous
            self.ready.set()
            return previous

    def retire(self, version: str) -> LoadedVersion | None:
        """Take ``version`` out; the one it replaced serves again, if there is one. Without
        one the slot is empty and ``ready`` is cleared. Returns what serves now."""
        with self._lock:
            if self._current is not None and self._current.version == version:
                fallback = self._previous
                self._current, self._previous = fallback, None
                if fallback is None:
                    self.ready.clear()
            return self._current
