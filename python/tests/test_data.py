"""Packing, slicing, positions and labels; the datasets and the byte tokenizer."""

from pathlib import Path

import pytest
import torch

from flexsp.data import (IGNORE, CorpusDataset, GlobalBatch, SyntheticDataset, decode_bytes,
                         encode_bytes, load_lengths, rank_input)

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT / "data" / "corpus" / "python-docstrings.txt"


def batch_of(lengths: list[int]) -> GlobalBatch:
    # Token value = 1000 * sequence + position, so every token says where it comes from.
    return GlobalBatch(0, [torch.arange(n) + 1000 * i for i, n in enumerate(lengths)])


@pytest.mark.parametrize("degree", [1, 2, 4, 8])
def test_slices_cover_the_stream_with_per_sequence_positions_and_labels(degree):
    lengths = [5, 1, 3, 8, 2]
    batch = batch_of(lengths)
    ids = [3, 0, 4, 1, 2]
    parts = [rank_input(batch, ids, degree, 8, 8 + r, None) for r in range(degree)]
    n = parts[0].tokens.numel()
    assert all(p.tokens.numel() == n for p in parts)
    tokens = torch.cat([p.tokens for p in parts])
    positions = torch.cat([p.positions for p in parts])
    labels = torch.cat([p.labels for p in parts])
    total = sum(lengths)
    assert tokens.numel() == total + (-total) % degree  # padded to a multiple of the degree
    expected = torch.cat([batch.sequences[i] for i in ids])
    assert torch.equal(tokens[:total], expected)
    assert torch.equal(positions[:total], expected % 1000)  # restart at every sequence
    for i in range(total):
        if i + 1 < total and tokens[i + 1] // 1000 == tokens[i] // 1000:
            assert labels[i] == tokens[i + 1]  # the next token of the same sequence
        else:
            assert labels[i] == IGNORE  # never across a sequence boundary
    assert (labels[total:] == IGNORE).all()
    assert parts[0].ctx.cu_seqlens == [0, 8, 13, 15, 16, 19]
    assert parts[0].ctx.degree == degree


def test_byte_tokenizer_round_trip():
    text = "def f():\n    return 'é'\n"
    tokens = encode_bytes(text)
    assert max(tokens) < 256 and decode_bytes(tokens) == text


def test_corpus_batches_are_deterministic_and_long_tailed():
    dataset = CorpusDataset(CORPUS, batch_sequences=64, max_seq_len=1024, seed=0)
    assert len(dataset.documents) > 1000
    a, b, c = dataset.batch(3), dataset.batch(3), dataset.batch(4)
    assert a.lengths == b.lengths and all(torch.equal(x, y) for x, y in zip(a.sequences, b.sequences))
    assert a.lengths != c.lengths
    assert max(a.lengths) <= 1024 and min(a.lengths) >= 2
    lengths = sorted(a.lengths)
    assert lengths[-1] > 4 * lengths[len(lengths) // 2]  # a long tail, which FlexSP is for
    assert CORPUS.stat().st_size < 1_000_000


def test_synthetic_batches_follow_the_length_file(tmp_path):
    path = tmp_path / "lengths.txt"
    path.write_text("# lengths\n100\n7\n\n1\n5000\n")
    assert load_lengths(path) == [100, 7, 1, 5000]
    dataset = SyntheticDataset(load_lengths(path), 50, max_seq_len=512, vocab_size=256, seed=1)
    batch = dataset.batch(0)
    assert set(batch.lengths) <= {100, 7, 2, 512}
    assert all(int(s.max()) < 256 for s in batch.sequences)
    assert batch.lengths == dataset.batch(0).lengths
