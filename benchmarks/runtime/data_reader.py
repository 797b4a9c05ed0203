"""Per-rank host memory and load time per step: the shard reader vs every rank building the batch.

    PYTHONPATH=python python benchmarks/runtime/data_reader.py [--copies 40] [--batch 512]

Builds a corpus of `--copies` copies of the bundled docstrings (JSON lines, in a temporary
directory), prepares it with the shipped tokenizer (reporting preparation tokens/s), then, for
each of 4 ranks and each reader, in a fresh process:
  - "shards" (flexsp.data.TokenDataset): the index in memory, tokens memory-mapped; a step is
    the batch's ids and lengths, then this rank's groups' tokens (rank_input per micro-batch);
  - "whole batch" (what the runtime did before: CorpusDataset): every rank holds every document's
    tokens as Python lists and materialises all `--batch` sequences of a step as tensors, then
    slices its groups' part. Its corpus is loaded from the same shards, which is cheaper than
    the old byte tokenizer's pass over the text, so the comparison is generous to it.
Both run the same plan of every batch (the runtime's fallback plan for the tiny 4-rank cost
model). Memory: the process's peak resident set (VmHWM) minus the one after imports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def one_rank(corpus: str, reader: str, rank: int, batch: int, steps: int) -> dict:
    import torch
    from flexsp.data import GlobalBatch, TokenDataset
    from flexsp.engine import micro_batch_input
    from flexsp.plan import fallback_plan, load_cost_model
    base = rss_mb("VmRSS")
    cost_model = load_cost_model(REPO / "configs/tiny-cpu-costmodel.json")

    class Pool:
        def get(self, first, degree):
            return None

    t0 = time.perf_counter()
    dataset = TokenDataset(corpus, batch, seed=0)
    if reader == "whole batch":
        shards = dataset.shards
        documents = [shards.tokens(int(i)).tolist() for i in shards.train_ids]
        position = {int(i): k for k, i in enumerate(shards.train_ids)}
    setup_s = time.perf_counter() - t0
    times, tokens_read = [], 0
    for step in range(steps):
        lengths = dataset.batch(step).lengths
        plan = fallback_plan(lengths, cost_model, 4)  # not timed: the plan comes from rank 0
        t0 = time.perf_counter()
        if reader == "whole batch":
            ids = dataset.batch_ids(step)
            current = GlobalBatch(step, [torch.tensor(documents[position[int(i)]],
                                                      dtype=torch.int64) for i in ids])
        else:
            current = dataset.batch(step)
        inputs = [micro_batch_input(plan, m, current, Pool(), rank)
                  for m in range(len(plan["micro_batches"]))]
        times.append(time.perf_counter() - t0)
        tokens_read += sum(int(inp.ctx.cu_seqlens[-1]) for inp in inputs)
    return {"reader": reader, "rank": rank, "setup_s": setup_s,
            "step_ms": statistics.median(times) * 1e3, "peak_mb": rss_mb("VmHWM") - base,
            "rank_tokens_per_step": tokens_read / steps,
            "batch_tokens_per_step": sum(sum(dataset.batch(s).lengths) for s in range(steps)) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", nargs=3, metavar=("CORPUS", "READER", "RANK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        corpus, reader, rank = args.child
        print(json.dumps(one_rank(corpus, reader, int(rank), args.batch, args.steps)))
        return
    from flexsp.prepare import prepare
    with tempfile.TemporaryDirectory() as tmp:
        documents = (REPO / "data/corpus/python-docstrings.txt").read_text().split("\n\f\n")
        source = Path(tmp) / "docstrings.jsonl"
        with open(source, "w") as f:
            for copy in range(args.copies):
                for document in documents:
                    f.write(json.dumps({"text": document}) + "\n")
        meta = prepare(REPO / "data/tokenizer", [source], Path(tmp) / "prepared", progress=False)
        print(f"prepared {meta['documents']:,} documents ({meta['input_bytes'] / 1e6:.1f} MB, "
              f"{meta['tokens']:,} tokens) in {meta['seconds']:.1f} s: "
              f"{meta['tokens'] / meta['seconds']:,.0f} tokens/s")
        print(f"batch of {args.batch} sequences, 4 ranks, median over {args.steps} steps")
        print(f"{'reader':12} {'rank':>4} {'setup s':>8} {'load ms/step':>13} {'peak MB':>8} "
              f"{'rank tokens':>11} {'batch tokens':>12}")
        for reader in ("whole batch", "shards"):
            for rank in range(4):
                out = subprocess.run([sys.executable, __file__, "--batch", str(args.batch),
                                      "--steps", str(args.steps), "--child",
                                      str(Path(tmp) / "prepared"), reader, str(rank)],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out.splitlines()[-1])
                print(f"{reader:12} {rank:4d} {r['setup_s']:8.2f} {r['step_ms']:13.2f} "
                      f"{r['peak_mb']:8.1f} {r['rank_tokens_per_step']:11.0f} "
                      f"{r['batch_tokens_per_step']:12.0f}", flush=True)


if __name__ == "__main__":
    main()
