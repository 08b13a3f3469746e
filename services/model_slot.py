"""The model slot: what this worker serves now, as one object the scoring loop asks once per
batch: the champion, and the candidate scored beside it during a rollout. Swapped
atomically between batches; it also keeps the champion the current one replaced, to fall
back on when the new one turns out unfit."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from edml.loader import LoadedVersion

__all__ = ["Lineup", "ModelSlot"]


@dataclass(frozen=True)
class Lineup:
    """What scores a batch: ``champion`` always; ``candidate`` too during a rollout, in
    ``mode`` (shadow or canary, answering for ``weight`` of the trips)."""

    champion: LoadedVersion
    candidate: LoadedVersion | None = None
    mode: str = ""
    weight: float = 0.0


class ModelSlot:
    """Readers take ``lineup()`` once per batch and stamp every prediction of the batch with
    the version that made it; a swap replaces the reference, so no batch sees a change."""

    def __init__(self) -> None:
        self._lineup: Lineup | None = None
        self._previous: LoadedVersion | None = None
        self._lock = threading.Lock()
        self.ready = threading.Event()

    @property
    def current(self) -> LoadedVersion | None:
        """The champion."""
        lineup = self._lineup
        return lineup.champion if lineup is not None else None

    @property
    def candidate(self) -> LoadedVersion | None:
        lineup = self._lineup
        return lineup.candidate if lineup is not None else None

    def lineup(self) -> Lineup | None:
        return self._lineup

    def swap(self, loaded: LoadedVersion) -> LoadedVersion | None:
        """``loaded`` becomes the champion; a candidate of the same version leaves the
        candidate's place (it was promoted), any other candidate stays."""
        with self._lock:
            old = self._lineup
            previous = old.champion if old is not None else None
            promoted = old is not None and old.candidate is not None and \
                old.candidate.version == loaded.version
            if old is None or promoted:
                self._lineup = Lineup(loaded)
            else:
                self._lineup = replace(old, champion=loaded)
            if previous is not None and previous.version != loaded.version:
                self._previous = previous
            self.ready.set()
            return previous

    def set_candidate(self, loaded: LoadedVersion | None, mode: str = "",
                      weight: float = 0.0) -> None:
        """Score ``loaded`` beside the champion from the next batch on (None: no more)."""
        with self._lock:
            if self._lineup is not None:
                self._lineup = replace(self._lineup, candidate=loaded,
                                       mode=mode if loaded else "",
                                       weight=weight if loaded else 0.0)

    def retire(self, version: str) -> LoadedVersion | None:
        """Take ``version`` out. A champion is replaced by the one it replaced, if there is
        one; without one the slot is empty and ``ready`` is cleared. A candidate simply
        leaves. Returns the champion serving now."""
        with self._lock:
            lineup = self._lineup
            if lineup is None:
                return None
            if lineup.candidate is not None and lineup.candidate.version == version:
                self._lineup = replace(lineup, candidate=None, mode="", weight=0.0)
            elif lineup.champion.version == version:
                fallback = self._previous
                self._lineup = replace(lineup, champion=fallback) if fallback else None
                self._previous = None
                if fallback is None:
                    self.ready.clear()
            return self.current
