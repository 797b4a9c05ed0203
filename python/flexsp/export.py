"""Writes the trained model as a Hugging Face directory that plain transformers loads.

    python -m flexsp.export --config configs/tiny-cpu.yaml --checkpoint ckpt/step-000100 --out DIR

At the end of training `flexsp.train` calls `export_hf` itself (`parallel.export_dir` or
`--export DIR`); on demand this entry point does the same from a checkpoint, in one process.
The directory holds config.json (the model's own class in `architectures`, no FlexSP attention
named), model.safetensors, and the tokenizer files of the source directory when it had them.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from flexsp.checkpoint import CheckpointError, check_fits, first_failure
from flexsp.config import load_config
from flexsp.manifest import verify
from flexsp.outputs import writable_directory
from flexsp.model import build_model, load_hf_config, saved_dtype

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                   "chat_template.jinja", "generation_config.json")


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def save_hf_directory(config, state: dict[str, torch.Tensor], out_dir: str | Path,
                      source_dir: str | Path | None = None, dtype: torch.dtype | None = None
                      ) -> Path:
    """A clean copy of the model (its own class, default attention) with `state` in `dtype`
    (None: the state's own), saved with save_pretrained; the tokenizer files of `source_dir`
    copied beside it."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoModelForCausalLM
    config = copy.deepcopy(config)
    config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].__name__]
    if dtype is None:
        dtype = next(iter(state.values())).dtype
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    # A tied output layer may be absent from `state` or present twice; nothing else may differ.
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    if set(missing) - tied or unexpected:
        raise ValueError(f"export: state does not fit {type(model).__name__}: missing "
                         f"{sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    model.tie_weights()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    model.save_pretrained(out)
    if source_dir is not None:
        for name in TOKENIZER_FILES:
            if (Path(source_dir) / name).is_file():
                shutil.copy2(Path(source_dir) / name, out / name)
    return out


def export_hf(model: torch.nn.Module, out_dir: str | Path, source_dir: str | Path | None = None,
              dtype: torch.dtype | None = None) -> Path | None:
    """Gathers the (FSDP-sharded) model's full state on rank 0 and writes the directory there,
    in `dtype` (None: the master dtype; see model.saved_dtype). A collective when distributed:
    every rank calls it; returns the path on rank 0."""
    if dist.is_initialized():
        state = get_model_state_dict(
            model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = save_hf_directory(model.config, state, out_dir, source_dir, dtype) if _rank() == 0 else None
    if dist.is_initialized():
        dist.barrier()  # the directory is complete before any rank goes on
    return path


def export_checkpoint(config_path: str, checkpoint: str, out_dir: str) -> Path:
    """The model state of a training checkpoint (flexsp.checkpoint), exported in one process."""
    config = load_config(config_path)
    problem = verify(checkpoint)
    if problem is not None:
        raise CheckpointError(f"{checkpoint}: damaged ({problem})")
    hf_config = load_hf_config(config.model)
    master = getattr(torch, config.train.dtype)
    model = build_model(config.model, hf_config, master, config.train.seed)
    state = {"model": model.state_dict()}
    check_fits(checkpoint, state["model"])
    writable_directory(out_dir, "--out")
    try:
        dcp.load(state, checkpoint_id=checkpoint)
    except CheckpointException as error:  # damaged in a way no manifest recorded (an old one)
        raise CheckpointError(f"{checkpoint}: cannot be read ({first_failure(error)})") from None
    model.load_state_dict(state["model"])
    return export_hf(model, out_dir, config.model.hf, saved_dtype(hf_config, master))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flexsp.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the training config (its model section)")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint directory (step-NNNNNN)")
    parser.add_argument("--out", required=True, help="the Hugging Face directory to write")
    args = parser.parse_args(argv)
    if not (Path(args.checkpoint) / ".metadata").is_file():
        raise SystemExit(f"flexsp.export: {args.checkpoint} is not a complete checkpoint "
                         "(no .metadata)")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SystemExit(f"flexsp.export: {args.out}: a file, not a directory; --out names the "
                         "directory to write")
    try:
        path = export_checkpoint(args.config, args.checkpoint, args.out)
    except (ValueError, OSError) as error:  # config, checkpoint, output: each names itself
        raise SystemExit(f"flexsp.export: {error}") from None
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
