"""Object storage for model artifacts: a local directory (``file://``) or Google Cloud Storage
(``gs://``), behind one small interface. Library errors become ``StorageError`` here.

A version is complete, and exists, once its marker (``COMPLETE``, the manifest of its
files) is written, last. An upload that finds a version's files without the marker (an
earlier attempt that failed half-way) removes them and uploads again, so a retry of the
same version completes it. Downloads leave the marker out: the files are the SavedModel.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from edml.artifacts import artifact_uri, checksum_of, manifest
from edml.errors import ArtifactError, ConfigError, StorageError
from edml.settings import StorageSettings

__all__ = [
    "COMPLETE",
    "ArtifactStore",
    "FileStore",
    "GcsStore",
    "check_artifact_location",
    "download_verified",
    "open_store",
]

COMPLETE = ".edml-complete"  # written last: the version's manifest, and its completeness


def _marker(local: Path) -> bytes:
    return "".join(f"{e.path}\t{e.size}\t{e.sha256}\n" for e in manifest(local)).encode()


class ArtifactStore(Protocol):
    def exists(self, uri: str) -> bool:
        """Whether any file is stored under the folder ``uri``."""
        ...

    def upload_dir(self, local: Path, uri: str) -> None:
        """Store every file of ``local`` under ``uri``; refuse if ``uri`` holds anything."""
        ...

    def download_dir(self, uri: str, local: Path) -> None:
        """Copy every file under ``uri`` into ``local`` (created, must not exist)."""
        ...

    def delete_dir(self, uri: str) -> None:
        """Remove every file under ``uri``: only to undo an upload that was never announced."""
        ...

    def read_file(self, uri: str, name: str) -> bytes:
        """One file of the folder ``uri`` (a version's profile, without its model)."""
        ...


def _file_path(uri: str) -> Path:
    parsed = urllib.parse.urlparse(uri)
    if parsed.netloc not in ("", "localhost", "."):
        raise ConfigError(f"{uri}: a file:// URI names a local path (file:///abs or file://./rel)")
    # file://./rel is relative to the working directory, for the embedded default
    return Path(("." if parsed.netloc == "." else "") + urllib.parse.unquote(parsed.path))


class FileStore:
    """Artifacts in a local directory; an upload appears whole or not at all (a staging
    folder beside the target, renamed), and a failed one leaves no staging folder behind."""

    def exists(self, uri: str) -> bool:
        return (_file_path(uri) / COMPLETE).is_file()

    def upload_dir(self, local: Path, uri: str) -> None:
        target = _file_path(uri)
        if self.exists(uri):
            raise ArtifactError(f"{uri} exists already: versions are immutable")
        staging: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=target.parent))
            shutil.copytree(local, staging, dirs_exist_ok=True)
            (staging / COMPLETE).write_bytes(_marker(local))
            if target.exists():  # files of a version that never completed
                shutil.rmtree(target)
            staging.rename(target)
            staging = None
        except OSError as exc:
            raise StorageError(f"cannot store {local} at {uri}: {exc}") from exc
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def download_dir(self, uri: str, local: Path) -> None:
        source = _file_path(uri)
        if not source.is_dir() or not any(source.iterdir()):
            raise ArtifactError(f"no artifact at {uri}")
        try:
            shutil.copytree(source, local, ignore=shutil.ignore_patterns(COMPLETE))
        except OSError as exc:
            raise StorageError(f"cannot copy {uri} to {local}: {exc}") from exc

    def read_file(self, uri: str, name: str) -> bytes:
        try:
            return (_file_path(uri) / name).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactError(f"no {name} in {uri}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {name} in {uri}: {exc}") from exc

    def delete_dir(self, uri: str) -> None:
        try:
            shutil.rmtree(_file_path(uri))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {uri}: {exc}") from exc


def _gcs_location(uri: str) -> tuple[str, str]:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "gs" or not parsed.netloc:
        raise ConfigError(f"{uri} is not a gs://BUCKET/PATH URI")
    return parsed.netloc, parsed.path.strip("/") + "/"


class GcsStore:
    """Artifacts in a GCS bucket through google-cloud-storage.

    Uploads carry a crc32c that the service verifies, and the precondition
    ``if_generation_match=0`` so that no object is ever overwritten; downloads are checked
    against the stored crc32c by the client.
    """

    def __init__(self, settings: StorageSettings, retries: bool = True) -> None:
        from google.api_core import exceptions, retry
        from google.cloud import storage

        self._errors = exceptions
        self._timeout = settings.timeout_s
        # transient errors retried with backoff, for at most the timeout in all (None: each
        # call tried once, bounded by the timeout)
        self._retry = retry.Retry(
            predicate=retry.if_transient_error, initial=0.2, maximum=2.0,
            timeout=settings.timeout_s,
        ) if retries else None
        kwargs: dict[str, Any] = {"project": settings.project or "edml"}
        if settings.endpoint:
            from google.auth.credentials import AnonymousCredentials

            kwargs |= {"credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
                       "client_options": {"api_endpoint": settings.endpoint}}
        try:
            self._client = storage.Client(**kwargs)
        except Exception as exc:  # google.auth: no credentials found, and the like
            raise StorageError(f"cannot create a GCS client: {exc}") from exc

    def _translate(self, exc: Exception, what: str) -> StorageError:
        if isinstance(exc, self._errors.PreconditionFailed):
            return ArtifactError(f"{what}: exists already: versions are immutable")
        if isinstance(exc, self._errors.NotFound):
            return ArtifactError(f"{what}: not found ({exc})")
        return StorageError(f"{what}: {type(exc).__name__}: {exc}")

    def _names(self, uri: str) -> tuple[Any, str, list[str]]:
        bucket_name, prefix = _gcs_location(uri)
        bucket = self._client.bucket(bucket_name)
        try:
            blobs = self._client.list_blobs(bucket, prefix=prefix, timeout=self._timeout,
                                            retry=self._retry)
            return bucket, prefix, [blob.name for blob in blobs]
        except Exception as exc:  # transport and API errors alike: storage unusable
            raise self._translate(exc, f"listing {uri}") from exc

    def exists(self, uri: str) -> bool:
        _, prefix, names = self._names(uri)
        return prefix + COMPLETE in names

    def upload_dir(self, local: Path, uri: str) -> None:
        bucket, prefix, existing = self._names(uri)
        if prefix + COMPLETE in existing:
            raise ArtifactError(f"{uri} exists already: versions are immutable")
        if existing:  # an earlier upload of this version failed half-way: start it anew
            self.delete_dir(uri)
        files = sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            self._put(bucket.blob(prefix + path.relative_to(local).as_posix()), uri,
                      filename=path)
        # last: until the marker is there, the version does not exist for anyone
        self._put(bucket.blob(prefix + COMPLETE), uri, data=_marker(local))

    def _put(self, blob: Any, uri: str, filename: Path | None = None,
             data: bytes | None = None) -> None:
        common = {"if_generation_match": 0, "checksum": "crc32c", "timeout": self._timeout,
                  "retry": self._retry}
        try:
            if filename is not None:
                blob.upload_from_filename(str(filename), **common)
            else:
                blob.upload_from_string(data, **common)
        except Exception as exc:  # transport, API and checksum errors
            raise self._translate(exc, f"uploading {blob.name} to {uri}") from exc

    def download_dir(self, uri: str, local: Path) -> None:
        bucket, prefix, names = self._names(uri)
        names = [name for name in names if name != prefix + COMPLETE]
        if not names:
            raise ArtifactError(f"no artifact at {uri}")
        relatives = [_relative_object(name, prefix, uri) for name in names]  # all before any
        for name, relative in zip(names, relatives, strict=True):
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                bucket.blob(name).download_to_filename(
                    str(target), checksum="crc32c", timeout=self._timeout, retry=self._retry
                )
            except Exception as exc:  # transport, API and checksum errors
                raise self._translate(exc, f"downloading {uri}{relative}") from exc

    def read_file(self, uri: str, name: str) -> bytes:
        bucket_name, prefix = _gcs_location(uri)
        try:
            data: bytes = self._client.bucket(bucket_name).blob(prefix + name).download_as_bytes(
                checksum="crc32c", timeout=self._timeout, retry=self._retry)
            return data
        except Exception as exc:  # transport, API and checksum errors; NotFound
            raise self._translate(exc, f"reading {uri}{name}") from exc

    def delete_dir(self, uri: str) -> None:
        bucket, _, names = self._names(uri)
        for name in names:
            try:
                bucket.blob(name).delete(timeout=self._timeout, retry=self._retry)
            except Exception as exc:  # transport and API errors
                raise self._translate(exc, f"deleting {name}") from exc


def _canonical(uri: str) -> str | None:
    """One spelling per place: file paths resolved (symlinks, ``..``), gs paths normalised;
    None for any other scheme."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        try:
            return "file://" + str(_file_path(uri).resolve()) + "/"
        except (ConfigError, OSError):
            return None
    if parsed.scheme == "gs" and parsed.netloc:
        return f"gs://{parsed.netloc}{posixpath.normpath('/' + parsed.path)}/"
    return None


def check_artifact_location(uri: str, name: str, version: str, roots: Sequence[str],
                            key: str | None = None) -> None:
    """A model event may point only at its own version's folder (``ROOT/NAME/VERSION/``,
    a keyed model's ``ROOT/NAME/key=KEY/VERSION/``) under one of the configured storage
    roots; anything else is refused before a byte is read."""
    where = _canonical(uri)
    allowed = {_canonical(artifact_uri(root, name, version, key)) for root in roots}
    if where is None or where not in allowed:
        label = name if key is None else f"{name}[{key}]"
        raise ArtifactError(f"{uri} is not the folder of {label} {version} under the allowed "
                            f"storage roots ({', '.join(roots)}; EDML_STORAGE_ALLOWED_ROOTS "
                            "adds roots)")


def _relative_object(name: str, prefix: str, uri: str) -> str:
    relative = name[len(prefix):]
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or ".." in parts:
        raise ArtifactError(f"{uri}: object {name!r} would be written outside the download")
    return relative


def open_store(settings: StorageSettings, uri: str | None = None,
               retries: bool = True) -> ArtifactStore:
    """The store for ``uri`` (default: the settings' storage URI), chosen by its scheme.
    ``retries=False`` turns the client's own retries off, for a caller that retries."""
    scheme = urllib.parse.urlparse(uri or settings.uri).scheme
    if scheme == "file":
        return FileStore()
    if scheme == "gs":
        return GcsStore(settings, retries)
    raise ConfigError(f"unsupported storage URI {uri or settings.uri}: use file:// or gs://")


def download_verified(store: ArtifactStore, uri: str, checksum: str, target: Path) -> None:
    """``uri``'s files into ``target`` (which must not exist), only if they give
    ``checksum``: they go to a staging folder beside it first, so ``target`` is either
    whole and verified or absent."""
    staging = target.parent / f".download-{uuid.uuid4().hex}"
    try:
        store.download_dir(uri, staging)
        actual = checksum_of(staging)
        if actual != checksum:
            raise ArtifactError(f"{uri}: checksum mismatch: the files give {actual}, the "
                                f"event says {checksum}")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
