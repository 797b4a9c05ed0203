"""A pretrained Hugging Face directory in, a Hugging Face directory out.

Two gloo ranks train a tiny Llama loaded with `model: {hf: DIR}` (weights and a tokenizer) for
two steps, checkpoint and export at the end; `python -m flexsp.export` exports the checkpoint
again in one process. The first step's loss must be plain transformers' loss of that batch with
the source weights (float32, so rtol 1e-5: only summation order differs); the two exports must
hold identical tensors, the source's tokenizer files, and load with plain transformers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import REPO_ROOT, TINY_LLAMA, cost_model_for
from dist_harness import run_world


def pretrained_source(directory: Path) -> None:
    """A tiny Llama with random weights and a small tokenizer, saved the transformers way."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast
    values = dict(TINY_LLAMA)
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values))
    model.save_pretrained(directory)
    vocab = {"[UNK]": 0, **{chr(97 + i): i + 1 for i in range(26)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(directory)


def train(rank: int, world_size: int, argv: list[str]) -> list[dict]:
    os.environ["FLEXSP_BIN"] = "/nonexistent"  # fallback plans: no planner needed
    from flexsp.train import main
    return main(argv)


def plain_loss(directory: Path, sequences: list[torch.Tensor]) -> float:
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        total = sum(F.cross_entropy(model(input_ids=s[None]).logits[0, :-1], s[1:], reduction="sum")
                    for s in sequences)
    return total.item() / sum(len(s) - 1 for s in sequences)


def test_train_from_a_pretrained_directory_export_and_export_a_checkpoint(tmp_path):
    source = tmp_path / "source"
    pretrained_source(source)
    cost_model = tmp_path / "cost-model.json"
    cost_model.write_text(json.dumps(cost_model_for(2)))
    config = tmp_path / "job.yaml"
    config.write_text(f"""
model: {{hf: {source}}}
data: {{source: corpus, path: {REPO_ROOT / 'data/corpus/python-docstrings.txt'}, batch_sequences: 6, max_seq_len: 128}}
train: {{steps: 2, seed: 0, lr: 1.0e-3, collective_timeout_s: 60}}
parallel: {{export_dir: {tmp_path / 'exported'}}}
planner: {{cost_model: {cost_model}, timeout_s: 20, max_restarts: 0}}
""")
    records = run_world(2, train, ["--config", str(config), "--checkpoint-dir",
                                   str(tmp_path / "ckpt"), "--checkpoint-every", "2"],
                        init=False, timeout_s=240)[0]

    from flexsp.config import load_config
    from flexsp.data import build_dataset
    batch = build_dataset(load_config(config), TINY_LLAMA["vocab_size"]).batch(0)
    assert records[0]["loss"] == pytest.approx(plain_loss(source, batch.sequences), rel=1e-5)

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "python"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "flexsp.export", "--config", str(config), "--checkpoint",
         str(tmp_path / "ckpt" / "step-000002"), "--out", str(tmp_path / "from-checkpoint")],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]

    at_end = load_file(tmp_path / "exported" / "model.safetensors")
    from_checkpoint = load_file(tmp_path / "from-checkpoint" / "model.safetensors")
    assert at_end.keys() == from_checkpoint.keys() == load_file(source / "model.safetensors").keys()
    for name, tensor in at_end.items():
        assert torch.equal(tensor, from_checkpoint[name]), name
    from transformers import AutoTokenizer
    for directory in (tmp_path / "exported", tmp_path / "from-checkpoint"):
        assert (directory / "tokenizer.json").is_file()
        assert AutoTokenizer.from_pretrained(directory)("a b c")["input_ids"] == [1, 2, 3]
    # Trained: the exported weights moved away from the source's.
    assert plain_loss(tmp_path / "exported", batch.sequences) != plain_loss(source, batch.sequences)


def test_a_checkpoint_that_is_not_there(tmp_path):
    from flexsp.export import main
    with pytest.raises(SystemExit, match="is not a complete checkpoint"):
        main(["--config", "unused.yaml", "--checkpoint", str(tmp_path), "--out", str(tmp_path)])


def test_an_export_keeps_the_source_dtype(tmp_path):
    """A bf16 source trains in a float32 master copy; its export is bf16 again, the source's
    weights exactly (bf16 -> float32 -> bf16 is lossless), and declares bf16 in config.json. A
    source that declares no dtype (an inline config) is written in the master dtype."""
    import torch.distributed.checkpoint as dcp
    from transformers import AutoConfig, AutoModelForCausalLM
    from flexsp.config import load_config
    from flexsp.export import main
    from flexsp.model import build_model, load_hf_config
    values = dict(TINY_LLAMA)
    torch.manual_seed(5)
    source = tmp_path / "source"
    AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values),
                                     dtype=torch.bfloat16).save_pretrained(source)
    for name, model_section in (("bf16", f"{{hf: {source}}}"),
                                ("inline", "{hf_config: " + json.dumps(TINY_LLAMA) + "}")):
        config_path = tmp_path / f"{name}.yaml"
        config_path.write_text(f"model: {model_section}\ntrain: {{dtype: float32, seed: 3}}\n")
        config = load_config(config_path)
        model = build_model(config.model, load_hf_config(config.model), torch.float32, 3)
        assert next(model.parameters()).dtype == torch.float32
        checkpoint = tmp_path / f"ckpt-{name}"
        dcp.save({"model": model.state_dict()}, checkpoint_id=checkpoint)
        out = tmp_path / f"out-{name}"
        main(["--config", str(config_path), "--checkpoint", str(checkpoint), "--out", str(out)])
        written = load_file(out / "model.safetensors")
        declared = json.loads((out / "config.json").read_text())["dtype"]
        if name == "bf16":
            assert declared == "bfloat16"
            original = load_file(source / "model.safetensors")
            assert written.keys() == original.keys()
            for key, tensor in written.items():
                assert tensor.dtype == torch.bfloat16, key
                assert torch.equal(tensor, original[key]), key
        else:
            assert declared == "float32"
            assert all(t.dtype == torch.float32 for t in written.values())
