"""The rollout evidence one worker gathers in one batch: sums of the paired
differences on trips both versions predicted and whose actual duration arrived, and the
candidate's health. Sums, so that the rollout controller adds up any number of workers'
windows into one verdict (``edml.verdict``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from edml.contracts import RolloutEvidence

__all__ = ["EvidenceWindow"]


_PAIRED, _DIFF, _SQ, _CHAMPION, _CANDIDATE, _SCORED, _FAILED, _BATCHES, _CALL_S = range(9)


_Rollout = tuple[str | None, str, str]  # key (None: the fleet model), champion, candidate


class EvidenceWindow:
    """Running sums per rollout (the fleet model's, and each key's), kept as plain lists:
    ``paired`` runs once per joined trip, so no record is rebuilt per call; the records
    are made at ``drain``."""

    def __init__(self, model_name: str, worker: str) -> None:
        self._name, self._worker = model_name, worker
        self._open: dict[_Rollout, list[float]] = {}
        self._since = datetime.now(UTC)
        self._lock = threading.Lock()  # the restore of a partition may join from a callback

    def _sums(self, key: str | None, champion: str, candidate: str) -> list[float]:
        return self._open.setdefault((key, champion, candidate), [0.0] * 9)

    def paired(self, champion: str, champion_error_s: float, candidate: str,
               candidate_error_s: float, key: str | None = None) -> None:
        """One trip both versions predicted, with both absolute errors in seconds."""
        diff = candidate_error_s - champion_error_s
        with self._lock:
            sums = self._sums(key, champion, candidate)
            sums[_PAIRED] += 1
            sums[_DIFF] += diff
            sums[_SQ] += diff * diff
            sums[_CHAMPION] += champion_error_s
            sums[_CANDIDATE] += candidate_error_s

    def scored(self, champion: str, candidate: str, trips: int, failures: int,
               call_seconds: float, key: str | None = None) -> None:
        """One batch the candidate scored beside the champion."""
        with self._lock:
            sums = self._sums(key, champion, candidate)
            sums[_SCORED] += trips
            sums[_FAILED] += failures
            sums[_BATCHES] += 1
            sums[_CALL_S] += call_seconds

    def drain(self, now: datetime) -> list[RolloutEvidence]:
        """The window's sums, ended at ``now``; the next window starts empty."""
        with self._lock:
            closed = [RolloutEvidence(
                self._name, champion, candidate, self._worker, self._since, now,
                paired=int(s[_PAIRED]), sum_diff=s[_DIFF], sum_sq_diff=s[_SQ],
                sum_abs_error_champion=s[_CHAMPION], sum_abs_error_candidate=s[_CANDIDATE],
                candidate_scored=int(s[_SCORED]), candidate_failures=int(s[_FAILED]),
                candidate_batches=int(s[_BATCHES]), candidate_call_seconds=s[_CALL_S],
                model_key=key)
                for (key, champion, candidate), s in self._open.items()]
            self._open, self._since = {}, now
        return closed
