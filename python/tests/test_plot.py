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
