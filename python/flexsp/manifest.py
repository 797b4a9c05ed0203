"""Checkpoint integrity: manifest.json lists every file of a checkpoint with its size and CRC-32,
written last, when the checkpoint is complete; `verify` checks a checkpoint against it.

A checkpoint without a manifest is incomplete (its writing was interrupted), unless it predates
manifests (DCP's .metadata present): such a one is used unverified.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

MANIFEST = "manifest.json"
VERSION = 1
_BLOCK = 1 << 22


def crc32(path: Path) -> str:
    value = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            value = zlib.crc32(block, value)
    return f"{value:08x}"


def write_manifest(directory: str | Path) -> Path:
    """Records every file of `directory` (the checkpoint, complete) in its manifest; atomic."""
    directory = Path(directory)
    files = {p.name: {"bytes": p.stat().st_size, "crc32": crc32(p)}
             for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}
    temporary = directory / (MANIFEST + ".tmp")
    with open(temporary, "w") as f:
        f.write(json.dumps({"version": VERSION, "files": files}, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, directory / MANIFEST)
    return directory / MANIFEST


def verify(directory: str | Path) -> str | None:
    """None if `directory` is a complete, intact checkpoint, else what is wrong with it."""
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        if (directory / ".metadata").is_file():
            return None  # written before manifests existed: nothing to check it against
        return "incomplete: no manifest.json (its writing was interrupted)"
    try:
        document = json.loads(manifest.read_text())
        files = document["files"]
        if not isinstance(files, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        return "manifest.json is unreadable"
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected.get("bytes"):
            return f"{name} has {size} bytes, the manifest says {expected.get('bytes')} (truncated?)"
        if crc32(path) != expected.get("crc32"):
            return f"{name} does not match its checksum (corrupted)"
    return None
