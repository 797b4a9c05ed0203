"""Global batches of variable-length sequences, and each rank's slice of its group's stream.

A global batch is a list of token sequences; batch t is a pure function of (seed, t), so the data
position a checkpoint must remember is just the step number. Three sources:
  - TokenDataset: a corpus prepared once with `python -m flexsp.prepare`
    into memory-mapped token shards; a batch holds the sequences' lengths, and a rank reads the
    tokens of only the sequences its groups train on;
  - CorpusDataset: documents of a text file, byte-level tokens (vocab 256), no preparation;
  - SyntheticDataset: random tokens with lengths drawn from a length file (one integer per line),
    as in the paper's evaluation, where only the lengths are real.

`rank_input` turns (batch, group of a plan, rank) into what the model consumes on that rank: the
group's sequences packed back to back and padded to a multiple of the degree, this rank's
contiguous 1/d slice of it, position ids restarting at each sequence, and labels (next token of
the *same* sequence; IGNORE at each sequence's last token, on padding, and where a loss mask
says the next token is not trained: chat prompts).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from flexsp.attention import PackedContext
from flexsp.config import Config
from flexsp.lengths import load_lengths
from flexsp.shards import TokenShards

IGNORE = -100  # label of tokens that carry no loss (cross_entropy's ignore_index)
DOCUMENT_SEPARATOR = "\n\f\n"  # see data/corpus/PROVENANCE.md

log = logging.getLogger("flexsp.data")


def encode_bytes(text: str) -> list[int]:
    """The byte-level tokenizer: one token per UTF-8 byte (vocab 256)."""
    return list(text.encode("utf-8"))


def decode_bytes(tokens: list[int]) -> str:
    return bytes(tokens).decode("utf-8", errors="replace")


def label_token_count(lengths: list[int]) -> int:
    """Tokens with a label when every token is trained: all but the last of each sequence."""
    return sum(n - 1 for n in lengths)


@dataclass
class GlobalBatch:
    step: int
    sequences: Sequence[torch.Tensor]  # int64 token ids per sequence; may be read on access
    lengths: list[int] | None = None  # from the index, without reading any token
    masks: Sequence[torch.Tensor] | None = None  # bool per token (True: trained); None: all
    label_tokens: int | None = None  # tokens that carry a label; from the index when prepared

    def __post_init__(self) -> None:
        if self.lengths is None:
            self.lengths = [int(s.numel()) for s in self.sequences]
        if self.label_tokens is None:
            self.label_tokens = (label_token_count(self.lengths) if self.masks is None else
                                 sum(int(m[1:].sum()) for m in self.masks))
        # At least 1: a batch without labels divides a zero loss by 1 rather than by 0.
        self.label_tokens = max(1, self.label_tokens)


class ShardSequences(Sequence):
    """The sequences of a batch, each read from the memory-mapped shards when indexed."""

    def __init__(self, shards: TokenShards, ids: np.ndarray) -> None:
        self.shards, self.ids = shards, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> torch.Tensor:  # type: ignore[override]
        return self.shards.tokens(int(self.ids[i]))


class ShardMasks(ShardSequences):
    """The loss masks of a batch's sequences, each read when indexed."""

    def __getitem__(self, i: int) -> torch.Tensor:  # type: ignore[override]
        return self.shards.mask(int(self.ids[i]))


class TokenDataset:
    """Batches of `batch_sequences` training sequences of a prepared corpus, without replacement.

    The training sequences are read in epochs, each a permutation seeded by (seed, epoch);
    batch t takes positions [t*B, (t+1)*B) of that endless stream, so it is a pure function of
    (seed, t) and a resumed run continues exactly where the checkpoint was taken.
    """

    def __init__(self, path: str | Path, batch_sequences: int, seed: int) -> None:
        self.shards = TokenShards(path)
        n = len(self.shards.train_ids)
        if batch_sequences > n:
            raise ValueError(f"{path}: a batch of {batch_sequences} sequences, but the corpus has "
                             f"only {n} training sequences; lower data.batch_sequences or "
                             "prepare more documents")
        self.batch_sequences, self.seed = batch_sequences, seed
        self._epochs: dict[int, np.ndarray] = {}

    def _epoch(self, epoch: int) -> np.ndarray:
        if epoch not in self._epochs:
            if len(self._epochs) >= 2:  # a batch spans at most two epochs
                del self._epochs[min(self._epochs)]
            train_ids = self.shards.train_ids
            order = np.random.default_rng([self.seed, epoch]).permutation(len(train_ids))
            self._epochs[epoch] = train_ids[order]
        return self._epochs[epoch]

    def batch_ids(self, step: int) -> np.ndarray:
        n, size = len(self.shards.train_ids), self.batch_sequences
        parts, position = [], step * size
        while position < (step + 1) * size:
            epoch, offset = divmod(position, n)
            take = min((step + 1) * size - position, n - offset)
            parts.append(self._epoch(epoch)[offset:offset + take])
            position += take
        return np.concatenate(parts)

    def batch(self, step: int) -> GlobalBatch:
        return self._batch(step, self.batch_ids(step))

    def _batch(self, step: int, ids: np.ndarray) -> GlobalBatch:
        masks = ShardMasks(self.shards, ids) if self.shards.has_mask else None
        return GlobalBatch(step, ShardSequences(self.shards, ids),
                           self.shards.lengths[ids].tolist(), masks,
                           int(self.shards.label_counts[ids].sum()))

    def eval_batches(self, max_sequences: int) -> list[GlobalBatch]:
        """The held-out sequences (the first `max_sequences`, in corpus order), in batches of
        batch_sequences; the same every time, so evaluation losses compare across steps."""
        ids = self.shards.eval_ids[:max_sequences]
        return [self._batch(-1, chunk)
                for chunk in np.array_split(ids, -(-len(ids) // self.batch_sequences))
                if len(chunk)] if len(ids) else []


class CorpusDataset:
    """Batches of `batch_sequences` documents drawn (with replacement) from a text file."""

    def __init__(self, path: str | Path, batch_sequences: int, max_seq_len: int, seed: int,
                 min_seq_len: int = 2) -> None:
        text = Path(path).read_text(encoding="utf-8")
        self.documents = [encode_bytes(d) for d in text.split(DOCUMENT_SEPARATOR)
                          if len(d.encode("utf-8")) >= min_seq_len]
        if not self.documents:
            raise ValueError(f"{path}: no document of at least {min_seq_len} bytes")
        self.batch_sequences, self.max_seq_len, self.seed = batch_sequences, max_seq_len, seed

    def batch(self, step: int) -> GlobalBatch:
        rng = random.Random(self.seed * 1_000_003 + step)
        sequences = []
        for _ in range(self.batch_sequences):
            doc = self.documents[rng.randrange(len(self.documents))]
            # A long document contributes a random window of max_seq_len bytes.
            start = rng.randrange(len(doc) - self.max_seq_len + 1) if len(doc) > self.max_seq_len else 0
            sequences.append(torch.tensor(doc[start:start + self.max_seq_len], dtype=torch.int64))
        return GlobalBatch(step, sequences)


class SyntheticDataset:
    """Random tokens; lengths sampled from a length file, clipped to [2, max_seq_len]."""

    def __init__(self, lengths: list[int], batch_sequences: int, max_seq_len: int,
                 vocab_size: int, seed: int) -> None:
        self.lengths = [min(max(n, 2), max_seq_len) for n in lengths]
        self.batch_sequences, self.vocab_size, self.seed = batch_sequences, vocab_size, seed

    def batch(self, step: int) -> GlobalBatch:
        rng = random.Random(self.seed * 1_000_003 + step)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        sequences = [torch.randint(self.vocab_size, (rng.choice(self.lengths),), generator=generator)
                     for _ in range(self.batch_sequences)]
        return GlobalBatch(step, sequences)


@dataclass
class RankInput:
    tokens: torch.Tensor     # [n] this rank's slice of the packed stream
    positions: torch.Tensor  # [n] position of each token within its own sequence
    labels: torch.Tensor     # [n] next token of the same sequence, or IGNORE
    ctx: PackedContext


def pack_group(sequences: list[torch.Tensor], degree: int,
               masks: list[torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """The group's stream: tokens, positions, labels, each padded to a multiple of `degree`.
    masks: per sequence, True where a token is trained (None: every token)."""
    tokens, positions, labels, cu_seqlens = [], [], [], [0]
    for i, seq in enumerate(sequences):
        tokens.append(seq)
        positions.append(torch.arange(seq.numel(), dtype=torch.int64))
        # Labels are shifted within the sequence, before slicing: the last token predicts
        # nothing, and a label may live on another rank's slice without crossing sequences.
        following = seq[1:]
        if masks is not None:  # position j predicts token j + 1 only where that one is trained
            following = torch.where(masks[i][1:], following, torch.full_like(following, IGNORE))
        labels.append(torch.cat([following, torch.tensor([IGNORE], dtype=torch.int64)]))
        cu_seqlens.append(cu_seqlens[-1] + seq.numel())
    total = cu_seqlens[-1]
    padding = (-total) % degree if total > 0 else 0
    tokens.append(torch.zeros(padding, dtype=torch.int64))
    positions.append(torch.zeros(padding, dtype=torch.int64))
    labels.append(torch.full((padding,), IGNORE, dtype=torch.int64))
    return torch.cat(tokens), torch.cat(positions), torch.cat(labels), cu_seqlens


def rank_input(batch: GlobalBatch, sequence_ids: list[int], degree: int, first_rank: int,
               rank: int, group: dist.ProcessGroup | None) -> RankInput:
    """This rank's contiguous 1/degree slice of the packed stream of one group of a plan."""
    masks = None if batch.masks is None else [batch.masks[i] for i in sequence_ids]
    tokens, positions, labels, cu_seqlens = pack_group(
        [batch.sequences[i] for i in sequence_ids], degree, masks)
    n = tokens.numel() // degree
    lo = (rank - first_rank) * n
    return RankInput(tokens[lo:lo + n], positions[lo:lo + n], labels[lo:lo + n],
                     PackedContext(group, degree, cu_seqlens))


def idle_input() -> RankInput:
    """Input for a rank that no group of a micro-batch uses: no tokens at all.

    The rank still runs forward and backward on it, because FSDP's all-gathers and
    reduce-scatters are collectives over every rank; with no tokens it adds nothing to the
    loss and exactly zero to every gradient.
    """
    empty = torch.zeros(0, dtype=torch.int64)
    return RankInput(empty, empty, empty, PackedContext(None, 1, [0]))



Dataset = TokenDataset | CorpusDataset | SyntheticDataset


def build_dataset(config: Config, vocab_size: int) -> Dataset:
    """The configured data source. Called before any collective: a bad corpus (a truncated shard,
    a batch larger than the corpus, ...) raises ValueError or OSError with the one-line reason,
    the same on every rank."""
    data = config.data
    if data.source == "tokens":
        dataset = TokenDataset(data.path, data.batch_sequences, config.train.seed)
        if dataset.shards.vocab_size > vocab_size:
            raise ValueError(f"{data.path}: its tokenizer has {dataset.shards.vocab_size} tokens, "
                             f"more than the model's vocab_size {vocab_size}")
        if max(dataset.shards.lengths, default=0) > data.max_seq_len:
            raise ValueError(f"{data.path}: prepared with sequences up to "
                             f"{dataset.shards.meta['max_seq_len']} tokens, over data.max_seq_len "
                             f"{data.max_seq_len}; prepare it again with --max-seq-len")
        return dataset
    if config.train.eval_every > 0:
        log.warning("train.eval_every needs held-out sequences, which only data.source 'tokens' "
                    "has (prepare the corpus with python -m flexsp.prepare); no evaluation")
    if data.source == "corpus":
        return CorpusDataset(data.path, data.batch_sequences, data.max_seq_len, config.train.seed)
    if data.source == "synthetic":
        if data.lengths is None:
            raise ValueError("data.source 'synthetic' needs data.lengths (a length file)")
        return SyntheticDataset(load_lengths(data.lengths), data.batch_sequences,
                                data.max_seq_len, vocab_size, config.train.seed)
    raise ValueError(f"data.source must be 'tokens', 'corpus' or 'synthetic', not {data.source!r}")


if __name__ == "__main__":
    # Not a command: say where the command is rather than exit 0 having done nothing.
    raise SystemExit("flexsp.data is a library module; prepare a corpus with: "
                     "python -m flexsp.prepare --tokenizer DIR --input FILE --out DIR")
