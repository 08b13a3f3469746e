"""The rollout evidence one worker gathers in one batch: sums of the paired
differences on trips both versions predicted and whose actual duration arrived, and the
candidate's health. Sums, so that the rollout controller adds up any number of workers'
windows into one verdict (``edml.verdict``)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime

from edml.contracts import RolloutEvidence

__all__ = ["EvidenceWindow"]


class EvidenceWindow:
    def __init__(self, model_name: str, worker: str) -> None:
        self._name, self._worker = model_name, worker
        self._open: dict[tuple[str, str], RolloutEvidence] = {}
        self._since = datetime.now(UTC)
        self._lock = threading.Lock()  # the restore of a partition may join from a callback

    def _sums(self, champion: str, candidate: str) -> RolloutEvidence:
        key = (champion, candidate)
        if key not in self._open:
            self._open[key] = RolloutEvidence(self._name, champion, candidate, self._worker,
                                              self._since, self._since)
        return self._open[key]

    def paired(self, champion: str, champion_error_s: float, candidate: str,
               candidate_error_s: float) -> None:
        """One trip both versions predicted, with both absolute errors in seconds."""
        diff = candidate_error_s - champion_error_s
        with self._lock:
            e = self._sums(champion, candidate)
            self._open[(champion, candidate)] = dataclasses.replace(
                e, paired=e.paired + 1, sum_diff=e.sum_diff + diff,
                sum_sq_diff=e.sum_sq_diff + diff * diff,
                sum_abs_error_champion=e.sum_abs_error_champion + champion_error_s,
                sum_abs_error_candidate=e.sum_abs_error_candidate + candidate_error_s)

    def scored(self, champion: str, candidate: str, trips: int, failures: int,
               call_seconds: float) -> None:
        """One batch the candidate scored beside the champion."""
        with self._lock:
            e = self._sums(champion, candidate)
            self._open[(champion, candidate)] = dataclasses.replace(
                e, candidate_scored=e.candidate_scored + trips,
                candidate_failures=e.candidate_failures + failures,
                candidate_batches=e.candidate_batches + 1,
                candidate_call_seconds=e.candidate_call_seconds + call_seconds)

    def drain(self, now: datetime) -> list[RolloutEvidence]:
        """The window's sums, ended at ``now``; the next window starts empty."""
        with self._lock:
            closed = [dataclasses.replace(e, window_end=now) for e in self._open.values()]
            self._open, self._since = {}, now
        return closed
