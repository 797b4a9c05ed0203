"""Ulysses attention over a packed stream of variable-length sequences (docs/PAPER.md section 4),
registered in transformers' attention-function registry as "flexsp".

A group of d ranks holds one packed token stream: its sequences back to back, padded at the end
to a multiple of d, each rank owning a contiguous 1/d slice. Attention needs whole sequences, so:
  1. all-to-all q, k, v: scatter heads, gather sequence -> each rank has every token of the
     stream for H/d of the heads;
  2. causal attention per sequence over the stream (sequences never see each other; padding
     neither attends nor is attended, its output is zero);
  3. all-to-all back: scatter sequence, gather heads -> each rank has its own tokens, all heads.
The all-to-alls are autograd functions whose backward is the opposite all-to-all.

Grouped-query attention: query head h uses KV head h // (H / KV). When d divides KV, splitting
KV heads into d contiguous chunks gives each rank exactly the KV heads its query heads need.
When d > KV, each KV head is repeated d / KV times first, so each rank gets one copy of the one
KV head its query heads use (gradients of the copies sum back through the repeat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

try:  # FlashAttention's varlen kernel, used on CUDA when it is installed.
    from flash_attn import flash_attn_varlen_func
except ImportError:  # pragma: no cover - not on CPU machines
    flash_attn_varlen_func = None
try:  # PyTorch's own varlen kernel (FlashAttention inside torch), CUDA only.
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # pragma: no cover - older torch
    varlen_attn = None


class DeviceCopies:
    """A context's `cu_seqlens` as int32 tensors, one per device, made once. Not a container
    FSDP looks into, so every copy of the context shares it."""

    def __init__(self) -> None:
        self._tensors: dict[torch.device, torch.Tensor] = {}

    def get(self, cu_seqlens: list[int], device: torch.device) -> torch.Tensor:
        if device not in self._tensors:
            self._tensors[device] = torch.tensor(cu_seqlens, dtype=torch.int32, device=device)
        return self._tensors[device]


log = logging.getLogger("flexsp.attention")


@dataclass
class PackedContext:
    """What attention needs to know about the group's packed stream.

    group: the group's communicator (None for degree 1); degree: its size;
    cu_seqlens: boundaries of the real sequences in the stream, [0, l0, l0+l1, ...]; the stream
    beyond cu_seqlens[-1] (up to a multiple of degree) is padding.

    Built once per micro-batch; every layer reads the same `longest` (the longest sequence) and
    the same device copy of `cu_seqlens` (the varlen kernels' form), made by the first layer that
    asks. Both are fields with defaults because FSDP's input casting copies the context with
    `dataclasses.replace` (once per layer under mixed precision): the copies carry them along.
    """

    group: dist.ProcessGroup | None
    degree: int
    cu_seqlens: list[int]
    longest: int | None = None  # None: computed from cu_seqlens
    on_device: DeviceCopies = field(default_factory=DeviceCopies, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.longest is None:
            self.longest = max((b - a for a, b in zip(self.cu_seqlens[:-1], self.cu_seqlens[1:])),
                               default=0)

    def cu_seqlens_on(self, device: torch.device) -> torch.Tensor:
        """`cu_seqlens` as an int32 tensor on `device`."""
        return self.on_device.get(self.cu_seqlens, device)


def _scatter_heads(x: torch.Tensor, group: dist.ProcessGroup, degree: int) -> torch.Tensor:
    """[n, h, hd] (my tokens, all heads) -> [degree*n, h/degree, hd] (all tokens, my heads)."""
    n, h, hd = x.shape
    # Chunk j (sent to rank j) is heads [j*h/d, (j+1)*h/d) of my tokens.
    send = x.reshape(n, degree, h // degree, hd).transpose(0, 1).contiguous()
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=group)
    # Chunk j received is rank j's slice of the stream, so concatenation restores stream order.
    return recv.reshape(degree * n, h // degree, hd)


def _gather_heads(x: torch.Tensor, group: dist.ProcessGroup, degree: int) -> torch.Tensor:
    """[degree*n, h/degree, hd] (all tokens, my heads) -> [n, h, hd] (my tokens, all heads)."""
    total, hl, hd = x.shape
    n = total // degree
    send = x.reshape(degree, n, hl, hd).contiguous()
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=group)
    return recv.transpose(0, 1).reshape(n, degree * hl, hd)


class _ScatterHeads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup, degree: int) -> torch.Tensor:
        ctx.group, ctx.degree = group, degree
        return _scatter_heads(x, group, degree)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # The all-to-all permutes blocks between ranks; its adjoint is the inverse permutation.
        return _gather_heads(grad.contiguous(), ctx.group, ctx.degree), None, None


class _GatherHeads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup, degree: int) -> torch.Tensor:
        ctx.group, ctx.degree = group, degree
        return _gather_heads(x, group, degree)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _scatter_heads(grad.contiguous(), ctx.group, ctx.degree), None, None


# ---------------------------------------------------------------------------------------------
# Kernels: causal attention within each sequence of a packed stream


def kernel_for(device: torch.device, dtype: torch.dtype) -> str:
    """The kernel `varlen_causal_attention` uses for tensors on `device` of `dtype`:
    FlashAttention's varlen kernel where it is installed, else PyTorch's own `varlen_attn`
    (CUDA, half precision), else exact SDPA one sequence at a time (CPU, float32/64)."""
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        if flash_attn_varlen_func is not None:
            return "flash_attn.flash_attn_varlen_func"
        if varlen_attn is not None:
            return "torch.nn.attention.varlen.varlen_attn"
    return "sdpa per sequence"


_logged_backends: set[tuple[str, torch.dtype]] = set()


def sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None) -> str:
    """The kernel PyTorch's dispatcher picks for this causal SDPA call (MATH, FLASH_ATTENTION,
    EFFICIENT_ATTENTION, ...), or 'unknown' where this PyTorch cannot say."""
    try:
        from torch.nn.attention import SDPBackend
        return SDPBackend(torch._fused_sdp_choice(q, k, v, is_causal=True, scale=scale)).name
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return "unknown"


def log_sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None) -> None:
    """Logs once per device and dtype which SDPA kernel attention runs on."""
    key = (q.device.type, q.dtype)
    if key not in _logged_backends:
        _logged_backends.add(key)
        log.info("attention: SDPA backend %s on %s for %s", sdpa_backend(q, k, v, scale),
                 q.device.type, str(q.dtype).removeprefix("torch."))


def varlen_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            ctx: PackedContext, scale: float | None = None) -> torch.Tensor:
    """Causal attention within each sequence of a packed stream; padding rows come out zero.

    q: [N, H, hd]; k, v: [N, KV, hd] with H a multiple of KV, for the whole stream of `ctx`
    (its cu_seqlens: [0, l0, l0+l1, ...], the stream beyond cu_seqlens[-1] being padding).
    scale: None for 1/sqrt(hd). Returns [N, H, hd].
    """
    total, heads, head_dim = q.shape
    cu_seqlens = ctx.cu_seqlens
    real = cu_seqlens[-1]
    kernel = kernel_for(q.device, q.dtype)
    if kernel != "sdpa per sequence" and real > 0:
        cu, longest = ctx.cu_seqlens_on(q.device), ctx.longest
        # Degree 1 hands over transposed views of transformers' [1, H, n, hd] tensors.
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        if flash_attn_varlen_func is not None:
            out = flash_attn_varlen_func(q[:real], k[:real], v[:real], cu, cu, longest, longest,
                                         softmax_scale=scale, causal=True)
        else:
            out = varlen_attn(q[:real], k[:real], v[:real], cu, cu, longest, longest, scale=scale,
                              window_size=(-1, 0), enable_gqa=k.shape[1] != heads)
    else:
        # SDPA one sequence at a time: exact (no masked-out blocks that a block-diagonal mask
        # would still compute), the same code on every device.
        group_size = heads // k.shape[1]
        if group_size > 1:
            k = k.repeat_interleave(group_size, dim=1)
            v = v.repeat_interleave(group_size, dim=1)
        # 4-D [1, H, n, hd], as transformers passes them: with 3-D tensors PyTorch picks its
        # math kernel on the CPU, which materialises n x n weights (4x slower at 2,048 tokens).
        views = [(q[a:b].transpose(0, 1)[None], k[a:b].transpose(0, 1)[None],
                  v[a:b].transpose(0, 1)[None]) for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:])]
        if views:
            log_sdpa_backend(*views[0], scale)
        outs = [F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale)[0].transpose(0, 1)
                for qs, ks, vs in views]
        out = torch.cat(outs, dim=0) if outs else q.new_zeros(0, heads, head_dim)
    if total > real:
        out = torch.cat([out, q.new_zeros(total - real, heads, head_dim)], dim=0)
    return out


def check_degree(heads: int, kv_heads: int, degree: int) -> str | None:
    """Why Ulysses cannot split `heads` query and `kv_heads` KV heads over `degree` ranks, or
    None if it can: each rank needs whole query heads, and the KV heads of its query heads
    either split evenly (degree divides KV) or are replicated evenly (KV divides degree)."""
    if heads % degree != 0:
        return f"{heads} query heads do not divide by degree {degree}"
    if kv_heads % degree != 0 and degree % kv_heads != 0:
        return (f"{kv_heads} KV heads neither divide by degree {degree} nor divide it "
                "(GQA replication needs one or the other)")
    return None


def ulysses_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ctx: PackedContext,
                      scale: float | None = None) -> torch.Tensor:
    """Attention for this rank's slice of the group's packed stream.

    q: [n, H, hd], k, v: [n, KV, hd] for this rank's n = stream_length / degree tokens (rotary
    embeddings already applied). Returns [n, H, hd]. Degree 1 communicates nothing.
    """
    degree = ctx.degree
    if degree == 1:
        return varlen_causal_attention(q, k, v, ctx, scale)
    heads, kv_heads = q.shape[1], k.shape[1]
    problem = check_degree(heads, kv_heads, degree)
    if problem is not None:
        raise ValueError(f"Ulysses attention: {problem}")
    if kv_heads < degree:
        # Degree above the KV-head count: replicate so that each rank gets the KV head its
        # query heads use (see the module docstring).
        k = k.repeat_interleave(degree // kv_heads, dim=1)
        v = v.repeat_interleave(degree // kv_heads, dim=1)
    q = _ScatterHeads.apply(q, ctx.group, degree)
    k = _ScatterHeads.apply(k, ctx.group, degree)
    v = _ScatterHeads.apply(v, ctx.group, degree)
    out = varlen_causal_attention(q, k, v, ctx, scale)
    return _GatherHeads.apply(out, ctx.group, degree)


# ---------------------------------------------------------------------------------------------
# transformers' attention-function registry

ATTENTION_NAME = "flexsp"


def hf_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                 value: torch.Tensor, attention_mask: torch.Tensor | None,
                 scaling: float | None = None, dropout: float = 0.0,
                 flexsp_context: PackedContext | None = None, sliding_window: int | None = None,
                 softcap: float | None = None, s_aux: torch.Tensor | None = None, **_kwargs
                 ) -> tuple[torch.Tensor, None]:
    """FlexSP attention in transformers' calling convention.

    query [1, H, n, hd], key and value [1, KV, n, hd] for this rank's slice of its group's
    stream (batch 1; the model applied its own rotary embeddings from position ids that restart
    at every sequence); returns [1, n, H, hd] and no weights. The sequence boundaries come from
    `flexsp_context` (a keyword the model passes through to here), not from a mask: a rank's
    slice alone cannot tell where a sequence that started on another rank begins. Features this
    function does not implement fail loudly rather than compute something else.
    """
    if flexsp_context is None:
        raise ValueError("flexsp attention needs flexsp_context=PackedContext(...) in the "
                         "model's forward call (see flexsp.model.forward_logits)")
    if query.shape[0] != 1:
        raise ValueError(f"flexsp attention takes one packed stream (batch 1), not {query.shape[0]}")
    if attention_mask is not None:
        # transformers builds no mask for an implementation without a mask function; a model
        # that makes its own (image tokens, bidirectional blocks) wants attention we do not do.
        raise ValueError(f"flexsp attention does not implement custom attention masks "
                         f"({type(module).__name__} passed one)")
    if dropout:
        raise ValueError(f"flexsp attention does not implement attention dropout ({dropout})")
    if softcap is not None or s_aux is not None:
        raise ValueError("flexsp attention does not implement logit soft-capping or sinks")
    if sliding_window is not None and flexsp_context.longest > sliding_window:
        raise ValueError(f"flexsp attention does not implement sliding windows: a sequence of "
                         f"{flexsp_context.longest} tokens exceeds the window of {sliding_window}")
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
    out = ulysses_attention(q, k, v, flexsp_context, scaling)
    return out[None], None


def register_hf_attention() -> str:
    """Registers `hf_attention` under the name "flexsp" (idempotent); returns the name, for
    `attn_implementation=`. No mask function is registered on purpose: transformers then skips
    building a [n, n] mask that this function would ignore."""
    from transformers import AttentionInterface
    AttentionInterface.register(ATTENTION_NAME, hf_attention)
    return ATTENTION_NAME
