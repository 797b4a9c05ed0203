"""flexsp.plot: the SVG of a metrics file (a resumed run's repeated steps counted once)."""

import json
import xml.etree.ElementTree as ET

import pytest

from flexsp.plot import main

SVG = "{http://www.w3.org/2000/svg}"


def test_plot_draws_loss_eval_speed_and_plans(tmp_path, capsys):
    records = [{"kind": "train", "step": s, "loss": 8 - s / 10, "tokens_per_s": 1000 + s,
                "plan": "<2,1,1> <4>" if s % 2 else "<1,1,1,1>",
                "source": "planner" if s != 3 else "fallback: no planner"} for s in range(1, 9)]
    records += [{"kind": "eval", "step": 4, "eval_loss": 7.7}, {"kind": "eval", "step": 8,
                                                               "eval_loss": 7.3}]
    records += records[5:7]  # a resumed run appends steps 6-7 again
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    main([str(metrics), "--out", str(tmp_path / "run.svg")])
    assert "8 steps: loss 7.900 (step 1) -> 7.200 (step 8); eval loss 7.700 (step 4) -> 7.300" \
        in capsys.readouterr().out
    root = ET.parse(tmp_path / "run.svg").getroot()
    lines = root.findall(f"{SVG}polyline")
    assert [line.get("class") for line in lines] == ["train", "eval", "speed"]
    assert len(lines[0].get("points").split()) == 8
    groups = [r for r in root.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(groups) == 4 * (3 + 1) + 4 * 4  # odd steps: 3 + 1 groups; even: 4
    assert len(root.findall(f"{SVG}line[@class='fallback']")) == 1


def test_plot_names_a_bad_line(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"kind": "train", "step": 1, "loss": 1.0}\n{oops\n')
    with pytest.raises(SystemExit, match=r"metrics\.jsonl:2: not a JSON line"):
        main([str(metrics), "--out", str(tmp_path / "run.svg")])


def test_plot_draws_estimated_against_measured_steps(tmp_path):
    records = [{"kind": "train", "step": s, "loss": 5.0, "tokens_per_s": 900.0, "plan": "<2>",
                "source": "planner", "est_step_ms": 100.0 + s, "measured_ms": 200.0 - s}
               for s in range(1, 6)]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    main([str(metrics), "--out", str(tmp_path / "run.svg")])
    root = ET.parse(tmp_path / "run.svg").getroot()
    lines = {line.get("class"): line for line in root.findall(f"{SVG}polyline")}
    assert set(lines) == {"train", "speed", "measured", "estimated"}
    # Each series has one point per step, and measured (above the estimate) is drawn higher.
    measured = [tuple(map(float, p.split(","))) for p in lines["measured"].get("points").split()]
    estimated = [tuple(map(float, p.split(","))) for p in lines["estimated"].get("points").split()]
    assert len(measured) == len(estimated) == 5
    assert all(m[1] < e[1] for m, e in zip(measured, estimated))  # SVG y grows downwards
