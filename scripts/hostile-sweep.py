#!/usr/bin/env python3
"""Hostile requests and command lines against a built `flexsp` (issue 11): every case must end
with no signal, no hang (10 s each), a plain message (no Foundation internals, no raw control
characters) and, for bad input, a non-zero status or an error reply.

    python3 scripts/hostile-sweep.py [.build/release/flexsp]

Prints one line per failing case and a summary: inputs tried, crashes, hangs, other failures.
"""

import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".build" / "release" / "flexsp")
TMP = Path(tempfile.mkdtemp(prefix="flexsp-sweep-"))
INTERNAL = ("NSCocoaErrorDomain", "Error Domain", "Swift/", "Fatal error", "DecodingError", "codingPath",
            "Backtrac", "Illegal instruction", "Traceback")
failures: list[str] = []
tried = crashes = hangs = 0


def plain(text: str) -> bool:
    return not any(word in text for word in INTERNAL) and not any(
        ord(c) < 0x20 and c not in "\n\t" for c in text)


def run(args: list[str], stdin: str = "", expect_ok: bool | None = False, timeout: float = 10) -> subprocess.CompletedProcess | None:
    """expect_ok: True (must succeed), False (must fail), None (either, but cleanly)."""
    global tried, crashes, hangs
    tried += 1
    try:
        result = subprocess.run([BIN, *args], input=stdin.encode("utf-8", "surrogateescape"), capture_output=True,
                                timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        hangs += 1
        failures.append(f"HANG {args[:6]}")
        return None
    out = result.stdout.decode("utf-8", "replace")
    err = result.stderr.decode("utf-8", "replace")
    if result.returncode < 0 or result.returncode > 128:
        crashes += 1
        failures.append(f"CRASH rc={result.returncode} {args[:6]}: {err[-300:]}")
    elif not plain(err) or (args and args[0] != "render" and not plain(out)):
        failures.append(f"NOT PLAIN {args[:6]}: {err[:200]!r} {out[:200]!r}")
    elif expect_ok is True and result.returncode != 0:
        failures.append(f"REFUSED GOOD INPUT {args[:6]}: {err[:200]}")
    elif expect_ok is False and result.returncode == 0:
        failures.append(f"ACCEPTED BAD INPUT {args[:6]}: {out[:200]}")
    elif expect_ok is False and "Error" not in err and "error" not in out:
        failures.append(f"SILENT REFUSAL {args[:6]}")
    return result


def write(name: str, text: str | bytes) -> str:
    path = TMP / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape"))
    return str(path)


# -- serve: hostile request lines ---------------------------------------------------------------
model = json.loads(subprocess.run([BIN, "presets", "--model", "gpt-7b", "--world-size", "8"],
                                  capture_output=True, check=True).stdout)


def cm(**changes) -> dict:
    return {**model, **changes}


requests = [
    "garbage", "[]", "1", '"x"', "null", "{}", '{"id":1}', '{"id":1,"lengths":[4096,],}', '{"id":1,"lengths":[4096]}}',
    '{"id":1,"lengths":[NaN]}', '{"id":1,"lengths":[Infinity]}', '{"id":1,"lengths":[1e400]}',
    '{"id":1,"lengths":[-0]}', '{"id":1,"lengths":[0]}', '{"id":1,"lengths":[1.5]}', '{"id":1,"lengths":[true]}',
    '{"id":1,"lengths":[null]}', '{"id":1,"lengths":["1"]}', '{"id":1,"lengths":[[1]]}', '{"id":1,"lengths":{}}',
    '{"id":1,"lengths":[9223372036854775807]}', '{"id":1,"lengths":[9223372036854775808]}',
    '{"id":1,"lengths":[-9223372036854775808]}', '{"id":1,"lengths":[1099511627777]}', '{"id":1,"lengths":[1e300]}',
    '{"id":1,"lengths":[4096],"lengths":[1]}', '{"id":[1],"lengths":[4096]}', '{"id":{},"lengths":[4096]}',
    '{"id":true,"lengths":[4096]}', '{"id":1e300,"lengths":[4096]}', '{"id":"' + "x" * 1000 + '","lengths":[4096]}',
    '{"id":1,"lengths":[4096],"strategy":"milpx"}', '{"id":1,"lengths":[4096],"strategy":7}',
    '{"id":1,"lengths":[4096],"strategy":"static:3"}', '{"id":1,"lengths":[4096],"strategy":"static:0"}',
    '{"id":1,"lengths":[4096],"strategy":"static:-1"}', '{"id":1,"lengths":[4096],"strategy":"static:9223372036854775807"}',
    '{"id":1,"lengths":[4096],"strategy":"static:99999999999999999999"}', '{"id":1,"lengths":[4096],"strategy":"\\u001b[2J"}',
    '{"id":1,"lengths":[4096],"cost_model":null}', '{"id":1,"lengths":[4096],"cost_model":[]}',
    '{"id":1,"lengths":[4096],"cost_model":{}}', '{"id":1,"lengths":[4096],"extra":1}',
    '{"id":1,"lengths":' + "[" * 100 + "]" * 100 + "}", "\ufeff{}", '{"id":1,"lengths":["\\ud800"]}',
    '{"id":1,"lengths":[300000]}', '{"id":1,"lengths":[900000]}', '{"id":1,"lengths":[' + ",".join(["1"] * 8193) + "]}",
]
hostile_models = [
    cm(world_size=64.5), cm(world_size=2 ** 61), cm(world_size=0), cm(world_size=-8), cm(world_size=True),
    cm(world_size=1 << 21), cm(max_degree=3), cm(max_degree=2 ** 62), cm(max_degree=0), cm(gpus_per_node=0),
    cm(gpus_per_node=16), cm(memory_budget_mb=1e20), cm(memory_budget_mb=0), cm(memory_budget_mb=-1),
    cm(memory_budget_mb=1e308), cm(activation_mb_per_token=1e-300), cm(activation_mb_per_token=0),
    cm(model_states_mb=1e9), cm(alpha1_ms=0, alpha2_ms=1e-300, beta1_ms=0, a2a_mb_per_token=0),
    cm(alpha1_ms=0, alpha2_ms=0, beta1_ms=0), cm(alpha1_ms=1e300), cm(alpha2_ms=1e308, beta1_ms=1e308),
    cm(a2a_mb_per_token=1e308), cm(a2a_bandwidth_gbps={"2": 1e-308, "4": 1e-308, "8": 1e-308}),
    cm(a2a_bandwidth_gbps={"2": 1, "02": 2, "4": 3, "8": 4}), cm(a2a_bandwidth_gbps={"2": 1, "+2": 2}),
    cm(a2a_bandwidth_gbps={}), cm(a2a_bandwidth_gbps={"4": 1}), cm(a2a_bandwidth_gbps={"2": -1}),
    cm(a2a_bandwidth_gbps={"2": 1, "x": 1}), cm(a2a_bandwidth_gbps={"2": 1, "99999999999999999999": 1}),
    cm(a2a_bandwidth_gbps={"2": 1, "4611686018427387904": 1}), cm(a2a_bandwidth_gbps={"2": 1}),
    cm(version=2), cm(version="1"), cm(name="\u001b]0;pwned\u0007"), cm(name="x" * 1000),
    cm(world_size=1, gpus_per_node=1, max_degree=1, a2a_bandwidth_gbps={}),
    cm(world_size=1 << 20, gpus_per_node=8, max_degree=1 << 20, a2a_bandwidth_gbps={"2": 1.0}),
]
lengths_for = ["[4096, 100, 7]", "[1099511627776]", "[" + ",".join(["30000"] * 8192) + "]"]
for document in hostile_models:
    for lengths in lengths_for:
        requests.append(json.dumps({"id": 9, "lengths": json.loads(lengths), "cost_model": document}))
for strategy in ["flexsp", "milp", "batch-ada", "static", "static:8", "megatron-dcp"]:
    requests.append(json.dumps({"id": 3, "lengths": [30000, 4096, 100, 7] * 50, "strategy": strategy}))
    requests.append(json.dumps({"id": 3, "lengths": [1] * 8192, "strategy": strategy}))

good_after = '{"id":424242,"lengths":[4096]}'
for request in requests:
    result = run(["serve", "--world-size", "8", "--milp-time-limit", "2"], request + "\n" + good_after + "\n",
                 expect_ok=True, timeout=60)
    if result is None:
        continue
    lines = result.stdout.decode("utf-8", "replace").splitlines()
    if len(lines) != 2 or '"id":424242' not in lines[1]:
        failures.append(f"SERVE LOST ITS WAY on {request[:120]!r}: {lines[:1]!r:.200}")
        continue
    reply = json.loads(lines[0])
    if "error" in reply and not plain(reply["error"]):
        failures.append(f"NOT PLAIN reply to {request[:80]!r}: {reply['error'][:200]!r}")
# The thorough lower bound (linear programs) on the hostile cost models and large batches.
for request in requests[-(len(hostile_models) * len(lengths_for) + 12):]:
    result = run(["serve", "--world-size", "8", "--milp-time-limit", "2", "--bound", "thorough"],
                 request + "\n" + good_after + "\n", expect_ok=True, timeout=60)
    if result is not None and result.stdout.decode("utf-8", "replace").count("\n") != 2:
        failures.append(f"SERVE --bound thorough LOST ITS WAY on {request[:120]!r}")
# A request line of 17 MiB and a line of bytes that are not UTF-8.
run(["serve"], '{"id":1,"lengths":[' + "1," * (9 << 20) + "1]}\n" + good_after + "\n", expect_ok=True, timeout=60)
run(["serve"], "\udcff\udcfe\n" + good_after + "\n", expect_ok=True)

# -- command lines -------------------------------------------------------------------------------
numbers = ["nan", "inf", "-inf", "0", "-1", "1e300", "9223372036854775807", "9223372036854775808",
           "-9223372036854775809", "4611686018427387904", "", "abc", "1.5", "0x10", "\u001b[31m"]
lengths = "data/lengths/wikipedia-sample.txt"
files = {
    "dir": str(TMP), "devnull": "/dev/null", "missing": str(TMP / "missing"), "empty": write("empty", ""),
    "binary": write("binary", b"\xff\xfe\x00\x01"), "huge-line": write("huge", "1" * 100000 + "\n"),
    "control": write("control", "12\u001b[2J\u0007\n"), "negative": write("neg", "-5\n"),
    "comments": write("comments", "# only\n\n"), "spaces": write("spaces", "1 2\n"),
}
fifo = TMP / "fifo"
os.mkfifo(fifo)
files["fifo"] = str(fifo)
for name, path in files.items():
    run(["plan", "--lengths", path])
    run(["validate", path])
    run(["render", path, "--out", str(TMP / "out.svg")])
    run(["plan", "--lengths", lengths, "--cost-model", path])
for flag, number in itertools.product(["--step", "--batch-size", "--world-size", "--milp-time-limit", "--max-context"], numbers):
    run(["plan", "--lengths", lengths, f"{flag}={number}"], expect_ok=None)
for flag, number in itertools.product(["--steps", "--batch-size", "--milp-time-limit", "--world-size"], numbers):
    run(["compare", "--lengths", lengths, "--strategies", "flexsp,static", "--steps", "1", f"{flag}={number}"],
        expect_ok=None, timeout=60)
for flag, number in itertools.product(["--world-size", "--max-context"], numbers):
    run(["presets", "--model", "gpt-7b", f"{flag}={number}"], expect_ok=None)
for number in numbers:
    run(["serve", f"--milp-time-limit={number}", f"--world-size=8"], "", expect_ok=None)
    run(["serve", f"--world-size={number}"], "", expect_ok=None)
for strategies in ["", ",", "flexsp,,static", "bogus", "static:3", "static:99999999999999999999", "\u001b[2J"]:
    run(["compare", "--lengths", lengths, "--steps", "1", "--strategies", strategies])
    run(["plan", "--lengths", lengths, "--strategy", strategies])
for model_name in ["", "GPT-7B", "bogus", "\u001b[2J", "x" * 10000]:
    run(["presets", "--model", model_name], expect_ok=None)
    run(["plan", "--lengths", lengths, "--model", model_name], expect_ok=None)
    run(["plan", "--lengths", lengths, "--cluster", model_name], expect_ok=None)
# Hostile plans through validate and render.
plan = json.loads(subprocess.run([BIN, "plan", "--lengths", lengths, "--world-size", "8", "--json"],
                                 capture_output=True, check=True, cwd=ROOT).stdout)
good_plan = write("good-plan.json", json.dumps(plan))
run(["validate", good_plan], expect_ok=True)
run(["validate", "--json", good_plan], expect_ok=True)
run(["render", good_plan, "--out", str(TMP / "ok.svg")], expect_ok=True)


def mutated(path: list, value) -> dict:
    document = json.loads(json.dumps(plan))
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


g = ["micro_batches", 0, "groups", 0]
values = [None, True, "x", [], {}, -1, 0, 2 ** 62, 2 ** 63 - 1, -(2 ** 63), 2 ** 64, 1e300, -1e300, 0.5, 64.5]
for path in [g + ["first_rank"], g + ["degree"], g + ["tokens"], g + ["est_ms"], g + ["memory_mb"], g + ["sequence_ids"],
             ["world_size"], ["lower_bound_ms"], ["est_step_ms"], ["sequences"], ["micro_batches"],
             ["cost_model", "world_size"], ["cost_model", "max_degree"], ["sequences", 0, "length"], ["sequences", 0, "id"],
             ["solver", "wall_ms"], ["version"], ["strategy"], ["micro_batches", 0, "est_ms"]]:
    for value in values:
        path_file = write("bad-plan.json", json.dumps(mutated(path, value)))
        result = run(["validate", path_file], expect_ok=None)
        run(["validate", "--json", path_file], expect_ok=None)
        if result is not None and result.returncode == 0:
            run(["render", path_file, "--out", str(TMP / "m.svg")], expect_ok=True)
        else:
            run(["render", path_file, "--out", str(TMP / "m.svg")])
for text in ['{"version":1,', json.dumps(plan)[:-1] + ",}", json.dumps(plan).replace('"est_step_ms":', '"est_step_ms":NaN,"x":'),
             json.dumps({**plan, "sequences": [{"id": i, "length": 2 ** 62} for i in range(4)]})]:
    run(["validate", write("t.json", text)])
for width in ["inf", "nan", "1e20", "0", "-5", "99", "100001", "abc"]:
    run(["render", good_plan, "--out", str(TMP / "w.svg"), f"--width={width}"])
os.symlink(TMP / "target", TMP / "link.svg")
for out in [str(TMP / "link.svg"), str(fifo), "/dev/full", "/dev/null", str(TMP), str(TMP / "no" / "x.svg"), ""]:
    run(["render", good_plan, "--out", out])
    run(["compare", "--lengths", lengths, "--steps", "1", "--strategies", "flexsp", "--plot", out], timeout=60)

print(f"{tried} inputs tried: {crashes} crashes, {hangs} hangs, {len(failures) - crashes - hangs} other failures")
for line in failures:
    print(" ", line[:400])
sys.exit(1 if failures else 0)
