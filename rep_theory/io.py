"""Atomic, checksummed file writes: the one place the package writes state to disk.

Every file a run directory or the cache holds is written to a temporary file in the same folder,
flushed and ``fsync``-ed, then renamed over the target, so a reader sees either the old file or the
new one, never half of one (a Ctrl-C, SIGKILL or power loss included).

Checked files (``save_checked`` / ``load_checked``) carry a sha256 of their payload in a small
header, so a truncated or corrupted file is detected on load (:class:`CorruptFileError`) instead of
giving a wrong result.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "save_checked",
           "load_checked", "is_checked_file", "CorruptFileError", "sha256_bytes", "content_digest"]

_MAGIC = b"REPTHEORY-CHECKED-1\n"


class CorruptFileError(ValueError):
    """A checked file whose header or checksum does not match its contents."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 4) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def save_checked(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` ``obj`` into a file whose header holds the payload's sha256; atomic."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    header = _MAGIC + sha256_bytes(payload).encode("ascii") + b"\n"
    return atomic_write_bytes(path, header + payload)


def is_checked_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the header of a file written by :func:`save_checked`."""
    with open(path, "rb") as fh:
        return fh.read(len(_MAGIC)) == _MAGIC


def content_digest(path: str | os.PathLike) -> str:
    """The sha256 (hex) a file's contents are known by: for a checked file the payload checksum in
    its header (read without the rest: cheap for large weights), else the sha256 of the whole file.

    Whether a checked file's payload still matches its header is :func:`load_checked`'s business.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(len(_MAGIC) + 65)
        if head.startswith(_MAGIC) and head[-1:] == b"\n":
            return head[len(_MAGIC):len(_MAGIC) + 64].decode("ascii", "replace")
        digest = hashlib.sha256(head)
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checked(path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu",
                 weights_only: bool = True) -> Any:
    """Load a file written by :func:`save_checked`; :class:`CorruptFileError` if it does not verify."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise CorruptFileError(f"{path}: not a checked file (missing header)")
    rest = data[len(_MAGIC):]
    newline = rest.find(b"\n")
    if newline != 64:
        raise CorruptFileError(f"{path}: malformed checksum header")
    expected, payload = rest[:64].decode("ascii", "replace"), rest[65:]
    actual = sha256_bytes(payload)
    if actual != expected:
        raise CorruptFileError(f"{path}: checksum mismatch (file truncated or corrupted)")
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=weights_only)
