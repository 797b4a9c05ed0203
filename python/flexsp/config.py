"""The training configuration: plain data read from a YAML file (see configs/tiny-cpu.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from flexsp.model import ModelConfig


@dataclass
class DataConfig:
    source: str = "corpus"          # "tokens" (a prepared corpus), "corpus" (a text file, byte
                                    # tokens) or "synthetic" (random tokens, a length file)
    path: str = "data/corpus/python-docstrings.txt"  # the prepared directory, for "tokens"
    lengths: str | None = None      # length file, for source "synthetic"
    batch_sequences: int = 32
    max_seq_len: int = 1024


@dataclass
class TrainConfig:
    steps: int = 100
    seed: int = 0
    lr: float = 3e-3                # peak learning rate, reached after warm-up
    lr_min: float = 0.0             # the cosine schedule's last rate
    lr_schedule: str = "constant"   # "constant" or "cosine" (decay to lr_min after warm-up)
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0       # on matrices only; never on norms and biases
    max_grad_norm: float | None = 1.0
    dtype: str = "float32"
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0       # steps between checkpoints; 0: none
    collective_timeout_s: float = 300.0
    eval_every: int = 0             # steps between evaluations on held-out sequences; 0: none
    eval_sequences: int = 256       # held-out sequences per evaluation (source "tokens")
    metrics_file: str | None = None  # rank 0 appends JSON lines (flexsp.plot draws them)
    tensorboard_dir: str | None = None  # needs the tensorboard extra


@dataclass
class ParallelConfig:
    mixed_precision: str = "none"   # "none", "bf16" or "fp16" (FSDP2 MixedPrecisionPolicy)
    activation_checkpointing: bool = False  # recompute each decoder layer in backward
    peak_tflops: float | None = None  # per rank, for MFU; default: known CUDA devices by name
    export_dir: str | None = None     # write a Hugging Face directory here at the end


@dataclass
class PlannerConfig:
    cost_model: str = "configs/tiny-cpu-costmodel.json"
    strategy: str = "flexsp"
    timeout_s: float = 30.0         # how long rank 0 waits for a plan before falling back
    max_restarts: int = 1           # restarts of a planner that died, then it is abandoned
    calibrate: bool = True          # refit the cost model's times from measured steps
                                    # (flexsp.calibrate); false: plans from the file's model only


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)


def _section(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    values = values or {}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    if "betas" in values:
        values = {**values, "betas": tuple(values["betas"])}
    return cls(**values)


def resolve_path(path: str, config_file: Path) -> str:
    """A relative path is taken from the working directory if it exists there, else from the
    repository root (the config file's parent's parent), so `make demo` and tests agree."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    return str(config_file.resolve().parent.parent / candidate)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - {"model", "data", "train", "planner", "parallel"})
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}")
    config = Config(
        model=_section(ModelConfig, raw.get("model"), f"{path}: model"),
        data=_section(DataConfig, raw.get("data"), f"{path}: data"),
        train=_section(TrainConfig, raw.get("train"), f"{path}: train"),
        planner=_section(PlannerConfig, raw.get("planner"), f"{path}: planner"),
        parallel=_section(ParallelConfig, raw.get("parallel"), f"{path}: parallel"),
    )
    config.model.check(f"{path}: model")
    if config.model.hf is not None:
        config.model.hf = resolve_path(config.model.hf, path)
    if isinstance(config.model.hf_config, str):
        config.model.hf_config = resolve_path(config.model.hf_config, path)
    config.data.path = resolve_path(config.data.path, path)
    if config.data.lengths is not None:
        config.data.lengths = resolve_path(config.data.lengths, path)
    config.planner.cost_model = resolve_path(config.planner.cost_model, path)
    return config
