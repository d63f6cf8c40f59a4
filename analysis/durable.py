"""The one durable write and the one careful read of every file in a sweep directory.

A write is visible whole or not at all, and survives a power cut once it returns: on a
filesystem, a temporary file in the same folder, fsync, rename over the target, fsync of the
folder (ext4, XFS and NFS may otherwise keep the rename and lose the data, leaving a torn or
empty record). On an object store, an upload that fails part-way may still be completed when
pyarrow closes its stream, so the object is written under a temporary key and copied to its
name only after the upload succeeded: the name never shows a partial object.

A read says "absent" only for "not found". Any other error (an S3 throttle, an NFS hiccup) is
retried, then raised as `Unreadable`: taking it for "absent" would retrain a finished run.
"""
from __future__ import annotations

import os
import time
import uuid

import pyarrow.fs as pafs

# Object stores make an object visible whole when its upload completes; a rename is a copy.
WHOLE_OBJECT_STORES = ("s3", "gcs")
READ_TRIES, READ_BACKOFF_S = 4, 0.25


class Unreadable(OSError):
    """A record that exists (or may) but could not be read after retries."""


def tmp_name(name: str) -> str:
    """The temporary sibling a write goes through; readers and listings skip these."""
    return f".{name}.{uuid.uuid4().hex[:8]}.tmp"


def write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    head, _, name = path.rpartition("/")
    tmp = f"{head}/{tmp_name(name)}"
    if isinstance(fs, pafs.LocalFileSystem):
        _write_local(tmp, path, data)
        return
    if fs.type_name not in WHOLE_OBJECT_STORES:
        fs.create_dir(head, recursive=True)
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)  # an object store copies a complete object: never partial
    except BaseException:
        _discard(fs, tmp)
        raise


def _write_local(tmp: str, path: str, data: bytes) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _discard(None, tmp)
        raise
    fsync_dir(folder)


def fsync_dir(folder: str) -> None:
    """Make a rename or a new file in `folder` durable (a no-op where folders cannot be
    opened for it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and NFS clients) refuse fsync on a folder: nothing to add
    finally:
        os.close(fd)


def _discard(fs: pafs.FileSystem | None, tmp: str) -> None:
    try:
        os.unlink(tmp) if fs is None else fs.delete_file(tmp)
    except OSError:
        pass


def read(fs: pafs.FileSystem, path: str) -> bytes | None:
    """The file's bytes; None only when it does not exist."""
    for attempt in range(READ_TRIES):
        try:
            with fs.open_input_stream(path) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if _not_found(fs, path):
                return None
            if attempt == READ_TRIES - 1:
                raise Unreadable(f"{path} could not be read ({exc})") from None
            time.sleep(READ_BACKOFF_S * 2 ** attempt)
    raise AssertionError("unreachable")


def _not_found(fs: pafs.FileSystem, path: str) -> bool:
    """pyarrow raises plain OSError for some "not found"s (a folder in a path that is a
    file, an object store's 404): ask the filesystem before calling it a failure."""
    try:
        return fs.get_file_info(path).type == pafs.FileType.NotFound
    except OSError:
        return False
