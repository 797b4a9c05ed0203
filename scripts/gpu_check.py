"""The GPU half of the checks (scripts/gpu-check.sh runs it; --device cpu --tiny smoke-tests it).

  parity: under torchrun, one rank per GPU. For every model family of the CPU parity test
          (python/tests/test_hf_parity.py) and every plan shape this world allows, one
          forward+backward of FlexSP in bf16 (FSDP2 MixedPrecisionPolicy, the CUDA varlen
          kernel) against transformers itself in float32, each sequence alone. bf16 cannot
          match float32 to float64's tolerance; the bar is transformers' own bf16 error (the
          same model under torch.autocast, each sequence alone, its own SDPA): FlexSP's loss
          and gradient errors must stay within 3x of it (the per-sequence kernels and FSDP's
          float32 gradient reduction may round differently, never by more).
  bench:  a ~1B-parameter Llama at world 1 on long packed sequences: tokens/s, TFLOP/s and MFU
          of a training step under FlexSP (flexsp.train's own model building and engine) and
          of the same model in plain transformers (float32 master weights, bf16 autocast, the
          packed batch with position ids, its own flash_attention_2 where installed, else SDPA).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "python" / "tests")]

from flexsp.attention import kernel_for  # noqa: E402
from flexsp.data import GlobalBatch  # noqa: E402
from flexsp.engine import forward_backward, train_step  # noqa: E402
from flexsp.groups import GroupPool  # noqa: E402
from flexsp.metrics import linear_weights, peak_tflops, step_flops  # noqa: E402
from flexsp.model import ModelConfig, ModelShape, build_model, load_hf_config  # noqa: E402
from flexsp.parallelize import (apply_activation_checkpointing, apply_fsdp,  # noqa: E402
                                mixed_precision_policy)
from conftest import cost_model_for, job_model, make_plan  # noqa: E402
from flexsp.plan import check_plan  # noqa: E402
from test_hf_parity import FAMILIES, LENGTHS  # noqa: E402  (the CPU test's models and batch)

LLAMA_1B = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 2048,
            "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "max_position_embeddings": 32768}
LLAMA_TINY = {"model_type": "llama", "vocab_size": 256, "hidden_size": 64,
              "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 4096}


def init(device_type: str) -> tuple[int, int, torch.device]:
    if "RANK" not in os.environ:  # a world of one without torchrun
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517", "RANK": "0",
                           "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=300))
    rank = dist.get_rank()
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
        return rank, dist.get_world_size(), torch.device("cuda", torch.cuda.current_device())
    return rank, dist.get_world_size(), torch.device("cpu")


def plan_shapes(world: int) -> dict[str, list[int]]:
    """<W>, <W/2, W/4, ..., 1, 1> and <1, ..., 1>, as degrees in rank order."""
    shapes = {f"<{world}>": [world], f"<{','.join(['1'] * world)}>": [1] * world}
    if world >= 4:
        halves, d = [], world // 2
        while d >= 1:
            halves.append(d)
            d //= 2
        shapes["<" + ",".join(map(str, halves + [1])) + ">"] = halves + [1]
    return shapes


def shaped_plan(world: int, degrees: list[int], lengths: list[int]) -> dict:
    """One micro-batch: the sequences dealt longest first to the group with the fewest tokens
    per rank (a plan document as the CPU tests build them)."""
    groups, first = [], 0
    for d in degrees:
        groups.append([d, first, []])
        first += d
    tokens = {id(g): 0 for g in groups}
    for sid in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        group = min(groups, key=lambda g: tokens[id(g)] / g[0])
        group[2].append(sid)
        tokens[id(group)] += lengths[sid]
    return check_plan(make_plan(cost_model_for(world), lengths, [[tuple(g) for g in groups if g[2]]]),
                      job_model(world), lengths)


def reference(mapping: dict, batch: GlobalBatch, device: torch.device, seed: int,
              autocast: bool) -> tuple[float, dict[str, torch.Tensor]]:
    """transformers alone, each sequence on its own: float32, or under bf16 autocast."""
    from transformers import AutoModelForCausalLM
    config = load_hf_config(ModelConfig(hf_config=copy.deepcopy(mapping)))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa",
                                             dtype=torch.float32).to(device)
    label_tokens = sum(n - 1 for n in batch.lengths)
    total = 0.0
    for seq in batch.sequences:
        seq = seq.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=seq[None]).logits[0]
        loss = F.cross_entropy(logits[:-1].float(), seq[1:], reduction="sum") / label_tokens
        loss.backward()
        total += loss.item()
    return total, {n: p.grad.detach().float() for n, p in model.named_parameters()}


def relative(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def parity(args: argparse.Namespace) -> int:
    rank, world, device = init(args.device)
    pool = GroupPool(world, rank)
    mesh = init_device_mesh(device.type, (world,))
    generator = torch.Generator().manual_seed(1)
    vocab = FAMILIES["llama"]["vocab_size"]
    batch = GlobalBatch(0, [torch.randint(vocab, (n,), generator=generator) for n in LENGTHS])
    failures = 0
    if rank == 0:
        print(f"parity at world {world}, bf16 compute, attention kernel: "
              f"{kernel_for(device, torch.bfloat16)}", flush=True)
    for family, mapping in FAMILIES.items():
        # FlashAttention kernels need head_dim a multiple of 8: the CPU test's 4 is widened.
        mapping = {**mapping, "hidden_size": 128, **({"head_dim": 16} if "head_dim" in mapping else {})}
        ref_loss, ref_grads = reference(mapping, batch, device, seed=3, autocast=False)
        bf16_loss, bf16_grads = reference(mapping, batch, device, seed=3, autocast=True)
        bar_loss = abs(bf16_loss - ref_loss) / ref_loss
        bar_grad = max(relative(bf16_grads[n], g) for n, g in ref_grads.items())
        for shape, degrees in plan_shapes(world).items():
            spec = ModelConfig(hf_config=copy.deepcopy(mapping))
            model = build_model(spec, load_hf_config(spec), torch.float32, seed=3)
            apply_fsdp(model, mesh, mixed_precision_policy("bf16"))
            result = forward_backward(model, shaped_plan(world, degrees, batch.lengths), batch,
                                      pool, rank, device)
            total = torch.tensor([result.loss_sum], dtype=torch.float64, device=device)
            dist.all_reduce(total)
            loss = total.item() / result.label_tokens
            grads = {n.replace("_checkpoint_wrapped_module.", ""): p.grad.full_tensor().float()
                     for n, p in model.named_parameters()}
            err_loss = abs(loss - ref_loss) / ref_loss
            err_grad = max(relative(grads[n], g) for n, g in ref_grads.items())
            ok = err_loss <= 3 * bar_loss + 1e-4 and err_grad <= 3 * bar_grad + 1e-4
            failures += not ok
            if rank == 0:
                print(f"{family:8s} {shape:18s} loss err {err_loss:.2e} (transformers bf16 "
                      f"{bar_loss:.2e}) | max grad err {err_grad:.2e} (transformers bf16 "
                      f"{bar_grad:.2e}) | {'ok' if ok else 'FAIL'}", flush=True)
    dist.destroy_process_group()
    return 1 if failures else 0


def long_lengths(tokens: int, longest: int, seed: int) -> list[int]:
    """Lengths drawn from the Wikipedia sample's long tail, clipped to `longest`, until the
    batch holds `tokens` tokens (the last one cut to fit)."""
    pool = [int(x) for x in (ROOT / "data/lengths/wikipedia-sample.txt").read_text().split()]
    rng, lengths = random.Random(seed), []
    while sum(lengths) < tokens:
        lengths.append(max(2, min(longest, rng.choice(pool), tokens - sum(lengths))))
    return lengths


def timed(step, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(args: argparse.Namespace) -> int:
    rank, world, device = init(args.device)
    mapping = LLAMA_TINY if args.tiny else LLAMA_1B
    spec = ModelConfig(hf_config=dict(mapping))
    config = load_hf_config(spec)
    shape = ModelShape.of(config)
    lengths = long_lengths(args.tokens, args.longest, seed=0)
    generator = torch.Generator().manual_seed(0)
    batch = GlobalBatch(0, [torch.randint(shape.vocab_size, (n,), generator=generator)
                            for n in lengths])
    peak = peak_tflops(device, torch.bfloat16, args.peak_tflops)
    rows = []

    # FlexSP: the runtime's own model building, FSDP2 with bf16 mixed precision, the engine.
    with torch.device(device):
        model = build_model(spec, config, torch.float32, seed=0)
    weights = linear_weights(model)
    if args.activation_checkpointing:
        apply_activation_checkpointing(model)
    apply_fsdp(model, init_device_mesh(device.type, (world,)), mixed_precision_policy("bf16"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    pool = GroupPool(world, rank)
    plan = shaped_plan(world, [world], lengths)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = timed(lambda: train_step(model, optimizer, plan, batch, pool, rank, world, device,
                                       1.0), args.steps, args.warmup, device)
    rows.append(("flexsp", kernel_for(device, torch.bfloat16), seconds, memory_gb(device)))
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # Plain transformers: the same model and batch, packed by position ids, its own attention.
    from transformers import AutoModelForCausalLM
    try:
        import flash_attn  # noqa: F401
        attention = "flash_attention_2"
    except ImportError:
        attention = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        plain = AutoModelForCausalLM.from_config(config, attn_implementation=attention,
                                                 dtype=torch.float32)
    if args.activation_checkpointing:
        plain.gradient_checkpointing_enable({"use_reentrant": False})
    plain_optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-5)
    tokens = torch.cat(batch.sequences).to(device)[None]
    positions = torch.cat([torch.arange(n) for n in lengths]).to(device)[None]
    labels = torch.cat([torch.cat([s[1:], torch.tensor([-100])]) for s in batch.sequences]).to(device)
    label_tokens = sum(n - 1 for n in lengths)

    def plain_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = plain(input_ids=tokens, position_ids=positions, use_cache=False).logits[0]
        loss = F.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="sum")
        (loss / label_tokens).backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
        plain_optimizer.step()
        plain_optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = timed(plain_step, args.steps, args.warmup, device)
    rows.append(("transformers", attention, seconds, memory_gb(device)))

    flops = step_flops(shape, weights, lengths)
    params = sum(p.numel() for p in plain.parameters())
    if rank == 0:
        device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"{params / 1e9:.2f}B-parameter Llama, world {world}, {device_name}; one step = "
              f"{sum(lengths)} tokens in {len(lengths)} packed sequences (longest "
              f"{max(lengths)}), {flops / 1e12:.1f} model TFLOP; peak "
              f"{'unknown' if peak is None else f'{peak:g} TFLOP/s'}", flush=True)
        for name, kernel, seconds, memory in rows:
            tflops = flops / seconds / world / 1e12
            record = {"runtime": name, "attention": kernel, "step_s": round(seconds, 4),
                      "tokens_per_s": round(sum(lengths) / seconds, 1),
                      "tflops_per_rank": round(tflops, 2),
                      "mfu": None if peak is None else round(tflops / peak, 4),
                      "peak_memory_gb": memory}
            print(json.dumps(record), flush=True)
    dist.destroy_process_group()
    return 0


def memory_gb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 1e9, 2) if device.type == "cuda" else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["parity", "bench"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="bench a tiny model (smoke test)")
    parser.add_argument("--tokens", type=int, default=16384, help="tokens per step (bench)")
    parser.add_argument("--longest", type=int, default=8192, help="longest sequence (bench)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, help="per-GPU peak for MFU (default: by name)")
    parser.add_argument("--activation-checkpointing", action="store_true")
    args = parser.parse_args()
    return parity(args) if args.what == "parity" else bench(args)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # see flexsp/train.py's exit_now
