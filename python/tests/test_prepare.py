"""Preparing a corpus (token shards, index, length file) and reading it back: formats, splitting,
bad input with errors that name the file and the record, interrupted preparation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from conftest import REPO_ROOT, job_model
from flexsp.data import TokenDataset
from flexsp.engine import micro_batch_input
from flexsp.plan import fallback_plan
from flexsp.prepare import PrepareError, prepare
from flexsp.shards import ShardError, ShardWriter, TokenShards

TOKENIZER = REPO_ROOT / "data" / "tokenizer"
DOCS = ["def f(x):\n    return x + 1\n", "Ünïcode ✓ text", "a " * 300]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(TOKENIZER))


def quiet_prepare(inputs, out, **options):
    return prepare(TOKENIZER, inputs, out, progress=False, **options)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def sequences(out: Path) -> list[list[int]]:
    shards = TokenShards(out)
    return [shards.tokens(i).tolist() for i in range(len(shards.index))]


def test_the_bundled_corpus_prepares_into_shards_an_index_and_a_length_file(prepared_corpus,
                                                                          tokenizer):
    meta = json.loads((prepared_corpus / "meta.json").read_text())
    shards = TokenShards(prepared_corpus)
    assert meta["documents"] == 2470 and meta["dtype"] == "uint16" and meta["vocab_size"] == 4096
    assert len(meta["shards"]) > 1  # 60,000-token shards; no sequence straddles two
    assert meta["tokens"] == int(shards.lengths.sum()) == sum(s["tokens"] for s in meta["shards"])
    assert int(shards.lengths.max()) <= 512 and int(shards.lengths.min()) >= 2
    assert meta["sequences"]["eval"] == len(shards.eval_ids) >= 49  # every 50th document
    lengths = [int(n) for n in (prepared_corpus / "lengths.txt").read_text().split()]
    assert lengths == shards.lengths[shards.train_ids].tolist()
    # The first document comes back exactly, with the end-of-document token appended.
    first = (REPO_ROOT / "data/corpus/python-docstrings.txt").read_text().split("\n\f\n")[0]
    ids = tokenizer(first, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert shards.tokens(0).tolist() == ids[:512]


def test_jsonl_parquet_and_text_give_the_same_tokens(tmp_path, tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq
    write_jsonl(tmp_path / "docs.jsonl", [{"id": i, "body": d} for i, d in enumerate(DOCS)])
    pq.write_table(pa.table({"body": DOCS, "n": [1, 2, 3]}), tmp_path / "docs.parquet")
    (tmp_path / "docs.txt").write_text("\n\f\n".join(DOCS))
    results = []
    for name in ("docs.jsonl", "docs.parquet", "docs.txt"):
        out = tmp_path / f"out-{name}"
        quiet_prepare([tmp_path / name], out, text_field="body", eval_fraction=0)
        results.append(sequences(out))
    eos = tokenizer.eos_token_id
    assert results[0] == results[1] == results[2] == [
        tokenizer(d, add_special_tokens=False)["input_ids"] + [eos] for d in DOCS]


def test_long_documents_are_split_or_truncated(tmp_path):
    path = write_jsonl(tmp_path / "long.jsonl", [{"text": d} for d in DOCS])
    quiet_prepare([path], tmp_path / "split", max_seq_len=64, eval_fraction=0)
    quiet_prepare([path], tmp_path / "cut", max_seq_len=64, long="truncate", eval_fraction=0)
    split, cut = sequences(tmp_path / "split"), sequences(tmp_path / "cut")
    assert len(cut) == 3 and len(split) > 3 and max(map(len, split)) == 64
    whole = sequences_of_whole(tmp_path, path)
    assert sum(split[2:], []) == whole[2] and cut[2] == whole[2][:64]


def sequences_of_whole(tmp_path: Path, path: Path) -> list[list[int]]:
    quiet_prepare([path], tmp_path / "whole", eval_fraction=0)
    return sequences(tmp_path / "whole")


@pytest.mark.parametrize("content, message", [
    ('{"text": "fine"}\n{"body": "no text"}\n', r"bad\.jsonl:2: record has no 'text' field "
                                                r"\(its fields: body\); pass --text-field NAME"),
    ('{"text": "fine"}\n{"text": "  "}\n', r"bad\.jsonl:2: empty document; remove it or pass "
                                           r"--skip-empty"),
    ('{"text": "fine"}\nnot json\n', r"bad\.jsonl:2: not valid JSON"),
    ('{"text": 3}\n', r"bad\.jsonl:1: field 'text' is a int, not a string"),
])
def test_bad_jsonl_names_the_file_the_line_and_the_fix(tmp_path, content, message):
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(PrepareError, match=message):
        quiet_prepare([tmp_path / "bad.jsonl"], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_empty_documents_can_be_skipped(tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", [{"text": "one"}, {"text": ""}, {"text": "two"}])
    meta = quiet_prepare([path], tmp_path / "out", skip_empty=True, eval_fraction=0)
    assert meta["documents"] == 2


def test_non_utf8_names_the_line(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("first\n\f\nsecond\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(PrepareError, match=r"latin1\.txt:4: not UTF-8 \(byte 0xe9\); convert"):
        quiet_prepare([tmp_path / "latin1.txt"], tmp_path / "out")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(PrepareError, match=r"latin1\.jsonl:2: not UTF-8"):
        quiet_prepare([tmp_path / "latin1.jsonl"], tmp_path / "out")


def test_parquet_without_the_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"content": ["a", "b"]}), tmp_path / "docs.parquet")
    with pytest.raises(PrepareError, match=r"docs\.parquet: no column 'text' \(columns: content\); "
                                           r"pass --text-field NAME"):
        quiet_prepare([tmp_path / "docs.parquet"], tmp_path / "out")


def test_a_tokenizer_directory_that_does_not_load(tmp_path):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{not json")
    (tmp_path / "docs.txt").write_text("text")
    for directory, problem in ((tmp_path / "tok", "not a tokenizer directory AutoTokenizer can "
                                                  "load"),
                               (tmp_path / "missing", "no such tokenizer directory")):
        with pytest.raises(PrepareError, match=rf"{directory.name}: {problem}.*data/tokenizer"):
            prepare(directory, [tmp_path / "docs.txt"], tmp_path / "out", progress=False)


def test_an_existing_output_needs_overwrite(tmp_path):
    (tmp_path / "docs.txt").write_text("text")
    quiet_prepare([tmp_path / "docs.txt"], tmp_path / "out")
    with pytest.raises(PrepareError, match=r"out: already exists; pass --overwrite"):
        quiet_prepare([tmp_path / "docs.txt"], tmp_path / "out")
    quiet_prepare([tmp_path / "docs.txt"], tmp_path / "out", overwrite=True)


def test_an_interrupted_preparation_leaves_nothing_training_would_read(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "docs.jsonl", [{"text": d} for d in DOCS * 50])
    calls = []

    def interrupted(self, ids, split, original=ShardWriter.add):
        calls.append(1)
        if len(calls) == 100:  # some shards are on disk by now
            assert list((tmp_path / "out.partial").glob("tokens-*.bin"))
            raise KeyboardInterrupt
        original(self, ids, split)

    monkeypatch.setattr(ShardWriter, "add", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quiet_prepare([path], tmp_path / "out", shard_tokens=500, batch_documents=10)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    # A preparation killed outright leaves OUT.partial, which the reader refuses to read.
    (tmp_path / "out.partial").mkdir()
    with pytest.raises(ShardError, match=r"out: not a prepared corpus, no meta\.json \(its "
                                         r"preparation did not finish\)"):
        TokenShards(tmp_path / "out")


def test_a_truncated_or_mismatched_shard_is_refused(tmp_path, prepared_corpus):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(prepared_corpus, copy)
    shard = copy / "tokens-00001.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ShardError, match=r"tokens-00001\.bin: \d+ bytes, the index expects \d+ "
                                         r"bytes \(truncated, or from another preparation\); "
                                         r"prepare it again"):
        TokenShards(copy)
    shutil.copy(prepared_corpus / "tokens-00001.bin", shard)
    index = np.load(copy / "index.npy")
    index[5, 2] += 100_000  # a sequence running past its shard's end
    np.save(copy / "index.npy", index)
    with pytest.raises(ShardError, match=r"tokens-00000\.bin: the index points past its end"):
        TokenShards(copy)


def test_a_batch_larger_than_the_corpus(tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", [{"text": d} for d in DOCS])
    quiet_prepare([path], tmp_path / "out", eval_fraction=0)
    with pytest.raises(ValueError, match=r"out: a batch of 4 sequences, but the corpus has only 3 "
                                         r"training sequences; lower data.batch_sequences"):
        TokenDataset(tmp_path / "out", batch_sequences=4, seed=0)


def test_batches_are_a_pure_function_of_seed_and_step_and_cover_each_epoch(prepared_corpus):
    a, b = TokenDataset(prepared_corpus, 64, seed=3), TokenDataset(prepared_corpus, 64, seed=3)
    assert np.array_equal(a.batch_ids(100), b.batch_ids(100))  # b never saw steps 0-99
    n = len(a.shards.train_ids)
    stream = np.concatenate([a.batch_ids(s) for s in range(-(-2 * n // 64))])
    assert sorted(stream[:n].tolist()) == sorted(a.shards.train_ids.tolist())  # epoch 0
    assert sorted(stream[n:2 * n].tolist()) == sorted(a.shards.train_ids.tolist())  # epoch 1
    assert not np.array_equal(stream[:n], stream[n:2 * n])
    assert not set(a.shards.eval_ids.tolist()) & set(stream.tolist())
    batch = a.batch(7)
    assert batch.lengths == [len(batch.sequences[i]) for i in range(64)]
    assert sum(len(e.lengths) for e in a.eval_batches(1000)) == len(a.shards.eval_ids)


def test_each_rank_reads_only_its_own_groups_tokens(prepared_corpus, monkeypatch):
    dataset = TokenDataset(prepared_corpus, 512, seed=0)
    batch = dataset.batch(0)
    world = 4
    plan = fallback_plan(batch.lengths, job_model(world))
    read: list[int] = []
    original = TokenShards.tokens
    monkeypatch.setattr(TokenShards, "tokens", lambda self, i: read.append(i) or original(self, i))

    class Pool:  # rank_input only passes the group through
        def get(self, first, degree):
            return None

    ids = dataset.batch_ids(0)
    for rank in range(world):
        read.clear()
        inputs = [micro_batch_input(plan, m, batch, Pool(), rank)
                  for m in range(len(plan.micro_batches))]
        mine = [i for micro_batch in plan.micro_batches for group in micro_batch.groups
                if rank in group.ranks for i in group.sequence_ids]
        assert sorted(read) == sorted(int(ids[i]) for i in mine)
        assert 0 < len(mine) < 512  # a rank touches a fraction of the batch
        assert sum(inp.ctx.cu_seqlens[-1] for inp in inputs) == sum(batch.lengths[i] for i in mine)
