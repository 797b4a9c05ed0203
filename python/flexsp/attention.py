"""Ulysses attention over a packed stream of variable-length sequences (PAPER.md section 4).

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

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

try:  # FlashAttention's varlen kernel, used on CUDA when it is installed.
    from flash_attn import flash_attn_varlen_func
except ImportError:  # pragma: no cover - not on CPU machines
    flash_attn_varlen_func = None


@dataclass
class PackedContext:
    """What attention needs to know about the group's packed stream.

    group: the group's communicator (None for degree 1); degree: its size;
    cu_seqlens: boundaries of the real sequences in the stream, [0, l0, l0+l1, ...]; the stream
    beyond cu_seqlens[-1] (up to a multiple of degree) is padding.
    """

    group: dist.ProcessGroup | None
    degree: int
    cu_seqlens: list[int]


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


def varlen_causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: list[int]
) -> torch.Tensor:
    """Causal attention within each sequence of a packed stream; padding rows come out zero.

    q: [N, H, hd]; k, v: [N, KV, hd] with H a multiple of KV. Returns [N, H, hd].
    """
    total, heads, head_dim = q.shape
    real = cu_seqlens[-1]
    if (flash_attn_varlen_func is not None and q.is_cuda
            and q.dtype in (torch.float16, torch.bfloat16) and real > 0):
        cu = torch.tensor(cu_seqlens, dtype=torch.int32, device=q.device)
        max_len = max(b - a for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:]))
        out = flash_attn_varlen_func(q[:real], k[:real], v[:real], cu, cu, max_len, max_len,
                                     causal=True)
    else:
        # PyTorch's SDPA one sequence at a time: the same code on CPU and GPU, and exact (no
        # masked-out rows that a block-diagonal mask would still compute).
        group_size = heads // k.shape[1]
        if group_size > 1:
            k = k.repeat_interleave(group_size, dim=1)
            v = v.repeat_interleave(group_size, dim=1)
        outs = []
        for start, end in zip(cu_seqlens[:-1], cu_seqlens[1:]):
            o = F.scaled_dot_product_attention(
                q[start:end].transpose(0, 1), k[start:end].transpose(0, 1),
                v[start:end].transpose(0, 1), is_causal=True)
            outs.append(o.transpose(0, 1))
        out = torch.cat(outs, dim=0) if outs else q.new_zeros(0, heads, head_dim)
    if total > real:
        out = torch.cat([out, q.new_zeros(total - real, heads, head_dim)], dim=0)
    return out


def ulysses_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ctx: PackedContext
) -> torch.Tensor:
    """Attention for this rank's slice of the group's packed stream.

    q: [n, H, hd], k, v: [n, KV, hd] for this rank's n = stream_length / degree tokens (rotary
    embeddings already applied). Returns [n, H, hd].
    """
    degree = ctx.degree
    if degree == 1:
        return varlen_causal_attention(q, k, v, ctx.cu_seqlens)
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads % degree != 0:
        raise ValueError(f"Ulysses needs the {heads} query heads to divide by degree {degree}")
    if kv_heads < degree:
        # Degree above the KV-head count: replicate so that each rank gets the KV head its
        # query heads use (see the module docstring).
        k = k.repeat_interleave(degree // kv_heads, dim=1)
        v = v.repeat_interleave(degree // kv_heads, dim=1)
    q = _ScatterHeads.apply(q, ctx.group, degree)
    k = _ScatterHeads.apply(k, ctx.group, degree)
    v = _ScatterHeads.apply(v, ctx.group, degree)
    out = varlen_causal_attention(q, k, v, ctx.cu_seqlens)
    return _GatherHeads.apply(out, ctx.group, degree)
