"""Draws a training run's metrics (JSON lines from train.metrics_file) as one SVG:

    python -m flexsp.plot out/demo/metrics.jsonl --out run.svg

Panels against the step: training and evaluation loss; tokens/s; the cost model's estimate of
each step's forward+backward against the measured one (runs that recorded it); the plan of every step
(one column per step, ranks up the side, a block per sequence-parallel group coloured by its
degree, micro-batches side by side; a red tick under a step that ran the fallback plan).
Plain SVG written by hand, so plotting needs nothing beyond the runtime's dependencies.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from html import escape
from pathlib import Path

WIDTH, LEFT, RIGHT, PANEL, GAP, TOP = 860, 70, 20, 170, 50, 40
DEGREE_COLORS = ["#c6dbef", "#6baed6", "#2171b5", "#08306b", "#54278f", "#7f2704"]


def read_metrics(path: str | Path) -> tuple[list[dict], list[dict]]:
    train, evals = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}:{number}: not a JSON line ({error.msg})") from None
        if record.get("kind") == "eval":
            evals.append(record)
        elif "loss" in record:
            train.append(record)
    if not train:
        raise SystemExit(f"{path}: no training records (is it a train.metrics_file?)")
    # A resumed run appends to the same file: the last record of a step wins.
    train = list({r["step"]: r for r in train}.values())
    evals = list({r["step"]: r for r in evals}.values())
    return sorted(train, key=lambda r: r["step"]), sorted(evals, key=lambda r: r["step"])


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if step * m >= raw)
    return [i * step for i in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


class Panel:
    """One chart: maps (step, value) into its box and draws axes, grid and series."""

    def __init__(self, top: float, steps: tuple[int, int], values: tuple[float, float],
                 title: str) -> None:
        self.top, self.title = top, title
        self.x0, self.x1 = steps
        self.y0, self.y1 = values
        self.width = WIDTH - LEFT - RIGHT

    def x(self, step: float) -> float:
        return LEFT + (step - self.x0) / (self.x1 - self.x0) * self.width

    def y(self, value: float) -> float:
        return self.top + PANEL - (value - self.y0) / max(1e-12, self.y1 - self.y0) * PANEL

    def axes(self, y_ticks: bool = True) -> list[str]:
        out = [f'<text x="{LEFT}" y="{self.top - 8}" class="title">{escape(self.title)}</text>',
               f'<rect x="{LEFT}" y="{self.top}" width="{self.width}" height="{PANEL}" '
               'class="frame"/>']
        for tick in nice_ticks(math.ceil(self.x0), math.floor(self.x1), 8):
            x = self.x(tick)
            out.append(f'<line x1="{x:.1f}" y1="{self.top + PANEL}" x2="{x:.1f}" '
                       f'y2="{self.top + PANEL + 4}" class="axis"/>'
                       f'<text x="{x:.1f}" y="{self.top + PANEL + 16}" class="tick" '
                       f'text-anchor="middle">{fmt(tick)}</text>')
        if y_ticks:
            for tick in nice_ticks(self.y0, self.y1):
                y = self.y(tick)
                out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + self.width}" y2="{y:.1f}" '
                           f'class="grid"/><text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" '
                           f'text-anchor="end">{fmt(tick)}</text>')
        return out

    def line(self, points: list[tuple[float, float]], css: str) -> str:
        path = " ".join(f"{self.x(s):.1f},{self.y(v):.1f}" for s, v in points)
        return f'<polyline points="{path}" class="{css}"/>'


def plan_columns(panel: Panel, train: list[dict], world: int) -> list[str]:
    """Each step's plan: micro-batches side by side, groups stacked by degree."""
    out = []
    column = panel.width / (panel.x1 - panel.x0)
    for record in train:
        micro_batches = re.findall(r"<([\d,]*)>", record.get("plan", ""))
        left = panel.x(record["step"] - 0.5)
        for m, shape in enumerate(micro_batches):
            width = column / len(micro_batches)
            rank = 0
            for degree in (int(d) for d in shape.split(",") if d):
                color = DEGREE_COLORS[min(len(DEGREE_COLORS) - 1, degree.bit_length() - 1)]
                y = panel.top + PANEL - (rank + degree) / world * PANEL
                out.append(f'<rect x="{left + m * width:.2f}" y="{y:.2f}" '
                           f'width="{max(0.5, width - 0.3):.2f}" height="{degree / world * PANEL:.2f}"'
                           f' fill="{color}" stroke="white" stroke-width="0.3"><title>step '
                           f'{record["step"]}: {escape(record["plan"])}</title></rect>')
                rank += degree
        if record.get("source", "planner") != "planner":
            out.append(f'<line x1="{left + column / 2:.1f}" y1="{panel.top + PANEL + 2}" '
                       f'x2="{left + column / 2:.1f}" y2="{panel.top + PANEL + 9}" class="fallback"/>')
    return out


def render(train: list[dict], evals: list[dict], title: str, subtitle: str = "") -> str:
    steps = (min(r["step"] for r in train) - 0.5, max(r["step"] for r in train) + 0.5)
    losses = [r["loss"] for r in train] + [e["eval_loss"] for e in evals]
    low, high = min(losses), max(losses)
    pad = 0.05 * (high - low or 1)
    loss = Panel(TOP + 36, steps, (low - pad, high + pad), "loss (train, eval)")
    speeds = [r["tokens_per_s"] for r in train]
    speed = Panel(loss.top + PANEL + GAP, steps, (0, max(speeds) * 1.1), "tokens/s")
    timed = [r for r in train if r.get("measured_ms")]
    below = speed
    if timed:
        top_ms = max(max(r["measured_ms"], r["est_step_ms"]) for r in timed)
        times = Panel(speed.top + PANEL + GAP, steps, (0, top_ms * 1.1),
                      "forward+backward per step, ms: estimated (cost model) vs measured")
        below = times
    shapes = [re.findall(r"<([\d,]*)>", r.get("plan", "")) for r in train]
    world = max((sum(int(d) for d in s.split(",") if d) for mbs in shapes for s in mbs), default=1)
    plans = Panel(below.top + PANEL + GAP, steps, (0, world),
                  f"plan per step: {world} ranks up, micro-batches side by side, groups by degree")
    height = plans.top + PANEL + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
           "<style>.title{font-size:13px;font-weight:bold}.tick{font-size:11px;fill:#444}"
           ".frame{fill:none;stroke:#999}.grid{stroke:#eee}.axis{stroke:#999}"
           ".train{fill:none;stroke:#2171b5;stroke-width:1.5}.eval{fill:none;stroke:#d94801;"
           "stroke-width:2}.speed{fill:none;stroke:#238b45;stroke-width:1.2}"
           ".fallback{stroke:#d62728;stroke-width:2}.legend{font-size:11px}"
           ".measured{fill:none;stroke:#2171b5;stroke-width:1.5}.estimated{fill:none;stroke:#d94801;"
           "stroke-width:1.5;stroke-dasharray:4 3}</style>",
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="20" font-size="15">{escape(title)}</text>',
           f'<text x="{LEFT}" y="38" font-size="12" fill="#444">{escape(subtitle)}</text>']
    out += loss.axes() + [loss.line([(r["step"], r["loss"]) for r in train], "train")]
    if evals:
        out.append(loss.line([(e["step"], e["eval_loss"]) for e in evals], "eval"))
        out += [f'<circle cx="{loss.x(e["step"]):.1f}" cy="{loss.y(e["eval_loss"]):.1f}" r="3" '
                f'fill="#d94801"/>' for e in evals]
    legend_x = LEFT + loss.width - 150
    out.append(f'<line x1="{legend_x}" y1="{loss.top + 14}" x2="{legend_x + 20}" '
               f'y2="{loss.top + 14}" class="train"/><text x="{legend_x + 25}" y="{loss.top + 18}" '
               f'class="legend">train</text><line x1="{legend_x + 70}" y1="{loss.top + 14}" '
               f'x2="{legend_x + 90}" y2="{loss.top + 14}" class="eval"/><text '
               f'x="{legend_x + 95}" y="{loss.top + 18}" class="legend">eval</text>')
    out += speed.axes() + [speed.line([(r["step"], r["tokens_per_s"]) for r in train], "speed")]
    if timed:
        out += times.axes() + [times.line([(r["step"], r["measured_ms"]) for r in timed], "measured"),
                               times.line([(r["step"], r["est_step_ms"]) for r in timed], "estimated")]
        legend_x = LEFT + times.width - 190
        out.append(f'<line x1="{legend_x}" y1="{times.top + 14}" x2="{legend_x + 20}" '
                   f'y2="{times.top + 14}" class="measured"/><text x="{legend_x + 25}" '
                   f'y="{times.top + 18}" class="legend">measured</text><line x1="{legend_x + 90}" '
                   f'y1="{times.top + 14}" x2="{legend_x + 110}" y2="{times.top + 14}" '
                   f'class="estimated"/><text x="{legend_x + 115}" y="{times.top + 18}" '
                   f'class="legend">estimated</text>')
    out += plans.axes(y_ticks=False) + plan_columns(plans, train, world)
    legend_y = plans.top + PANEL + 34
    out.append(f'<text x="{LEFT}" y="{legend_y + 9}" class="legend">degree:</text>')
    for i, color in enumerate(DEGREE_COLORS[:world.bit_length()]):
        x = LEFT + 50 + i * 60
        out.append(f'<rect x="{x}" y="{legend_y}" width="12" height="12" fill="{color}"/>'
                   f'<text x="{x + 16}" y="{legend_y + 10}" class="legend">{1 << i}</text>')
    out.append(f'<text x="{LEFT + 50 + 60 * world.bit_length() + 20}" y="{legend_y + 10}" '
               'class="legend" fill="#d62728">| fallback plan</text>')
    out.append(f'<text x="{LEFT + loss.width / 2}" y="{height - 4}" class="tick" '
               'text-anchor="middle">step</text></svg>')
    return "\n".join(out) + "\n"


def summary(train: list[dict], evals: list[dict]) -> str:
    text = (f"{len(train)} steps: loss {train[0]['loss']:.3f} (step {train[0]['step']}) -> "
            f"{train[-1]['loss']:.3f} (step {train[-1]['step']})")
    if evals:
        text += (f"; eval loss {evals[0]['eval_loss']:.3f} (step {evals[0]['step']}) -> "
                 f"{evals[-1]['eval_loss']:.3f} (step {evals[-1]['step']})")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flexsp.plot",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", help="JSON lines written by flexsp.train (train.metrics_file)")
    parser.add_argument("--out", required=True, help="the SVG to write")
    parser.add_argument("--title", help="default: the metrics file's name")
    args = parser.parse_args(argv)
    train, evals = read_metrics(args.metrics)
    text = summary(train, evals)
    Path(args.out).write_text(render(train, evals, args.title or str(args.metrics), text))
    print(f"{args.out}: {text}")


if __name__ == "__main__":
    main()
