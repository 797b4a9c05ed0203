"""Fine-tuning data: chat corpora prepared with loss masks, and training that honours them.

The oracle test prepares part of the bundled chat corpus (data/chat) with the shipped tokenizer
and template, takes a batch of it, and compares FlexSP on 4 gloo ranks under mixed-degree
plans with plain transformers in one process, float64: each sequence alone, labels = its tokens
with -100 wherever the mask says "not trained", and the loss transformers computes for
gradient accumulation (`num_items_in_batch` = the batch's label tokens), summed over the
sequences: the mean over the global batch's label tokens. Loss, gradient and the step must
agree to the tolerances of test_hf_parity.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh

from conftest import REPO_ROOT, cost_model_for, make_plan
from dist_harness import run_world
from flexsp.cost_model import CostModel
from flexsp.data import IGNORE, GlobalBatch, TokenDataset, pack_group
from flexsp.engine import train_step
from flexsp.groups import GroupPool
from flexsp.model import ModelConfig, build_model, load_hf_config
from flexsp.parallelize import apply_fsdp
from flexsp.plan import check_plan
from flexsp.planner_client import find_planner_binary
from flexsp.prepare import PrepareError, prepare
from flexsp.shards import TokenShards

TOKENIZER = REPO_ROOT / "data" / "tokenizer"
TEMPLATE = REPO_ROOT / "data" / "chat" / "chat_template.jinja"
CORPUS = REPO_ROOT / "data" / "chat" / "conversations.jsonl"
MODEL = dict(model_type="llama", vocab_size=4096, hidden_size=32, intermediate_size=48,
             num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
             max_position_embeddings=1024)
BATCH = 12
PLANS = {
    "<4>": [[(4, 0, list(range(BATCH)))]],
    "<2,1,1>": [[(2, 0, [0, 1, 2, 3]), (1, 2, [4, 5, 6, 7]), (1, 3, [8, 9, 10, 11])]],
    "<1,1,1,1> then <2,-,2>": [[(1, 0, [0, 1]), (1, 1, [2, 3]), (1, 2, [4, 5]), (1, 3, [6, 7])],
                               [(2, 0, [8, 9]), (2, 2, [10, 11])]],
}
SEED = 6
RTOL, ATOL = 1e-9, 1e-12


def prepare_chat(inputs, out, **options):
    return prepare(TOKENIZER, inputs, out, format="chat", chat_template=TEMPLATE,
                   progress=False, **options)


@pytest.fixture(scope="module")
def chat_corpus(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("chat") / "part.jsonl"
    source.write_text("".join(CORPUS.read_text().splitlines(keepends=True)[:80]))
    out = source.with_name("prepared")
    prepare_chat([source], out, max_seq_len=512, eval_fraction=0.1)
    return out


def oracle(batch: GlobalBatch) -> dict:
    """transformers alone, float64, labels -100 where the mask says so."""
    from transformers import AutoConfig, AutoModelForCausalLM
    values = dict(MODEL)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa",
                                             dtype=torch.float64)
    items = sum(int(m[1:].sum()) for m in batch.masks)
    loss = hf_loss = 0.0
    for tokens, mask in zip(batch.sequences, batch.masks):
        labels = torch.where(mask, tokens, torch.full_like(tokens, -100))
        out = model(input_ids=tokens[None], labels=labels[None], num_items_in_batch=items)
        # transformers' own loss shifts the labels and ignores -100, but in float32 (it upcasts
        # the logits); the same sum in float64 is the reference, its loss a cross-check.
        hf_loss += out.loss.item()
        loss = loss + F.cross_entropy(out.logits[0, :-1], labels[1:], ignore_index=-100,
                                      reduction="sum") / items
    assert hf_loss == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return {"loss": loss.item(), "grads": grads, "items": items}


def sft_worker(rank: int, world_size: int, corpus: str, reference: dict) -> dict:
    pool = GroupPool(world_size, rank)
    mesh = init_device_mesh("cpu", (world_size,))
    cost_model = cost_model_for(world_size)
    batch = TokenDataset(corpus, BATCH, seed=0).batch(0)
    assert batch.label_tokens == reference["items"]
    spec = ModelConfig(hf_config=dict(MODEL))
    errors = {}
    for plan_name, groups in PLANS.items():
        model = build_model(spec, load_hf_config(spec), torch.float64, SEED)
        apply_fsdp(model, mesh)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        seen = {}
        optimizer.register_step_pre_hook(lambda *_: seen.update(grads={
            n: p.grad.full_tensor() for n, p in model.named_parameters()}))
        plan = check_plan(make_plan(cost_model, batch.lengths, groups),
                          CostModel.from_document(cost_model), batch.lengths)
        loss, _ = train_step(model, optimizer, plan, batch, pool, rank, world_size)
        assert loss == pytest.approx(reference["loss"], rel=1e-12), plan_name
        worst = 0.0
        for name, grad in seen["grads"].items():
            ref = reference["grads"][name]
            torch.testing.assert_close(grad, ref, rtol=RTOL, atol=ATOL,
                                       msg=lambda m: f"{plan_name}: {name}: {m}")
            worst = max(worst, ((grad - ref).abs().max() / ref.abs().max()).item())
        errors[plan_name] = (abs(loss - reference["loss"]) / reference["loss"], worst)
    return errors


def test_masked_loss_and_gradients_equal_transformers_on_4_ranks(chat_corpus):
    batch = TokenDataset(chat_corpus, BATCH, seed=0).batch(0)
    masks = list(batch.masks)
    trained = sum(int(m.sum()) for m in masks)
    assert 0 < trained < sum(batch.lengths)  # prompts are masked, replies are not
    reference = oracle(GlobalBatch(0, list(batch.sequences), masks=masks))
    errors = run_world(4, sft_worker, str(chat_corpus), reference, timeout_s=300)[0]
    assert set(errors) == set(PLANS)


def test_labels_follow_the_mask_within_each_sequence():
    a, b = torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10, 11])
    masks = [torch.tensor([False, False, True, True]), torch.tensor([False, True, False])]
    _, _, labels, _ = pack_group([a, b], 4, masks)
    # Position i predicts token i + 1 of its sequence, only where that token is trained.
    assert labels.tolist() == [IGNORE, 7, 8, IGNORE, 10, IGNORE, IGNORE, IGNORE]
    batch = GlobalBatch(0, [a, b], masks=masks)
    assert batch.label_tokens == 3
    assert GlobalBatch(0, [a, b]).label_tokens == 5  # no mask: every next token


def test_prepared_masks_match_the_chat_encoding(chat_corpus):
    from flexsp.chat import ChatEncoder, Conversation, check_messages, set_chat_template
    from flexsp.prepare import load_tokenizer
    meta = json.loads((chat_corpus / "meta.json").read_text())
    assert meta["input_format"] == "chat" and meta["loss_mask"] is True
    assert meta["mask_method"] == "generation markers"
    assert (chat_corpus / "chat_template.jinja").read_text() == TEMPLATE.read_text()
    shards = TokenShards(chat_corpus)
    tokenizer = load_tokenizer(TOKENIZER)
    encoder = ChatEncoder(tokenizer, set_chat_template(tokenizer, TEMPLATE, TOKENIZER))
    first = json.loads(CORPUS.read_text().splitlines()[0])["messages"]
    [(ids, mask)] = encoder.encode([Conversation(check_messages(first, "c", "messages"), "c")])
    assert shards.tokens(0).tolist() == ids[:512]
    assert shards.mask(0).tolist() == [bool(m) for m in mask[:512]]
    counts = [int(shards.mask(i)[1:].sum()) for i in range(len(shards.index))]
    assert shards.label_counts.tolist() == counts and min(counts) > 0


def test_jsonl_and_parquet_give_the_same_shards_and_unlabelled_pieces_are_left_out(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    long_prompt = "Summarize: " + "words and more words " * 60
    records = [
        {"id": 1, "conv": [{"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello."}]},
        # With --max-seq-len 64 the first pieces hold only the prompt: no label, left out.
        {"id": 2, "conv": [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": long_prompt},
                           {"role": "assistant", "content": "Words."}]},
    ]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "c.parquet")
    results = []
    for name in ("c.jsonl", "c.parquet"):
        out = tmp_path / f"out-{name}"
        meta = prepare_chat([tmp_path / name], out, messages_field="conv", max_seq_len=64,
                            eval_fraction=0)
        shards = TokenShards(out)
        results.append([(shards.tokens(i).tolist(), shards.mask(i).tolist())
                        for i in range(len(shards.index))])
        assert meta["no_label_sequences"] >= 3 and meta["documents"] == 2
        assert all(any(mask[1:]) for _, mask in results[-1])
    assert results[0] == results[1]


def test_prefix_rendering_prepares_the_same_masks_as_generation_markers(tmp_path):
    source = tmp_path / "c.jsonl"
    source.write_text("".join(CORPUS.read_text().splitlines(keepends=True)[:40]))
    plain = tmp_path / "plain.jinja"
    plain.write_text(TEMPLATE.read_text().replace("{% generation %}", "")
                     .replace("{% endgeneration %}", ""))
    marked = prepare_chat([source], tmp_path / "marked", batch_documents=20)
    unmarked = prepare(TOKENIZER, [source], tmp_path / "plain", format="chat",
                       chat_template=plain, batch_documents=20, progress=False)
    assert (marked["mask_method"], unmarked["mask_method"]) == ("generation markers",
                                                                "prefix rendering")
    for name in ("tokens-00000.bin", "mask-00000.bin", "labels.npy", "index.npy"):
        assert (tmp_path / "marked" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()


def run_prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flexsp.prepare", "--quiet", *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                          env={"PYTHONPATH": str(REPO_ROOT / "python"), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("records, template, message", [
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
     False, "data/tokenizer: the tokenizer has no chat template; pass --chat-template FILE"),
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
      {"messages": [{"role": "user", "content": "only a question"}]}],
     True, "c.jsonl:2: the conversation has no assistant turn"),
    ([{"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
     True, "c.jsonl:1: message 1 has the unknown role 'human'"),
    ([{"text": "plain"}], True, "c.jsonl:1: record has no 'messages' field"),
])
def test_bad_chat_input_is_one_line_naming_the_record(tmp_path, records, template, message):
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    args = ["--format", "chat", "--messages-field", "messages", "--tokenizer", "data/tokenizer",
            "--input", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "out")]
    if template:
        args += ["--chat-template", str(TEMPLATE)]
    result = run_prepare(*args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_the_cli_reports_the_masked_fraction(tmp_path):
    source = tmp_path / "c.jsonl"
    source.write_text("".join(CORPUS.read_text().splitlines(keepends=True)[:50]))
    result = run_prepare("--format", "chat", "--tokenizer", "data/tokenizer", "--chat-template",
                         str(TEMPLATE), "--input", str(source), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert 0 < meta["trained_tokens"] < meta["tokens"]
    assert f"{1 - meta['trained_tokens'] / meta['tokens']:.1%} of tokens masked" in result.stdout


def train(rank: int, world_size: int, argv: list[str], planner_binary: str) -> list[dict]:
    os.environ["FLEXSP_BIN"] = planner_binary
    from flexsp.train import main
    return main(argv)


def test_the_sft_config_trains_evaluates_and_exports_a_chat_model(tmp_path, chat_corpus):
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer
    config = yaml.safe_load((REPO_ROOT / "configs" / "sft-cpu.yaml").read_text())
    cost_model = tmp_path / "cost-model.json"
    cost_model.write_text(json.dumps(cost_model_for(4)))
    config["data"].update(path=str(chat_corpus), batch_sequences=8, max_seq_len=512)
    config["train"].update(steps=2, eval_every=2, eval_sequences=8, metrics_file=None,
                           collective_timeout_s=60)
    config["planner"].update(cost_model=str(cost_model), timeout_s=20, max_restarts=0)
    config["parallel"]["export_dir"] = str(tmp_path / "model")
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(config))
    binary = find_planner_binary() or "/nonexistent"
    records = run_world(4, train, ["--config", str(tmp_path / "sft.yaml")], binary, init=False,
                        timeout_s=300)[0]
    assert [r["step"] for r in records] == [1, 2] and "eval_loss" in records[-1]
    assert all(math.isfinite(r["loss"]) for r in records)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert tokenizer.chat_template == TEMPLATE.read_text()  # exported with what it learned
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")


if __name__ == "__main__":  # the figures of the report
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prepared"
        source = Path(tmp) / "part.jsonl"
        source.write_text("".join(CORPUS.read_text().splitlines(keepends=True)[:80]))
        prepare_chat([source], out, max_seq_len=512, eval_fraction=0.1)
        batch = TokenDataset(out, BATCH, seed=0).batch(0)
        reference = oracle(GlobalBatch(0, list(batch.sequences), masks=list(batch.masks)))
        for plan, (loss, grad) in run_world(4, sft_worker, str(out), reference,
                                            timeout_s=600)[0].items():
            print(f"sft {plan:24s} loss {loss:.1e}  grad {grad:.1e}")
