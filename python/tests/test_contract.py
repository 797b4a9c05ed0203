"""The shared contract fixtures (contract/cases.json), which the Swift tests read too: the runtime
reaches the planner's verdict on every cost model, plan and length file, names the same field or
line when it refuses one, and computes the same numbers when it accepts one. Then a property
test: garbled documents, requests and length files through every parser; each is accepted or
refused with a ContractError, never another exception."""

import json
import random
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from flexsp.contract import ContractError, loads_strict
from flexsp.cost_model import CostModel
from flexsp.lengths import parse_lengths
from flexsp.plan import Plan, PlanError, step_time, violations

CONTRACT = REPO_ROOT / "contract"
CASES = json.loads((CONTRACT / "cases.json").read_text())


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


@pytest.mark.parametrize("case", CASES["cost_models"], ids=lambda c: Path(c["file"]).stem)
def test_cost_models(case):
    data = (CONTRACT / case["file"]).read_bytes()
    if case["valid"]:
        model = CostModel.from_json(data)
        for probe in case["group_times"]:
            assert close(model.group_time(probe["lengths"], probe["degree"]), probe["ms"]), probe
        for probe in case["capacities"]:
            assert model.token_capacity(probe["degree"]) == probe["tokens"], probe
        assert CostModel.from_document(model.to_document()) == model
    else:
        with pytest.raises(ContractError) as error:
            CostModel.from_json(data)
        assert case["mentions"] in str(error.value)


@pytest.mark.parametrize("case", CASES["plans"], ids=lambda c: Path(c["file"]).stem)
def test_plans(case):
    data = (CONTRACT / case["file"]).read_bytes()
    try:
        plan = Plan.from_json(data)
        problems = violations(plan)
    except PlanError as error:
        plan, problems = None, [str(error)]
    if case["valid"]:
        assert problems == []
        assert close(step_time(plan), case["step_ms"])
        assert close(plan.lower_bound_ms, case["lower_bound_ms"])
    else:
        assert any(case["mentions"] in p for p in problems), problems


@pytest.mark.parametrize("case", CASES["lengths"], ids=lambda c: Path(c["file"]).stem)
def test_length_files(case):
    text = (CONTRACT / case["file"]).read_bytes().decode("utf-8")
    if case["valid"]:
        assert parse_lengths(text, case["file"]) == case["lengths"]
    else:
        with pytest.raises(ContractError) as error:
            parse_lengths(text, case["file"])
        if case["line"] is not None:
            assert f"{case['file']}:{case['line']}:" in str(error.value)


FRAGMENTS = ["1e400", "-0", "9223372036854775808", "64.5", "null", "true", '"x"', "[]", "{}", ",", ",]",
             "NaN", "Infinity", "1099511627777", "\u001b[2J", "\x00", '"id":[1]', "1" * 5000, "#", "\ufeff",
             "[" * 200]


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text) + 1)
        kind = rng.randrange(6)
        if kind == 0 and text:
            text = text[:at] + chr(rng.randrange(0x80)) + text[at + 1:]
        elif kind == 1:
            text = text[:at] + rng.choice('{}[],:"0123456789eE.+-\\ \n#') + text[at:]
        elif kind == 2:
            text = text[:at] + text[at + rng.randint(1, 8):]
        elif kind == 3:
            text = text[:at]
        elif kind == 4:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        else:
            text = text[:at] + text[at:at + rng.randint(1, 16)] + text[at:]
    return text


def test_garbled_input_is_accepted_or_refused_plainly():
    """Property test: every garbled input is either accepted or refused with a ContractError
    whose message names something; no other exception escapes any parser."""
    rng = random.Random(20261125)
    seeds = [(CONTRACT / c["file"]).read_text() for c in CASES["cost_models"][:2] + CASES["plans"][:1]]
    seeds += ['{"id": 7, "lengths": [20000, 3000, 500, 1]}', "# lengths\n4096\n512 # c\n\n77\n"]
    tried = 0
    for seed in seeds:
        for _ in range(1000):
            text = mutate(seed, rng)
            tried += 1
            for parse in (loads_strict, CostModel.from_json, Plan.from_json,
                          lambda t: parse_lengths(t, "f")):
                try:
                    result = parse(text)
                except ContractError as error:
                    message = str(error)
                    assert message and "Traceback" not in message
                    assert not any(ord(c) < 0x20 for c in message.replace("\n", "")), message
                else:
                    if isinstance(result, Plan):
                        for problem in violations(result):
                            assert problem
    print(f"property test: {tried} garbled inputs through 4 parsers")
    assert tried == len(seeds) * 1000
