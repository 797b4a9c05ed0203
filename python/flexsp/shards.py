"""A prepared corpus on disk: its format, its writer (ShardWriter, driven by flexsp/prepare.py)
and its reader (TokenShards: the index in memory, the tokens memory-mapped).

A prepared corpus is a directory:
  tokens-NNNNN.bin  flat token ids (uint16 when the vocabulary fits, else uint32), memory-mapped
                    by the reader; no sequence straddles two shards
  index.npy         int64 [sequences, 4]: shard, offset (in tokens), length, split (0 train, 1 eval)
  lengths.txt       the training sequences' lengths, one per line (`flexsp plan --lengths`)
  meta.json         format, dtype, vocabulary, shard sizes, counts; written last
and, for chat data (`loss_mask: true` in meta.json):
  mask-NNNNN.bin    one byte per token of the token shard of the same number: 1 where the token
                    is trained (a label), 0 where it is not (prompts, system and user turns)
  labels.npy        int64 [sequences]: each sequence's label tokens (mask ones after its first
                    token), so a batch's loss divisor is known without reading any mask
  chat_template.jinja  the chat template the conversations were rendered with

Opening checks meta.json, the index and every shard's size, so a truncated shard or one from
another preparation is an error naming the file before training starts, not a wrong batch later.
The index (32 bytes per sequence) is all rank 0 and the planner need; a rank reads tokens only
for the sequences it trains on, and only those pages of the shards are ever touched.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

FORMAT = "flexsp-tokens"
VERSION = 1
TRAIN, EVAL = 0, 1  # index column 3: the sequence's split
MASK_DTYPE = np.dtype(np.uint8)
CHAT_TEMPLATE = "chat_template.jinja"


class ShardError(ValueError):
    """A prepared corpus that cannot be read; the message names the file and what to do."""


def check_meta(meta, path: Path, again: str) -> None:
    """The fields of meta.json that reading depends on, with their types, before any is used."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ShardError(f"{path}: not a {FORMAT} v{VERSION} corpus; {again}")
    for key, kind in (("id", str), ("dtype", str), ("vocab_size", int), ("sequences", dict),
                      ("shards", list)):
        if key not in meta:
            raise ShardError(f"{path}: no {key!r} key; {again}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise ShardError(f"{path}: {key!r} is {meta[key]!r}, not a {kind.__name__}; {again}")
    if meta["dtype"] not in ("uint16", "uint32"):
        raise ShardError(f"{path}: dtype {meta['dtype']!r} is neither 'uint16' nor 'uint32'; "
                         f"{again}")
    counts = meta["sequences"]
    if sorted(counts) != ["eval", "train"] or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values()):
        raise ShardError(f"{path}: 'sequences' must hold counts 'train' and 'eval', found "
                         f"{counts!r}; {again}")
    for number, shard in enumerate(meta["shards"]):
        if not (isinstance(shard, dict) and isinstance(shard.get("file"), str)
                and Path(shard["file"]).name == shard["file"]
                and isinstance(shard.get("tokens"), int) and shard["tokens"] >= 0):
            raise ShardError(f"{path}: shard {number} is {shard!r}, not a file name in this "
                             f"directory with a token count; {again}")


class TokenShards:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / "meta.json"
        again = "prepare it again with `python -m flexsp.prepare`"
        if not meta_path.is_file():
            partial = self.directory.with_name(self.directory.name + ".partial")
            why = " (its preparation did not finish)" if partial.exists() else ""
            raise ShardError(f"{self.directory}: not a prepared corpus, no meta.json{why}; {again}")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as error:
            raise ShardError(f"{meta_path}: not valid JSON ({error.msg}); {again}") from None
        check_meta(self.meta, meta_path, again)
        self.dtype = np.dtype(self.meta["dtype"])
        index_path = self.directory / "index.npy"
        try:
            self.index = np.load(index_path)
        except (OSError, ValueError) as error:
            raise ShardError(f"{index_path}: unreadable ({error}); {again}") from None
        expected = sum(self.meta["sequences"].values())
        if self.index.ndim != 2 or self.index.shape != (expected, 4):
            raise ShardError(f"{index_path}: shape {self.index.shape}, meta.json says "
                             f"{expected} sequences x 4; {again}")
        self.shards: list[np.memmap] = []
        for number, shard in enumerate(self.meta["shards"]):
            path = self.directory / shard["file"]
            size = path.stat().st_size if path.is_file() else None
            want = shard["tokens"] * self.dtype.itemsize
            if size != want:
                found = "missing" if size is None else f"{size} bytes"
                raise ShardError(f"{path}: {found}, the index expects {want} bytes (truncated, "
                                 f"or from another preparation); {again}")
            rows = self.index[self.index[:, 0] == number]
            if len(rows) and int((rows[:, 1] + rows[:, 2]).max()) > shard["tokens"]:
                raise ShardError(f"{path}: the index points past its end; {again}")
            self.shards.append(np.memmap(path, dtype=self.dtype, mode="r") if want else
                               np.zeros(0, dtype=self.dtype))
        self.lengths = self.index[:, 2]
        self.has_mask = bool(self.meta.get("loss_mask", False))
        self.masks: list[np.ndarray] = []
        if self.has_mask:
            self._open_masks(expected, again)
            self.label_counts = self._label_counts
        else:  # every token but each sequence's first is a label
            self.label_counts = np.maximum(self.lengths - 1, 0)
        self.train_ids = np.flatnonzero(self.index[:, 3] == TRAIN)
        self.eval_ids = np.flatnonzero(self.index[:, 3] == EVAL)

    def _open_masks(self, expected: int, again: str) -> None:
        for shard in self.meta["shards"]:
            path = self.directory / shard.get("mask", "")
            size = path.stat().st_size if "mask" in shard and path.is_file() else None
            if size != shard["tokens"] * MASK_DTYPE.itemsize:
                found = "missing" if size is None else f"{size} bytes"
                raise ShardError(f"{path}: {found}, expected one mask byte per token of "
                                 f"{shard['file']} ({shard['tokens']}); {again}")
            self.masks.append(np.memmap(path, dtype=MASK_DTYPE, mode="r") if shard["tokens"]
                              else np.zeros(0, dtype=MASK_DTYPE))
        labels_path = self.directory / "labels.npy"
        try:
            self._label_counts = np.load(labels_path)
        except (OSError, ValueError) as error:
            raise ShardError(f"{labels_path}: unreadable ({error}); {again}") from None
        if self._label_counts.shape != (expected,):
            raise ShardError(f"{labels_path}: shape {self._label_counts.shape}, meta.json says "
                             f"{expected} sequences; {again}")

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def fingerprint(self) -> str:
        """Changes with every preparation: a checkpoint's data position refers to one."""
        return str(self.meta["id"])

    def tokens(self, sequence: int) -> torch.Tensor:
        """One sequence's tokens as int64, read from its shard (only its pages are touched)."""
        shard, offset, length, _ = (int(v) for v in self.index[sequence])
        return torch.from_numpy(self.shards[shard][offset:offset + length].astype(np.int64))

    def mask(self, sequence: int) -> torch.Tensor:
        """One sequence's loss mask as bool (True: trained); all True for a corpus without one."""
        shard, offset, length, _ = (int(v) for v in self.index[sequence])
        if not self.has_mask:
            return torch.ones(length, dtype=torch.bool)
        return torch.from_numpy(self.masks[shard][offset:offset + length] != 0)


class ShardWriter:
    """Appends sequences to tokens-NNNNN.bin files of at most `shard_tokens` tokens each."""

    def __init__(self, directory: Path, dtype: np.dtype, shard_tokens: int,
                 masks: bool = False) -> None:
        self.directory, self.dtype, self.shard_tokens = directory, dtype, shard_tokens
        self.shards: list[dict] = []
        self.rows: list[tuple[int, int, int, int]] = []
        self.file = None
        self.filled = 0
        self.with_masks = masks
        self.mask_file = None
        self.labels: list[int] = []  # label tokens per sequence, with masks
        self.trained_tokens = 0

    def add(self, ids: list[int], split: int, mask: list[int] | None = None) -> None:
        if self.file is None or self.filled + len(ids) > self.shard_tokens:
            self._next_shard()
        self.file.write(np.asarray(ids, dtype=self.dtype).tobytes())
        if self.with_masks:
            self.mask_file.write(np.asarray(mask, dtype=MASK_DTYPE).tobytes())
            self.labels.append(int(sum(mask[1:])))
            self.trained_tokens += int(sum(mask))
        self.rows.append((len(self.shards) - 1, self.filled, len(ids), split))
        self.filled += len(ids)
        self.shards[-1]["tokens"] = self.filled

    def _next_shard(self) -> None:
        self.close()
        name = f"tokens-{len(self.shards):05d}.bin"
        self.file = open(self.directory / name, "wb")
        self.shards.append({"file": name, "tokens": 0})
        if self.with_masks:
            mask_name = f"mask-{len(self.shards) - 1:05d}.bin"
            self.mask_file = open(self.directory / mask_name, "wb")
            self.shards[-1]["mask"] = mask_name
        self.filled = 0

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.mask_file is not None:
            self.mask_file.close()
            self.mask_file = None


def held_out_split(document: int, held_out: Fraction) -> int:
    """Document k is held out when floor((k+1) f) > floor(k f): exactly the fraction f of
    every run of documents (every 50th for 0.02), never the first."""
    p, q = held_out.numerator, held_out.denominator
    return EVAL if (document + 1) * p // q > document * p // q else TRAIN
