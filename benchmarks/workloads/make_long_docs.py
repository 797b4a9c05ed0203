"""Writes long-document length files for the benchmarks (deterministic; rerun to regenerate).

long-mix.txt: a mix of four document kinds, each log-normal (the shape Megatron's own
dynamic-CP benchmarks draw from), cut at 384K tokens:

    kind    share  median  sigma   stands in for
    books    0.06  60,000   0.9    whole books, long reports
    code     0.24   3,000   1.4    source files, whole repositories' large files
    web      0.35   1,200   1.1    crawled pages
    wiki     0.35     900   1.2    encyclopaedia articles

Mean about 8K tokens; about 1% of documents are above 128K and they hold 30% of the tokens,
so many sequences are a large fraction of what a 64-GPU micro-batch holds (about 410K tokens
for gpt-7b at 384K).

long-tail.txt: the long tail of the two length files in data/lengths/, in file order: every
wikipedia.txt document of at least 8K tokens and every github_code.txt file of at least 4K
tokens, interleaved by position.
"""
import math
import random
import sys
from pathlib import Path

KINDS = [("books", 0.06, 60_000, 0.9), ("code", 0.24, 3_000, 1.4),
         ("web", 0.35, 1_200, 1.1), ("wiki", 0.35, 900, 1.2)]
MAX = 384 * 1024 - 128  # what the reference rule keeps at 384K on 64 GPUs


def long_mix(count: int, seed: int = 10) -> list[int]:
    rng = random.Random(seed)
    weights = [k[1] for k in KINDS]
    out = []
    for _ in range(count):
        _, _, median, sigma = rng.choices(KINDS, weights)[0]
        out.append(max(16, min(MAX, int(median * math.exp(rng.gauss(0, sigma))))))
    return out


def long_tail(folder: Path) -> list[int]:
    def read(name: str, least: int) -> list[int]:
        lines = (folder / name).read_text().split()
        return [int(x) for x in lines if x.isdigit() and least <= int(x) <= MAX]
    wiki, code = read("wikipedia.txt", 8_192), read("github_code.txt", 4_096)
    out = []
    for i in range(max(len(wiki), len(code))):
        out.extend(x[i] for x in (wiki, code) if i < len(x))
    return out


if __name__ == "__main__":
    here = Path(__file__).parent
    # benchmarks/workloads -> the repository root.
    lengths = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[1] / "data/lengths"
    # 8 batches of 2,048 (or 32 of 512).
    (here / "long-mix.txt").write_text("\n".join(map(str, long_mix(16_384))) + "\n")
    tail = long_tail(lengths)[:16_384]
    (here / "long-tail.txt").write_text("\n".join(map(str, tail)) + "\n")
    for name in ("long-mix.txt", "long-tail.txt"):
        xs = [int(x) for x in (here / name).read_text().split()]
        big = sum(x for x in xs if x > 131_072)
        print(f"{name}: {len(xs)} docs, mean {sum(xs)/len(xs):.0f}, max {max(xs)}, "
              f"tokens in docs > 128K {big/sum(xs):.1%}")
