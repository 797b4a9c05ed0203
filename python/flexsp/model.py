"""Hugging Face causal LMs on packed token streams, through transformers' attention registry.

A config names the model either by a local directory (`model: {hf: DIR}`: config and weights via
`from_pretrained`) or by a config alone (`model: {hf_config: DIR or inline mapping}`: random
initialization, seeded, so every rank builds the same parameters). Nothing is downloaded.

The model is the unmodified transformers class with `attn_implementation="flexsp"`
(`attention.hf_attention`). It sees one rank's slice of its group's packed stream as a batch of 1:
token ids, position ids that restart at every sequence (so the model's own rotary code is per
sequence; rotary types whose frequencies depend on the sequence length are computed per
sequence by flexsp/rotary.py) and, passed through the model's keyword arguments to attention,
the PackedContext. The model trains in train mode (dropout as configured), whichever way it was
given; evaluation switches to eval mode and back.
A model whose attention cannot be routed so is refused by `check_routable`, naming the feature.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flexsp import rotary
from flexsp.attention import PackedContext, check_degree, register_hf_attention


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class ModelError(ValueError):
    """A model the runtime cannot train, with the reason."""


@dataclass
class ModelConfig:
    """The `model:` section: exactly one of `hf` (a directory with config.json and weights) or
    `hf_config` (a directory with config.json, or the config inline as a mapping with a
    `model_type`)."""

    hf: str | None = None
    hf_config: str | dict[str, Any] | None = None

    def check(self, where: str = "model") -> None:
        if (self.hf is None) == (self.hf_config is None):
            raise ModelError(f"{where}: give exactly one of `hf: DIR` (pretrained weights) or "
                             "`hf_config: DIR or mapping` (random initialization)")


@dataclass(frozen=True)
class ModelShape:
    """The facts of a model that plans and the cost model depend on."""

    model_type: str
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    layers: int
    vocab_size: int

    @staticmethod
    def of(config) -> ModelShape:
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return ModelShape(config.model_type, heads, kv_heads, head_dim, config.hidden_size,
                          config.num_hidden_layers, config.vocab_size)


def max_degree_for(shape: ModelShape, world_size: int) -> int:
    """The largest power of two d <= world such that every power of two up to d splits the
    model's heads (`attention.check_degree`): the plans' `max_degree` for this model."""
    degree = 1
    while degree * 2 <= world_size and check_degree(shape.heads, shape.kv_heads, degree * 2) is None:
        degree *= 2
    return degree


def check_max_degree(shape: ModelShape, max_degree: int) -> None:
    """Refuses a cost model whose `max_degree` lets the planner pick a degree the heads do not
    allow, naming the heads and the degree."""
    degree = 2
    while degree <= max_degree:
        problem = check_degree(shape.heads, shape.kv_heads, degree)
        if problem is not None:
            raise ModelError(f"the cost model allows degree up to {max_degree}, but "
                             f"{shape.model_type}'s {problem} (largest usable max_degree: "
                             f"{max_degree_for(shape, max_degree)})")
        degree *= 2


def _model_dir(path: str, key: str) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise ModelError(f"model.{key}: {path} is not a directory")
    config_file = directory / "config.json"
    if not config_file.is_file() or not os.access(config_file, os.R_OK):
        raise ModelError(f"model.{key}: {config_file} is missing or unreadable")
    if key == "hf" and not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(f"model.hf: {directory} has no weights ({', '.join(WEIGHT_FILES)}); "
                         "for a random initialization name it as model.hf_config")
    return directory


def load_hf_config(model: ModelConfig):
    """The transformers config the `model:` section names (no download, no weights)."""
    from transformers import AutoConfig
    model.check()
    if model.hf is not None or isinstance(model.hf_config, str):
        key = "hf" if model.hf is not None else "hf_config"
        directory = _model_dir(model.hf or model.hf_config, key)
        try:
            return AutoConfig.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ModelError(f"model.{key}: {directory}: cannot read its config: {error}") from None
    values = dict(model.hf_config)
    model_type = values.pop("model_type", None)
    if model_type is None:
        raise ModelError("model.hf_config: an inline config needs a `model_type` "
                         "(llama, qwen2, qwen3, mistral, ...)")
    try:
        return AutoConfig.for_model(model_type, **values)
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"model.hf_config: {error}") from None


def check_routable(config, max_seq_len: int) -> None:
    """Refuses, naming the model type and the feature, a model whose attention FlexSP cannot
    route: one that is not a decoder-only causal LM, does not call attention through
    transformers' registry, or uses an attention feature hf_attention does not implement."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING
    name = config.model_type

    def refuse(feature: str) -> None:
        raise ModelError(f"model type {name!r} cannot be trained under FlexSP: {feature}")

    if getattr(config, "is_encoder_decoder", False):
        refuse("it is an encoder-decoder model")
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        refuse("it is not a causal LM known to AutoModelForCausalLM")
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    if not getattr(model_class, "_supports_attention_backend", False):
        refuse(f"{model_class.__name__} does not call attention through transformers' "
               "attention-function registry")
    if getattr(config, "add_cross_attention", False):
        refuse("cross-attention")
    if not getattr(config, "is_causal", True):
        refuse("bidirectional attention (is_causal false)")
    if hasattr(config, "text_config") or hasattr(config, "vision_config"):
        refuse("a multimodal model")
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if window is not None and (layer_types is None or "sliding_attention" in layer_types) \
            and window < max_seq_len:
        refuse(f"sliding-window attention (window {window} < data.max_seq_len {max_seq_len})")
    if layer_types is not None and set(layer_types) - {"full_attention", "sliding_attention"}:
        refuse(f"layer types {sorted(set(layer_types) - {'full_attention', 'sliding_attention'})}")
    for feature in ("attn_logit_softcapping", "attention_chunk_size"):
        if getattr(config, feature, None):
            refuse(f"{feature} {getattr(config, feature)}")
    if getattr(config, "attention_dropout", 0.0):
        refuse(f"attention dropout {config.attention_dropout}")
    if getattr(config, "num_attention_heads", None) is None:
        refuse("no num_attention_heads in its config")
    if getattr(config, "output_router_logits", False):
        refuse("output_router_logits is set, asking for the router's auxiliary load-balancing "
               "loss, which FlexSP does not add: it is a product of means over every token of a "
               "forward call, so under a plan it would depend on the plan; set "
               "output_router_logits: false to train the language-model loss")


def saved_dtype(config, master: torch.dtype) -> torch.dtype:
    """The dtype a model's weights are exported in: the one its transformers config declares
    (a bf16 checkpoint stays bf16), else the master dtype training keeps them in."""
    declared = getattr(config, "dtype", None)
    return declared if isinstance(declared, torch.dtype) else master


def build_model(model: ModelConfig, config, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """The model on the CPU in `dtype`, with FlexSP attention: pretrained weights from `hf`, or
    a random initialization from `hf_config` that depends only on `seed` (identical on every
    rank). `config` is the transformers config `load_hf_config` read, left unchanged."""
    from transformers import AutoModelForCausalLM
    attention = register_hf_attention()
    # transformers writes the load dtype into the config it is given; the caller's stays as read.
    config = copy.deepcopy(config)
    if model.hf is not None:
        try:
            built = AutoModelForCausalLM.from_pretrained(
                model.hf, config=config, attn_implementation=attention, dtype=dtype,
                local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelError(f"model.hf: {model.hf}: cannot load the model: {error}") from None
    else:
        torch.manual_seed(seed)
        built = AutoModelForCausalLM.from_config(config, attn_implementation=attention, dtype=dtype)
    try:
        rotary.install(built, decoder_layers(built))
    except rotary.RotaryError as error:
        raise ModelError(f"model type {config.model_type!r} cannot be trained under FlexSP: "
                         f"{error}") from None
    built.train()  # from_pretrained hands back eval mode; training wants dropout as configured
    return built


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's decoder layers (the FSDP and activation-checkpointing units)."""
    return model.get_decoder().layers


def forward_logits(model: torch.nn.Module, tokens: torch.Tensor, positions: torch.Tensor,
                   ctx: PackedContext) -> torch.Tensor:
    """Logits [n, vocab] for this rank's slice: tokens, positions [n].

    A rank idle in a micro-batch has no tokens, but must still run the model (FSDP's
    collectives involve every rank), and transformers cannot reshape an empty batch: it runs one
    padding token instead (outside every sequence, so attention gives it zeros) and returns no
    logits, which adds nothing to the loss and exactly zero to every gradient.
    """
    n = tokens.numel()
    if n == 0:
        tokens, positions = tokens.new_zeros(1), positions.new_zeros(1)
    if rotary.has_per_sequence_rotary(model):
        rotary.set_token_lengths(model, rotary.token_lengths(ctx, tokens.numel()))
    logits = model(input_ids=tokens[None], position_ids=positions[None], flexsp_context=ctx,
                   use_cache=False).logits[0, :n]
    # The loss of half-precision logits is computed in float32.
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
