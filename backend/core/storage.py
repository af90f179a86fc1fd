"""Blob storage for volumes, slice images and masks, behind an fsspec URL.

Keys are relative, slash-separated paths (``cases/ab12/axial/042/flair.png``). The local
default writes each file atomically (temporary name, then rename), so a reader never sees half a
file; object stores give that guarantee themselves.
"""

import posixpath
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import fsspec
from fsspec.implementations.local import LocalFileSystem

from backend.core.errors import DomainError


class StorageKeyInvalid(DomainError):
    status_code = 400


class BlobNotFound(DomainError):
    status_code = 404


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageKeyInvalid(f"Invalid storage key {key!r}")
    return key


class Storage:
    """Read and write blobs by key under one fsspec root URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        fs, root = fsspec.core.url_to_fs(url)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root = root.rstrip("/")
        self._local = isinstance(fs, LocalFileSystem)
        if self._local:
            fs.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, _check_key(key))

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        path = self._path(key)
        if not self._local:
            self.fs.pipe_file(path, data)
            return
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        self.fs.mv(tmp, path)

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``BlobNotFound`` when there are none."""
        try:
            data: bytes = self.fs.cat_file(self._path(key))
        except FileNotFoundError as exc:
            raise BlobNotFound(f"No stored object {key!r}") from exc
        return data

    def size(self, key: str) -> int:
        """The size in bytes of the blob under ``key``; ``BlobNotFound`` when there is none."""
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError as exc:
            raise BlobNotFound(f"No stored object {key!r}") from exc

    def chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk: int = 1 << 20
    ) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of a blob, read ``chunk`` bytes at a time (memory holds
        one chunk, whatever the blob's size)."""
        with self.fs.open(self._path(key), "rb") as handle:
            handle.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                data = handle.read(chunk if left is None else min(chunk, left))
                if not data:
                    return
                if left is not None:
                    left -= len(data)
                yield data

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        """Remove one blob; missing blobs are fine."""
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm_file(path)

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under ``prefix/`` (used to undo a failed import)."""
        path = self._path(prefix.rstrip("/"))
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list(self, prefix: str) -> list[str]:
        """Keys stored under ``prefix/``, sorted."""
        path = self._path(prefix.rstrip("/"))
        if not self.fs.exists(path):
            return []
        found = self.fs.find(path)
        return sorted(posixpath.relpath(str(p), self.root) for p in found)

    def modified(self, key: str) -> datetime | None:
        """When the blob under ``key`` was last written (UTC), if the backend says."""
        info = self.fs.info(self._path(key))
        for field in ("mtime", "LastModified", "last_modified", "updated", "created"):
            value = info.get(field)
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=UTC)
            if isinstance(value, int | float):
                return datetime.fromtimestamp(value, UTC)
        return None
