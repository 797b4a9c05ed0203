"""Ulysses attention over packed varlen sequences equals single-process attention.

Every rank draws the same full stream of q, k, v (same seed), keeps its group's slice, runs
ulysses_attention and a backward pass with a slice of a shared output gradient; outputs and
input gradients must equal those of a dense reference on the whole stream. Lengths include
sequences shorter than the degree and totals not divisible by it; KV-head counts include no
GQA (kv = heads), GQA, and degrees above the KV-head count.
"""

import math

import pytest
import torch

from dist_harness import run_world
from flexsp.attention import PackedContext, ulysses_attention
from flexsp.groups import GroupPool

HEADS, HEAD_DIM = 8, 4
LENGTHS = [5, 1, 3, 8, 2, 13]  # 32 tokens; add 1 to make the total odd
KV_HEADS = [8, 2, 1]


def reference_attention(q, k, v, lengths):
    """Dense causal attention, one sequence at a time, written out (no SDPA): float64."""
    group = q.shape[1] // k.shape[1]
    out, start = [], 0
    for n in lengths:
        qs, ks, vs = (t[start:start + n] for t in (q, k, v))
        ks, vs = ks.repeat_interleave(group, 1), vs.repeat_interleave(group, 1)
        scores = torch.einsum("ihd,jhd->hij", qs, ks) / math.sqrt(q.shape[-1])
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        out.append(torch.einsum("hij,jhd->ihd", weights, vs))
        start += n
    return torch.cat(out)


def check_degree(rank: int, world_size: int, degree: int) -> int:
    pool = GroupPool(world_size, rank)
    assert len(pool) == world_size.bit_length() - 1  # one communicator per degree 2..world
    checked = 0
    for lengths in (LENGTHS, LENGTHS + [1]):
        for kv_heads in KV_HEADS:
            total = sum(lengths)
            generator = torch.Generator().manual_seed(total * 10 + kv_heads)
            q = torch.randn(total, HEADS, HEAD_DIM, dtype=torch.float64, generator=generator)
            k = torch.randn(total, kv_heads, HEAD_DIM, dtype=torch.float64, generator=generator)
            v = torch.randn(total, kv_heads, HEAD_DIM, dtype=torch.float64, generator=generator)
            grad_out = torch.randn(total, HEADS, HEAD_DIM, dtype=torch.float64, generator=generator)

            ref_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
            ref_out = reference_attention(*ref_inputs, lengths)
            ref_out.backward(grad_out)

            # This rank's slice of the stream padded to a multiple of the degree; padding is
            # garbage on purpose (it must neither attend nor be attended).
            padded = total + (-total) % degree
            n = padded // degree
            first = rank // degree * degree
            lo = (rank - first) * n
            pad = lambda t: torch.cat([t, torch.full((padded - total, *t.shape[1:]), 7.0, dtype=t.dtype)])
            inputs = [pad(t)[lo:lo + n].clone().requires_grad_() for t in (q, k, v)]
            ctx = PackedContext(pool.get(first, degree), degree,
                                [0] + torch.tensor(lengths).cumsum(0).tolist())
            out = ulysses_attention(*inputs, ctx)
            out.backward(pad(grad_out)[lo:lo + n])

            real = slice(0, max(0, min(n, total - lo)))
            torch.testing.assert_close(out[real], ref_out.detach()[lo:lo + n][real], rtol=1e-10, atol=1e-12)
            assert (out[real.stop:] == 0).all()
            for name, got, ref in zip("qkv", inputs, ref_inputs):
                ref_grad = pad(ref.grad)[lo:lo + n]
                torch.testing.assert_close(got.grad[real], ref_grad[real], rtol=1e-10, atol=1e-12,
                                           msg=lambda m: f"d{name} (kv_heads={kv_heads}): {m}")
                assert (got.grad[real.stop:] == 0).all(), f"padding got a gradient in d{name}"
            checked += 1
    return checked


def test_degree_1_in_process():
    assert check_degree(0, 1, 1) == 2 * len(KV_HEADS)


@pytest.mark.parametrize("degree", [2, 4])
def test_ulysses_equals_reference(degree):
    # World 4: two groups of 2, or one group of 4; each checks every case.
    results = run_world(4, check_degree, degree)
    assert results == [2 * len(KV_HEADS)] * 4


def test_cpu_attention_runs_on_pytorchs_flash_kernel(caplog):
    # The per-sequence SDPA call gets 4-D views: on the CPU, 3-D ones send PyTorch to its math
    # kernel, which materialises the n x n weights (the runtime ran at half transformers' speed).
    import flexsp.attention as attention
    from flexsp.attention import sdpa_backend, varlen_causal_attention
    q = torch.randn(64, 4, 16)
    assert sdpa_backend(q.transpose(0, 1)[None], q.transpose(0, 1)[None], q.transpose(0, 1)[None],
                        None) == "FLASH_ATTENTION"
    assert sdpa_backend(q.transpose(0, 1), q.transpose(0, 1), q.transpose(0, 1), None) == "MATH"
    attention._logged_backends.clear()
    with caplog.at_level("INFO", logger="flexsp.attention"):
        for _ in range(2):
            varlen_causal_attention(q, q, q, PackedContext(None, 1, [0, 40, 64]))
    assert [r.getMessage() for r in caplog.records] == ["attention: SDPA backend FLASH_ATTENTION on cpu for float32"]
