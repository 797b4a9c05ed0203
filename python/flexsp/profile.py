"""The profiler: measures this machine and writes the cost-model document of docs/DESIGN.md.

    python -m flexsp.profile --config configs/tiny-cpu.yaml --out costmodel.json
    torchrun --standalone --nproc-per-node 4 -m flexsp.profile --config ... --out ...

The cost model (paper eq. 11-14) says a group of degree d holding sequences S takes
    beta1 + sum_s [(alpha1 s^2 + alpha2 s) / d + a2a(s, d)],
    a2a(s, d) = a2a_mb_per_token * s / (d * bandwidth[d])   (0 for d = 1),
and needs model_states_mb + activation_mb_per_token * sum(S) / d per rank. Each number is
measured with the runtime's own code, the way the planner will use it:
  - all-to-all: the model's all-to-alls (q, k, v out and the output back, forward and backward,
    every layer) on the group pool's communicators, all groups of a degree at once; the
    time's slope in s gives bandwidth[d] for the model's nominal volume a2a_mb_per_token
    (so KV-head replication above the KV-head count shows up as a lower effective bandwidth);
  - compute: `engine.forward_backward` of the FSDP-sharded model under plans whose groups all
    have one degree; the fit takes a2a(s, d) out and fits the rest by least squares, relative
    (each sample weighted by 1/time, so short sequences count as much as long ones);
  - memory: activations from the tensors autograd keeps for backward (CPU) or the peak
    allocated (CUDA), per token at the longest length, data.max_seq_len (attention that
    materializes its s x s weights makes per-token memory grow with s; the largest figure is
    the safe one);
    model states from the parameter count under full sharding (parameters, gradients, two
    AdamW moments, over all ranks, plus the largest FSDP unit gathered whole).
Without torchrun it runs as a world of one: compute and memory only, max_degree 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch.distributed as dist

from flexsp.config import load_config
from flexsp.distributed import exit_now, init_world
from flexsp.profile_document import ProfileOptions, describe, int_list, profile


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flexsp.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="YAML file; its model and train.dtype")
    parser.add_argument("--out", required=True, help="where to write the cost-model JSON")
    parser.add_argument("--lengths", type=int_list, help="fitted lengths, e.g. 128,256,512")
    parser.add_argument("--held-out", type=int_list, help="lengths measured but left out of the fit")
    parser.add_argument("--a2a-lengths", type=int_list,
                        help="group stream lengths for the all-to-all (default max_seq_len/4..4x)")
    parser.add_argument("--counts", type=int_list,
                        help="sequences per group in the compute samples (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per point (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per point")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--memory-budget-mb", type=float, help="per-rank memory budget, MB")
    budget.add_argument("--budget-tokens", type=int,
                        help="budget = model states + activations of this many tokens per rank")
    parser.add_argument("--name", help="the document's name")
    parser.add_argument("--report", help="also write the samples and fit quality (JSON) here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_config(args.config)
    rank, world_size, device = init_world(config.train.collective_timeout_s)
    options = ProfileOptions(args.lengths, args.held_out, args.a2a_lengths, args.counts,
                             args.repeats, args.warmup,
                             args.memory_budget_mb, args.budget_tokens, args.name,
                             Path(args.config).stem)
    document, report = profile(config, options, device)
    if rank == 0:
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
        print(describe(document, report), flush=True)
        print(f"wrote {args.out}", flush=True)
    dist.destroy_process_group()
    return document


if __name__ == "__main__":
    main(sys.argv[1:])
    exit_now()  # gloo + torch._dynamo can abort in static destructors (see distributed.exit_now)
