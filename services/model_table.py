"""The model table: the latest ``ModelMetadata`` per model name, in RocksDB under the data
directory, with the model-topic offset it reflects.

A restarted worker catches up from the next offset, once it has checked that the event it
applied last is still at its offset (the mark): a model topic deleted and recreated, or
emptied by a broker that lost its storage, is read again from its beginning. If the table
is damaged: stop the worker, delete ``<data dir>/models.rocksdb``, restart; the
table rebuilds from the model topic.
"""

from __future__ import annotations

import struct
from pathlib import Path

from rocksdict import Rdict

from edml.codec import Codec
from edml.contracts import ModelMetadata
from edml.errors import DecodeError, StorageError

__all__ = ["ModelTable"]

_OFFSET_KEY = b"__offset__"
_MARK_KEY = b"__mark__"  # what identifies the event at the stored offset
_MODEL_PREFIX = b"model:"
_RETIRED_PREFIX = b"retired:"  # + name, version and checksum of a version taken out
_SERVING_PREFIX = b"serving:"  # + name: the version serving now
_FALLBACK_PREFIX = b"fallback:"  # + name: the version the serving one replaced


class ModelTable:
    def __init__(self, path: Path, codec: Codec) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(path))
        except Exception as exc:  # rocksdict raises plain Exception (e.g. a held lock)
            raise StorageError(f"cannot open the model table {path}: {exc}") from exc
        self._codec = codec

    def get(self, name: str, key: str | None = None) -> ModelMetadata | None:
        """The latest announced version of ``name``'s fleet model (or of its keyed model)."""
        return self._decoded(_model_key(name, key))

    def keyed(self, name: str) -> list[ModelMetadata]:
        """The latest announced version of each keyed model of ``name``."""
        prefix = _model_key(name, "")
        found = []
        for stored, data in self._db.items(from_key=prefix):
            if not isinstance(stored, bytes) or not stored.startswith(prefix):
                break
            try:
                found.append(self._codec.decode(data, ModelMetadata))
            except DecodeError:
                continue  # written by an incompatible release: the topic has it again
        return found

    def put(self, offset: int, metadata: ModelMetadata, mark: bytes = b"") -> None:
        """Latest wins: the caller applies events in topic order."""
        self._db[_model_key(metadata.name, metadata.key)] = self._codec.encode(metadata)
        self.advance(offset, mark)

    def withdraw(self, offset: int, name: str, key: str, mark: bytes = b"") -> None:
        """A keyed model withdrawn (a tombstone): its key has no model from now on."""
        self._db.delete(_model_key(name, key))
        self.advance(offset, mark)

    def retire(self, metadata: ModelMetadata) -> None:
        """Remember that this exact artifact is unfit, across restarts."""
        self._db[_retired_key(metadata)] = b"1"

    def is_retired(self, metadata: ModelMetadata) -> bool:
        return self._db.get(_retired_key(metadata)) is not None

    def set_serving(self, metadata: ModelMetadata) -> None:
        self._db[_SERVING_PREFIX + metadata.name.encode()] = self._codec.encode(metadata)

    def serving(self, name: str) -> ModelMetadata | None:
        """What served last: a restart whose latest announced version is refused serves it
        again, as it did before the restart."""
        return self._decoded(_SERVING_PREFIX + name.encode())

    def set_fallback(self, metadata: ModelMetadata) -> None:
        self._db[_FALLBACK_PREFIX + metadata.name.encode()] = self._codec.encode(metadata)

    def fallback(self, name: str) -> ModelMetadata | None:
        """The version the serving one replaced."""
        return self._decoded(_FALLBACK_PREFIX + name.encode())

    def _decoded(self, key: bytes) -> ModelMetadata | None:
        data = self._db.get(key)
        try:
            return None if data is None else self._codec.decode(data, ModelMetadata)
        except DecodeError:
            return None  # written by an incompatible release: the topic has it again

    def advance(self, offset: int, mark: bytes = b"") -> None:
        """Record that every event up to ``offset`` has been applied; ``mark`` identifies
        the event at ``offset``."""
        self._db[_MARK_KEY] = mark
        self._db[_OFFSET_KEY] = struct.pack(">q", offset)

    def offset(self) -> int | None:
        data = self._db.get(_OFFSET_KEY)
        return None if data is None else int(struct.unpack(">q", data)[0])

    def mark(self) -> bytes:
        data = self._db.get(_MARK_KEY)
        return b"" if data is None else bytes(data)

    def forget_offset(self) -> None:
        """Read the topic again from its beginning; the models stay until events replace
        them, so the version serving now keeps serving meanwhile."""
        self._db.delete(_OFFSET_KEY)
        self._db.delete(_MARK_KEY)

    def close(self) -> None:
        self._db.close()


def _model_key(name: str, key: str | None) -> bytes:
    """``model:NAME`` for the fleet model; keyed models after it as ``model:NAME\\0KEY``
    (names and keys never hold a NUL), so one prefix scan finds a family's keyed models."""
    return _MODEL_PREFIX + name.encode() + (b"" if key is None else b"\x00" + key.encode())


def _retired_key(metadata: ModelMetadata) -> bytes:
    return b"\x00".join([_RETIRED_PREFIX + metadata.name.encode(), metadata.version.encode(),
                          metadata.checksum.encode()])
