"""The training configuration: plain data read from a YAML file (see configs/tiny-cpu.yaml).

Every value is checked once, at load, against its field's type and range (flexsp/schema.py), so
a bad value stops the job with the file, line and key before any process group forms.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flexsp.model import ModelConfig
from flexsp.schema import ConfigError, ranged, read_section, read_yaml  # noqa: F401 - ConfigError for callers

# The planner's strategies (Sources/FlexSPPlanner/Strategy.swift); static:D takes a degree.
STRATEGIES = ("flexsp", "milp", "batch-ada", "static", "megatron-dcp")


def strategy_problem(name: str) -> str | None:
    if name in STRATEGIES or name == "batchada" or re.fullmatch(r"static:[1-9]\d*", name):
        return None
    near = difflib.get_close_matches(name, STRATEGIES, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"{name!r} is not a strategy; one of {', '.join(STRATEGIES)} or static:D{hint}"


def betas_problem(betas: tuple[float, float]) -> str | None:
    if all(0 <= b < 1 for b in betas):
        return None
    return f"each must be in [0, 1), found {list(betas)}"


@dataclass
class DataConfig:
    source: Literal["tokens", "corpus", "synthetic"] = "corpus"  # "tokens" (a prepared corpus), "corpus" (a text file, byte
                                    # tokens) or "synthetic" (random tokens, a length file)
    path: str = "data/corpus/python-docstrings.txt"  # the prepared directory, for "tokens"
    lengths: str | None = None      # length file, for source "synthetic"
    batch_sequences: int = ranged(32, min=1)
    max_seq_len: int = ranged(1024, min=2)


@dataclass
class TrainConfig:
    steps: int = ranged(100, min=1)
    seed: int = ranged(0, min=0)
    lr: float = ranged(3e-3, gt=0)  # peak learning rate, reached after warm-up
    lr_min: float = ranged(0.0, min=0)  # the cosine schedule's last rate
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: decay to lr_min after warm-up
    warmup_steps: int = ranged(0, min=0)
    betas: tuple[float, float] = ranged((0.9, 0.95), check=betas_problem)
    weight_decay: float = ranged(0.0, min=0)  # on matrices only; never on norms and biases
    max_grad_norm: float | None = ranged(1.0, gt=0)  # null: no clipping
    dtype: Literal["float32", "bfloat16", "float16", "float64"] = "float32"
    checkpoint_dir: str | None = None
    checkpoint_every: int = ranged(0, min=0)  # steps between checkpoints; 0: none
    collective_timeout_s: float = ranged(300.0, gt=0)
    eval_every: int = ranged(0, min=0)  # steps between evaluations on held-out sequences; 0: none
    eval_sequences: int = ranged(256, min=1)  # held-out sequences per evaluation (source "tokens")
    metrics_file: str | None = None  # rank 0 appends JSON lines (flexsp.plot draws them)
    tensorboard_dir: str | None = None  # needs the tensorboard extra
    nonfinite_loss: Literal["stop", "skip"] = "stop"  # a NaN/inf loss: stop, or skip the update


@dataclass
class ParallelConfig:
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"  # FSDP2 MixedPrecisionPolicy
    activation_checkpointing: bool = False  # recompute each decoder layer in backward
    peak_tflops: float | None = ranged(None, gt=0)  # per rank, for MFU; default: known CUDA devices by name
    export_dir: str | None = None     # write a Hugging Face directory here at the end


@dataclass
class PlannerConfig:
    cost_model: str = "configs/tiny-cpu-costmodel.json"
    strategy: str = ranged("flexsp", check=strategy_problem)
    timeout_s: float = ranged(30.0, gt=0)  # how long rank 0 waits for a plan before falling back
    max_restarts: int = ranged(1, min=0)  # restarts of a planner that died, then it is abandoned
    calibrate: bool = True          # refit the cost model's times from measured steps
                                    # (flexsp.calibrate); false: plans from the file's model only


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)


def resolve_path(path: str, config_file: Path) -> str:
    """A relative path is taken from the working directory if it exists there, else from the
    repository root (the config file's parent's parent), so `make demo` and tests agree."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    return str(config_file.resolve().parent.parent / candidate)


def load_config(path: str | Path, overrides: dict[str, tuple[Any, str]] | None = None) -> Config:
    """The config of a YAML file, with `overrides` ({"train.steps": (5, "--steps")}: a value
    and the command-line flag that set it) applied; raises ConfigError (or ModelError) naming
    the file, line and key of the first bad value."""
    path = Path(path)
    raw, source = read_yaml(path)
    classes = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
               "planner": PlannerConfig, "parallel": ParallelConfig}
    for name in raw:
        if name not in classes:
            near = difflib.get_close_matches(str(name), list(classes), n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"sections: {', '.join(classes)}"
            raise source.error(str(name), f"unknown section; {hint}")
    for dotted, (value, flag) in (overrides or {}).items():
        section, key = dotted.split(".")
        if isinstance(raw.get(section, {}), dict) or raw.get(section) is None:
            raw[section] = {**(raw.get(section) or {}), key: value}
            source.flags[dotted] = flag
    config = Config(**{name: read_section(cls, raw.get(name), name, source)
                       for name, cls in classes.items()})
    config.model.check(f"{path}: model")
    if config.train.lr_min > config.train.lr:
        raise source.error("train.lr_min", f"must not exceed train.lr ({config.train.lr:g}), "
                           f"found {config.train.lr_min:g}")
    if config.model.hf is not None:
        config.model.hf = resolve_path(config.model.hf, path)
    if isinstance(config.model.hf_config, str):
        config.model.hf_config = resolve_path(config.model.hf_config, path)
    config.data.path = resolve_path(config.data.path, path)
    if config.data.lengths is not None:
        config.data.lengths = resolve_path(config.data.lengths, path)
    config.planner.cost_model = resolve_path(config.planner.cost_model, path)
    return config
