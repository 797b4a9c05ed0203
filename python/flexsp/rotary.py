"""Rotary embeddings whose frequencies depend on the sequence length, computed per sequence.

transformers' "longrope" (Phi-3-128k, Phi-3.5, Phi-4-mini) and "dynamic" NTK scaling pick their
frequencies in the rotary module's forward from the largest position id of the call
(`modeling_rope_utils.dynamic_rope_update`): longrope switches to its long factors when
max(position_ids) + 1 > original_max_position_embeddings, dynamic NTK stretches the base once
it exceeds max_position_embeddings. A FlexSP forward call is one rank's slice of a packed stream,
so that maximum would belong to whichever sequence is longest in the slice: a short sequence
packed beside a long one would get the long factors, and one long sequence sharded over d ranks
different factors on different ranks.

`install` replaces the forward of such a rotary module by one that reads each token's own
sequence length (set by `model.forward_logits` from the PackedContext, identical on every rank
of a group) and computes each sequence's cos/sin with exactly the frequencies transformers
would choose for that sequence alone, in a fresh model: longrope's long set when the sequence
is longer than original_max_position_embeddings, else the short (original) set; dynamic NTK's
frequencies for the sequence's length when it exceeds max_position_embeddings, else the
original ones. The module's own undecorated forward turns frequencies into cos/sin, so any
model-specific layout (partial rotary, attention scaling) stays the model's.

Every other rope_type transformers defines (default, linear, yarn, llama3, proportional) is a
function of the config alone, so the model's own rotary code, fed per-sequence position ids,
is already exact and is left alone.
"""

from __future__ import annotations

import inspect
from types import MethodType

import torch
import torch.distributed as dist

from flexsp.attention import PackedContext


class RotaryError(ValueError):
    """A length-dependent rotary embedding FlexSP cannot compute per sequence."""


def is_length_dependent(rope_type: str) -> bool:
    """Whether transformers picks this rope_type's frequencies from the call's positions
    (`dynamic_rope_update`: "dynamic" in the name, or "longrope")."""
    return rope_type == "longrope" or "dynamic" in rope_type


def length_dependent_types(config) -> list[str]:
    """The length-dependent rope types a config's `rope_parameters` name (per layer type too)."""
    params = getattr(config, "rope_parameters", None) or {}
    if not isinstance(params, dict):
        return []
    nested = [v for v in params.values() if isinstance(v, dict)]
    types = [p.get("rope_type", "default") for p in (nested or [params])]
    return sorted({t for t in types if isinstance(t, str) and is_length_dependent(t)})


def _rope_types(module) -> dict[str | None, str]:
    """layer_type -> rope_type of a rotary module (None: the module has a single one)."""
    rope_type = module.rope_type
    return dict(rope_type) if isinstance(rope_type, dict) else {None: rope_type}


def _rotary_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules()
            if hasattr(m, "rope_type") and hasattr(m, "config") and any(
                is_length_dependent(t) for t in _rope_types(m).values() if isinstance(t, str))]


def install(model: torch.nn.Module, layers: torch.nn.ModuleList) -> int:
    """Makes every length-dependent rotary module of `model` compute per sequence; returns how
    many there are. Refuses (RotaryError, naming the rope type) a model whose config asks for
    length-dependent frequencies that this cannot honour: no rotary module FlexSP recognizes,
    or one computed inside each decoder layer (activation checkpointing would recompute it in
    backward, after the packed context is gone)."""
    wanted = length_dependent_types(model.config)
    modules = _rotary_modules(model)
    if wanted and not modules:
        raise RotaryError(f"rope_type {wanted[0]!r} picks its frequencies from the sequence length, "
                          f"and {type(model).__name__} has no rotary module FlexSP can compute per "
                          "sequence (with rope_type, original_inv_freq and a forward decorated by "
                          "transformers' dynamic_rope_update)")
    inside = {id(m) for layer in layers for m in layer.modules()}
    for module in modules:
        name = next(t for t in _rope_types(module).values() if is_length_dependent(t))
        if id(module) in inside:
            raise RotaryError(f"rope_type {name!r}: {type(module).__name__} is computed inside each "
                              "decoder layer; FlexSP computes length-dependent rotary embeddings "
                              "per sequence only at the model level")
        raw = inspect.unwrap(type(module).forward)
        if raw is type(module).forward or "position_ids" not in inspect.signature(raw).parameters:
            raise RotaryError(f"rope_type {name!r}: {type(module).__name__}.forward is not "
                              "transformers' dynamic_rope_update around forward(x, position_ids)")
        module._flexsp_raw_forward = MethodType(raw, module)
        module._flexsp_lengths = None
        module._flexsp_cache = {}
        module.forward = MethodType(_per_sequence_forward, module)
    if modules:
        model._flexsp_rotary_modules = modules
    return len(modules)


def token_lengths(ctx: PackedContext, n: int) -> torch.Tensor:
    """For each of this rank's n tokens of its group's stream, the length of the sequence it
    belongs to (0 for padding): the same for every token of a sequence on every rank."""
    local = dist.get_rank(ctx.group) if ctx.group is not None else 0
    cu = torch.tensor(ctx.cu_seqlens, dtype=torch.int64)
    stream = torch.arange(local * n, (local + 1) * n, dtype=torch.int64)
    sequence = torch.searchsorted(cu, stream, right=True) - 1  # index of the sequence holding it
    inside = stream < cu[-1]
    lengths = (cu[1:] - cu[:-1])[sequence.clamp(max=len(cu) - 2)] if len(cu) > 1 \
        else torch.zeros(n, dtype=torch.int64)
    return torch.where(inside, lengths, torch.zeros_like(lengths))


def set_token_lengths(model: torch.nn.Module, lengths: torch.Tensor | None) -> None:
    """Hands the installed rotary modules the per-token sequence lengths of the next forward.
    They keep them until the next call: a model computes its rotary embeddings once per
    forward, outside the decoder layers (`install` checks), so no recomputation needs them."""
    for module in getattr(model, "_flexsp_rotary_modules", ()):
        module._flexsp_lengths = lengths


def has_per_sequence_rotary(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "_flexsp_rotary_modules", None))


def _frequency_key(module, rope_type: str, length: int, layer_type: str | None) -> int:
    """Which frequencies transformers would use for a sequence of `length` alone, as a key:
    0 for the original ones, else a key of the scaled ones."""
    if rope_type == "longrope":
        params = module.config.rope_parameters
        params = params[layer_type] if layer_type is not None else params
        return 1 if length > params["original_max_position_embeddings"] else 0
    return length if length > module.original_max_seq_len else 0  # dynamic NTK


def _frequencies(module, rope_type: str, key: int, layer_type: str | None,
                 device: torch.device) -> torch.Tensor:
    prefix = f"{layer_type}_" if layer_type is not None else ""
    if key == 0:
        return getattr(module, f"{prefix}original_inv_freq").to(device)
    cache_key = (layer_type, key)
    if cache_key not in module._flexsp_cache:
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        kwargs = {"layer_type": layer_type} if layer_type is not None else {}
        if rope_type == "longrope":
            params = module.config.rope_parameters
            params = params[layer_type] if layer_type is not None else params
            seq_len = params["original_max_position_embeddings"] + 1  # any length past it
        else:
            # As transformers passes it (max(position_ids) + 1, an int64 tensor), so that its
            # arithmetic, and hence the frequencies, are bit for bit the same.
            seq_len = torch.tensor(key, dtype=torch.int64, device=device)
        inv_freq, _ = ROPE_INIT_FUNCTIONS[rope_type](module.config, device, seq_len=seq_len,
                                                     **kwargs)
        if len(module._flexsp_cache) >= 256:  # dynamic NTK: one entry per length seen
            module._flexsp_cache.clear()
        module._flexsp_cache[cache_key] = inv_freq
    return module._flexsp_cache[cache_key].to(device)


@torch.no_grad()
def _per_sequence_forward(module, x: torch.Tensor, position_ids: torch.Tensor,
                          layer_type: str | None = None):
    lengths = module._flexsp_lengths
    raw = module._flexsp_raw_forward
    if lengths is None:  # not a packed FlexSP call: transformers' own behaviour
        kwargs = {"layer_type": layer_type} if layer_type is not None else {}
        return type(module).forward(module, x, position_ids, **kwargs)
    if position_ids.shape != (1, lengths.numel()):
        raise RotaryError(f"{type(module).__name__}: position ids of shape "
                          f"{tuple(position_ids.shape)} for {lengths.numel()} packed tokens")
    rope_type = _rope_types(module)[layer_type]
    kwargs = {"layer_type": layer_type} if layer_type is not None else {}
    if not is_length_dependent(rope_type):
        return raw(x, position_ids, **kwargs)
    keys = [_frequency_key(module, rope_type, int(n), layer_type) for n in lengths.tolist()]
    prefix = f"{layer_type}_" if layer_type is not None else ""
    name = f"{prefix}inv_freq"
    saved = getattr(module, name)
    outputs = None
    try:
        for key in sorted(set(keys)):
            setattr(module, name, _frequencies(module, rope_type, key, layer_type, x.device))
            if len(set(keys)) == 1:
                return raw(x, position_ids, **kwargs)
            index = torch.tensor([i for i, k in enumerate(keys) if k == key], device=x.device)
            parts = raw(x, position_ids[:, index], **kwargs)
            if outputs is None:
                outputs = tuple(p.new_empty(p.shape[:1] + (len(keys),) + p.shape[2:])
                                for p in parts)
            for out, part in zip(outputs, parts):
                out[:, index] = part
        return outputs
    finally:
        setattr(module, name, saved)
