"""Output locations probed at start-up, so that a directory that cannot be written is found before
any work is done, not at the first checkpoint or after the last step; and OS errors as one line.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output location that cannot be used; the message names it and the reason."""


def reason(error: OSError) -> str:
    """An OSError's reason as a message says it: 'no space left on device', 'is a file', ..."""
    if error.errno == errno.EEXIST:
        return "a file is in the way"
    if error.errno == errno.ENOTDIR:
        return "not a directory (a file is on the path)"
    return (error.strerror or str(error)).lower()


def writable_directory(path: str | Path, what: str) -> Path:
    """Creates `path` (and its parents) if needed and proves a file can be made in it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what}: {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as error:
        raise OutputError(f"{what}: {path}: cannot write there ({reason(error)})") from None
    return path


def appendable_file(path: str | Path, what: str) -> Path:
    """Creates `path`'s directory if needed and opens the file for appending once."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what}: {path} is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as error:
        raise OutputError(f"{what}: {path}: cannot write there ({reason(error)})") from None
    return path


def is_disk_full(error: BaseException, directory: str | Path | None = None) -> bool:
    """Whether `error` (or what it wraps) is a full disk. torch's zip writer reports a short
    write as 'unexpected pos', so with `directory` a nearly full file system counts too."""
    seen: list[BaseException] = []
    stack = [error]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(current):
            return True
        stack += [current.__cause__, current.__context__]
        for failure in getattr(current, "failures", {}).values():  # DCP's CheckpointException
            stack.append(getattr(failure, "exc", None))
    if directory is not None:
        try:
            stats = os.statvfs(directory)
            return stats.f_bavail * stats.f_frsize < (1 << 20)
        except OSError:
            return False
    return False
