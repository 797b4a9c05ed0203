"""Preparation in bounded memory: long documents read and tokenized a window at a time give the
tokens of the whole document, and the bundled corpus prepares to the same bytes as before."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from conftest import REPO_ROOT
from flexsp import streaming
from flexsp.prepare import prepare
from flexsp.streaming import Pieces, encode_long, split_document, text_fragments, windows

TOKENIZER = REPO_ROOT / "data" / "tokenizer"
CORPUS = REPO_ROOT / "data" / "corpus" / "python-docstrings.txt"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(TOKENIZER))


def test_windows_give_the_tokens_of_the_whole_document(tokenizer):
    text = CORPUS.read_text()[:200_000]  # docstrings, code, blank lines, non-ASCII
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    for window in (300, 4096):  # hundreds of cuts
        joined = [i for ids in encode_long(tokenizer, windows(text, 3000), window) for i in ids]
        assert joined == whole, window


def test_pieces_cut_a_stream_as_split_document_cuts_the_whole():
    rng = random.Random(0)
    for _ in range(2000):
        n, max_seq_len = rng.randrange(0, 40), rng.randrange(2, 9)
        long = rng.choice(["split", "truncate"])
        ids, pieces, got, i = list(range(n)), Pieces(max_seq_len, long), [], 0
        while i < n:
            step = rng.randrange(1, 7)
            got += pieces.feed(ids[i:i + step])
            i += step
        assert got + pieces.finish(99) == split_document(ids + [99], max_seq_len, long)


def test_text_fragments_are_the_documents_and_their_lines():
    separator = "\n\f\n"
    documents, lines, current = [], [], ""
    for text, line, more in text_fragments(CORPUS, separator, ValueError, limit=1000):
        if not current:
            lines.append(line)
        current += text
        if not more:
            documents.append(current)
            current = ""
    parts = CORPUS.read_text().split(separator)
    assert documents == parts
    expected, line = [], 1
    for part in parts:
        expected.append(line)
        line += part.count("\n") + separator.count("\n")
    assert lines == expected


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in out.iterdir() if p.name != "meta.json"):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("options, expected", [
    ({}, "faa239c4a30d3d952939322f4f423708a200d1b9b0d2dbec8be4c73313dcd80c"),
    ({"max_seq_len": 64, "shard_tokens": 60000},
     "8130e858e3b9707acaa38d1902764cbcb9485a0debc620dac339a93bd32fe51d"),
])
def test_the_bundled_corpus_prepares_to_the_same_bytes_as_before(tmp_path, options, expected):
    # Digests of tokens-*.bin, index.npy and lengths.txt from the preparation before windows.
    prepare(TOKENIZER, [CORPUS], tmp_path / "out", progress=False, **options)
    assert digest(tmp_path / "out") == expected


def test_a_long_document_prepares_as_if_tokenized_whole(tmp_path, tokenizer, monkeypatch):
    text = CORPUS.read_text().replace("\n\f\n", "\n\n")  # one document of 0.9 MB
    (tmp_path / "one.txt").write_text(text)
    monkeypatch.setattr(streaming, "WINDOW_CHARS", 5000)
    monkeypatch.setattr(streaming, "BLOCK_BYTES", 7000)
    meta = prepare(TOKENIZER, [tmp_path / "one.txt"], tmp_path / "out", max_seq_len=256,
                   eval_fraction=0, progress=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    expected = split_document(ids, 256, "split")
    from flexsp.shards import TokenShards
    shards = TokenShards(tmp_path / "out")
    assert meta["documents"] == 1
    assert [shards.tokens(i).tolist() for i in range(len(shards.index))] == expected
