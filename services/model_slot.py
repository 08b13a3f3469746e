"""The model slot: the one version serving now, swapped atomically between batches."""

from __future__ import annotations

import threading

from services.loader import LoadedVersion

__all__ = ["ModelSlot"]


class ModelSlot:
    """Readers take ``current`` once per batch and stamp every prediction of the batch with
    its version; a swap replaces the reference, so no batch ever sees two versions."""

    def __init__(self) -> None:
        self._current: LoadedVersion | None = None
        self.ready = threading.Event()

    @property
    def current(self) -> LoadedVersion | None:
        return self._current

    def swap(self, loaded: LoadedVersion) -> LoadedVersion | None:
        previous, self._current = self._current, loaded
        self.ready.set()
        return previous
