"""A Llama-family decoder on packed token streams: RMSNorm, rotary embeddings, SwiGLU, GQA.

The model sees one rank's slice of its group's packed stream: token ids, position ids (which
restart at every sequence, so rotary embeddings are per sequence) and the PackedContext that
Ulysses attention needs. Parameters are sharded over all ranks with FSDP2 (`apply_fsdp`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from flexsp.attention import PackedContext, ulysses_attention


@dataclass
class ModelConfig:
    vocab_size: int = 256
    hidden: int = 64
    layers: int = 2
    heads: int = 8
    kv_heads: int = 2
    ffn_hidden: int = 172
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def check(self) -> None:
        if self.hidden % self.heads != 0:
            raise ValueError(f"hidden {self.hidden} must divide by heads {self.heads}")
        if self.heads % self.kv_heads != 0:
            raise ValueError(f"heads {self.heads} must divide by kv_heads {self.kv_heads}")
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, [n, head_dim/2], for each token's position within its own sequence."""
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64,
                                         device=positions.device) / head_dim)
    angles = positions.to(torch.float64)[:, None] * freqs[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates pairs (x[..., 2i], x[..., 2i+1]) of x: [n, heads, head_dim]."""
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    cos, sin = cos[:, None, :], sin[:, None, :]
    rotated = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1)
    return rotated.flatten(-2)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = config.heads, config.kv_heads, config.head_dim
        self.wq = nn.Linear(config.hidden, config.heads * config.head_dim, bias=False)
        self.wk = nn.Linear(config.hidden, config.kv_heads * config.head_dim, bias=False)
        self.wv = nn.Linear(config.hidden, config.kv_heads * config.head_dim, bias=False)
        self.wo = nn.Linear(config.heads * config.head_dim, config.hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                ctx: PackedContext) -> torch.Tensor:
        n = x.shape[0]
        q = apply_rope(self.wq(x).view(n, self.heads, self.head_dim), cos, sin)
        k = apply_rope(self.wk(x).view(n, self.kv_heads, self.head_dim), cos, sin)
        v = self.wv(x).view(n, self.kv_heads, self.head_dim)
        out = ulysses_attention(q, k, v, ctx)
        return self.wo(out.reshape(n, self.heads * self.head_dim))


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.hidden, config.ffn_hidden, bias=False)
        self.w2 = nn.Linear(config.ffn_hidden, config.hidden, bias=False)
        self.w3 = nn.Linear(config.hidden, config.ffn_hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.hidden, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.hidden, config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                ctx: PackedContext) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, ctx)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.hidden)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = RMSNorm(config.hidden, config.norm_eps)
        self.output = nn.Linear(config.hidden, config.vocab_size, bias=False)
        for name, param in self.named_parameters():
            if param.dim() == 2:
                nn.init.normal_(param, std=config.init_std)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor,
                ctx: PackedContext) -> torch.Tensor:
        """tokens, positions: [n] (this rank's slice); returns logits [n, vocab]."""
        x = self.embed(tokens)
        cos, sin = rope_tables(positions, self.config.head_dim, self.config.rope_theta, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, ctx)
        return self.output(self.norm(x))


def apply_fsdp(model: Transformer, mesh: DeviceMesh) -> None:
    """Shards every block, then the rest, over all ranks of `mesh` (ZeRO-3, as in the paper).

    Gradients are reduce-scattered as a plain sum: the loss is already divided by the global
    token count, so FSDP's default average over ranks would divide twice. With a factor of 1
    and float32, FSDP would pick ReduceOp.PREMUL_SUM, which gloo rejects; forcing plain SUM
    reductions works on gloo and NCCL alike. Both settings are per FSDP module, hence set on each.

    A rank idle in a micro-batch (or holding only padding) never uses wq, wk, wv: attention has
    no sequence to attend over. FSDP would then reduce-scatter fewer parameters on that rank
    than on the others, a collective mismatch; `set_reduce_scatter_unused_params` makes it send
    zeros for them instead.
    """
    for layer in model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    model.set_reduce_scatter_unused_params(True)
