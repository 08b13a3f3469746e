"""The layout and integrity of a model artifact in storage.

A version lives at ``<storage>/<name>/<version>/``, its files exactly those of the SavedModel
folder. Versions are immutable: publishing never writes into an existing version's folder.
Its checksum is ``sha256:`` + the sha256 of the sorted manifest, one line per file:
``<relative path>\\t<size>\\t<sha256 of the file>\\n``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from edml.errors import ArtifactError

__all__ = [
    "ManifestEntry",
    "artifact_uri",
    "checksum_of",
    "manifest",
    "manifest_checksum",
    "model_folder",
    "validate_name",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20  # bytes read at a time while hashing


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str  # relative, with forward slashes
    size: int
    sha256: str


def validate_name(kind: str, value: str) -> str:
    """Model names and versions become path segments: keep them to a safe alphabet."""
    if not _NAME.match(value):
        raise ArtifactError(
            f"{kind} {value!r} must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def model_folder(name: str, key: str | None = None) -> str:
    """``NAME`` for the fleet model, ``NAME/key=KEY`` for a keyed one (``=`` is in no
    version, so no version's folder is ever taken for a key's)."""
    folder = validate_name("model name", name)
    return folder if key is None else f"{folder}/key={validate_name('model key', key)}"


def artifact_uri(storage_uri: str, name: str, version: str, key: str | None = None) -> str:
    return f"{storage_uri.rstrip('/')}/{model_folder(name, key)}/" \
           f"{validate_name('version', version)}/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(directory: Path) -> list[ManifestEntry]:
    if not directory.is_dir():
        raise ArtifactError(f"{directory} is not a directory")
    return sorted(
        (
            ManifestEntry(path.relative_to(directory).as_posix(), path.stat().st_size,
                          _sha256(path))
            for path in directory.rglob("*")
            if path.is_file()
        ),
        key=lambda entry: entry.path,
    )


def manifest_checksum(entries: list[ManifestEntry]) -> str:
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\t{entry.size}\t{entry.sha256}\n".encode())
    return "sha256:" + digest.hexdigest()


def checksum_of(directory: Path) -> str:
    return manifest_checksum(manifest(directory))
