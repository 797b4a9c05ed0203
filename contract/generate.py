"""Regenerates contract/: the fixtures and cases.json (expected verdicts and numbers).

    swift build -c release --product flexsp && python3 contract/generate.py

Group times and capacities are computed here from docs/DESIGN.md's equations, independently of
both halves; plans are made by `flexsp plan` and scored by `flexsp validate --json`, and every
invalid plan is checked to be refused with its `mentions` text. Both test suites then check that
the planner and the runtime agree with these numbers and verdicts.
"""
import copy
import json
import math
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
B = os.environ.get("FLEXSP_BIN", str(ROOT / ".build" / "release" / "flexsp"))
C = str(ROOT / "contract")
for d in ("cost_models", "plans", "lengths"):
    os.makedirs(f"{C}/{d}", exist_ok=True)
base = json.loads(subprocess.check_output([B, "presets", "--model", "gpt-7b", "--world-size", "8"]))
cases = {"cost_models": [], "plans": [], "lengths": []}

def bw(cm, d):
    m = {int(k): v for k, v in cm["a2a_bandwidth_gbps"].items()}
    if d in m: return m[d]
    e = d // 2
    while e > 1:
        if e in m: return m[e]
        e //= 2
    return math.inf

def gtime(cm, lengths, d):
    t = cm["beta1_ms"]
    for s in lengths:
        t += (cm["alpha1_ms"] * s * s + cm["alpha2_ms"] * s) / d
        if d > 1: t += cm["a2a_mb_per_token"] * s / (d * bw(cm, d))
    return t

def cap(cm, d):
    x = (cm["memory_budget_mb"] - cm["model_states_mb"]) / cm["activation_mb_per_token"] * d
    x = math.nextafter(x, math.inf) + 1e-9
    return min(int(x), 1 << 42)

def write_cm(name, text_or_doc, valid, **extra):
    path = f"cost_models/{name}.json"
    text = text_or_doc if isinstance(text_or_doc, str) else json.dumps(text_or_doc, indent=1)
    open(f"{C}/{path}", "w").write(text + "\n")
    entry = {"file": path, "valid": valid, **extra}
    if valid:
        doc = json.loads(text) if isinstance(text_or_doc, str) else text_or_doc
        probes = [([4096], 1), ([4096, 100], 2), ([30000], 4), ([30000, 7, 9], 8)]
        entry["group_times"] = [{"lengths": l, "degree": d, "ms": gtime(doc, l, d)} for l, d in probes]
        entry["capacities"] = [{"degree": d, "tokens": cap(doc, d)} for d in (1, 2, 4, 8)]
    cases["cost_models"].append(entry)

def variant(**changes):
    doc = copy.deepcopy(base); doc.update(changes); return doc

write_cm("valid-gpt7b-world8", base, True)
write_cm("valid-partial-bandwidths", variant(a2a_bandwidth_gbps={"2": 50.0}, name="only degree 2 measured"), True,
         note="degrees 4 and 8 use degree 2's bandwidth (the nearest smaller listed degree)")
write_cm("valid-sparse-bandwidths", variant(a2a_bandwidth_gbps={"2": 50.0, "8": 5.0}), True,
         note="degree 4 uses degree 2's bandwidth")
write_cm("valid-signed-and-padded-keys", variant(a2a_bandwidth_gbps={"+2": 119.54, "04": 104.07, "8": 96.5}), True)
write_cm("valid-huge-budget", variant(memory_budget_mb=1e20), True, note="capacities clamp at 2^42 tokens")
write_cm("valid-integral-floats", json.dumps(base).replace('"world_size": 8', '"world_size": 8.0'), True,
         note="8.0 is the integer 8")
cases["cost_models"][-1]["group_times"] = cases["cost_models"][0]["group_times"]
cases["cost_models"][-1]["capacities"] = cases["cost_models"][0]["capacities"]
write_cm("valid-name-missing", {k: v for k, v in base.items() if k != "name"}, True, note="name defaults to 'custom'")
inv = [
    ("invalid-world-size-fraction", json.dumps(base).replace('"world_size": 8', '"world_size": 64.5'), "world_size"),
    ("invalid-world-size-huge", variant(world_size=2**61), "world_size"),
    ("invalid-world-size-bool", json.dumps(base).replace('"world_size": 8', '"world_size": true'), "world_size"),
    ("invalid-duplicate-degree-keys", variant(a2a_bandwidth_gbps={"2": 1.0, "02": 2.0, "4": 3.0, "8": 4.0}), "a2a_bandwidth_gbps"),
    ("invalid-key-not-a-degree", variant(a2a_bandwidth_gbps={"2": 1.0, "four": 2.0}), "a2a_bandwidth_gbps"),
    ("invalid-key-not-power-of-two", variant(a2a_bandwidth_gbps={"2": 1.0, "6": 2.0}), "a2a_bandwidth_gbps"),
    ("invalid-no-degree-2-bandwidth", variant(a2a_bandwidth_gbps={"4": 1.0}), "a2a_bandwidth_gbps"),
    ("invalid-zero-bandwidth", variant(a2a_bandwidth_gbps={"2": 0.0}), "a2a_bandwidth_gbps"),
    ("invalid-missing-alpha1", {k: v for k, v in base.items() if k != "alpha1_ms"}, "alpha1_ms"),
    ("invalid-alpha1-string", variant(alpha1_ms="fast"), "alpha1_ms"),
    ("invalid-negative-beta1", variant(beta1_ms=-1.0), "beta1_ms"),
    ("invalid-all-compute-zero", variant(alpha1_ms=0.0, alpha2_ms=0.0, beta1_ms=0.0), "alpha1_ms"),
    ("invalid-model-states-fill-budget", variant(model_states_mb=40000.0), "model_states_mb"),
    ("invalid-max-degree-3", variant(max_degree=3), "max_degree"),
    ("invalid-gpus-per-node-zero", variant(gpus_per_node=0), "gpus_per_node"),
    ("invalid-activation-zero", variant(activation_mb_per_token=0.0), "activation_mb_per_token"),
    ("invalid-version-2", variant(version=2), "version"),
    ("invalid-name-control-character", variant(name="bad\u001bname"), "name"),
    ("invalid-trailing-comma", json.dumps(base)[:-1] + ",}", "not valid JSON"),
    ("invalid-duplicate-field", json.dumps(base)[:-1] + ', "beta1_ms": 1.0}', "duplicate key 'beta1_ms'"),
    ("invalid-nan", json.dumps(base).replace('"beta1_ms": 629.3563', '"beta1_ms": NaN'), "not valid JSON"),
    ("invalid-number-overflow", json.dumps(base).replace('"beta1_ms": 629.3563', '"beta1_ms": 1e400'), "'1e400' is out of range"),
    ("invalid-not-an-object", "[1, 2]", "object"),
]
for name, doc, field in inv:
    write_cm(name, doc, False, mentions=field)

# Plans: planned by `flexsp plan`, scored by `flexsp validate --json`.
open(f"{C}/lengths/valid-batch.txt", "w").write("# a small batch for the plan fixtures\n20000\n9000\n4096 # tokens\n\n4096\n512\n77\n3\n1\n")
def plan_of(strategy, cm_file):
    out = subprocess.check_output([B, "plan", "--cost-model", f"{C}/{cm_file}", "--lengths", f"{C}/lengths/valid-batch.txt",
                                   "--batch-size", "8", "--raw", "--json", "--strategy", strategy])
    doc = json.loads(out); doc["solver"]["wall_ms"] = 1.0
    return doc
def verdict(path):
    r = subprocess.run([B, "validate", "--json", f"{C}/{path}"], capture_output=True, text=True)
    return json.loads(r.stdout)
def write_plan(name, doc, valid, mentions=None):
    path = f"plans/{name}.json"
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=1)
    open(f"{C}/{path}", "w").write(text + "\n")
    v = verdict(path)
    assert v["valid"] == valid, (name, v)
    entry = {"file": path, "valid": valid}
    if valid: entry["step_ms"] = v["est_step_ms"]; entry["lower_bound_ms"] = v["lower_bound_ms"]
    else:
        entry["mentions"] = mentions
        blob = json.dumps(v)
        assert mentions in blob, (name, mentions, blob)
    cases["plans"].append(entry)

good = plan_of("flexsp", "cost_models/valid-gpt7b-world8.json")
write_plan("valid-flexsp", good, True)
write_plan("valid-batch-ada", plan_of("batch-ada", "cost_models/valid-gpt7b-world8.json"), True)
write_plan("valid-partial-bandwidths", plan_of("static:8", "cost_models/valid-partial-bandwidths.json"), True)
def mutate(f):
    d = copy.deepcopy(good); f(d); return d
g0 = "micro_batches[0].groups[0]"
write_plan("invalid-no-sequences", mutate(lambda d: d.update(sequences=[], micro_batches=[], est_step_ms=0.0, lower_bound_ms=0.0)), False, "sequences")
write_plan("invalid-negative-lower-bound", mutate(lambda d: d.update(lower_bound_ms=-1e300)), False, "lower_bound_ms")
write_plan("invalid-huge-first-rank", mutate(lambda d: d["micro_batches"][0]["groups"][0].update(first_rank=2**63 - 1)), False, g0)
write_plan("invalid-misaligned", mutate(lambda d: d["micro_batches"][0]["groups"][0].update(first_rank=1)), False, g0)
write_plan("invalid-degree-over-max", mutate(lambda d: d["micro_batches"][0]["groups"][0].update(degree=16)), False, g0)
write_plan("invalid-degree-not-power", mutate(lambda d: d["micro_batches"][0]["groups"][0].update(degree=3)), False, g0)
write_plan("invalid-lengths-overflow", mutate(lambda d: [s.update(length=2**62) for s in d["sequences"][:2]]), False, "sequences")
write_plan("invalid-duplicate-id", mutate(lambda d: d["sequences"].append(dict(d["sequences"][0]))), False, "sequences")
def place_twice(d):
    g = d["micro_batches"][0]["groups"][0]; extra = d["micro_batches"][-1]["groups"][-1]["sequence_ids"][0]
    g["sequence_ids"].append(extra)
write_plan("invalid-placed-twice", mutate(place_twice), False, "placed twice")
write_plan("invalid-unknown-sequence", mutate(lambda d: d["micro_batches"][0]["groups"][0]["sequence_ids"].append(99)), False, g0)
def unplace(d):
    d["sequences"].append({"id": 99, "length": 5})
write_plan("invalid-sequence-in-no-group", mutate(unplace), False, "99")
write_plan("invalid-tokens-mismatch", mutate(lambda d: d["micro_batches"][0]["groups"][0].update(tokens=1)), False, g0)
write_plan("invalid-estimate-mismatch", mutate(lambda d: d.update(est_step_ms=d["est_step_ms"] * 2)), False, "est_step_ms")
write_plan("invalid-world-size-mismatch", mutate(lambda d: d.update(world_size=16)), False, "world_size")
def overlap(d):
    mb = d["micro_batches"][1]
    g = mb["groups"][0]
    a, b = g["sequence_ids"][:3], g["sequence_ids"][3:]
    length = {s["id"]: s["length"] for s in d["sequences"]}
    mb["groups"] = [dict(g, degree=4, first_rank=0, sequence_ids=a, tokens=sum(length[i] for i in a)),
                    dict(g, degree=4, first_rank=0, sequence_ids=b, tokens=sum(length[i] for i in b))]
write_plan("invalid-overlapping-groups", mutate(overlap), False, "micro_batches[1]")
def oom(d):
    d["sequences"][0]["length"] = 10**9
write_plan("invalid-out-of-memory", mutate(oom), False, "micro_batches[")
write_plan("invalid-id-fraction", json.dumps(good).replace('"id": 0,', '"id": 0.5,', 1), False, "sequences[0].id")
write_plan("invalid-trailing-comma", json.dumps(good)[:-1] + ",}", False, "line 1")
write_plan("invalid-embedded-cost-model", mutate(lambda d: d["cost_model"].update(max_degree=3)), False, "max_degree")

# Length files.
L = [
    ("valid-comments-and-blanks", "# header\n100 # trailing comment\n\n  \t7\r\n+3\n0042\n", [100, 7, 3, 42]),
    ("valid-no-final-newline", "5\n6", [5, 6]),
    ("valid-limit", "1099511627776\n", [1 << 40]),
]
for name, text, lengths in L:
    open(f"{C}/lengths/{name}.txt", "w").write(text)
    cases["lengths"].append({"file": f"lengths/{name}.txt", "valid": True, "lengths": lengths})
cases["lengths"].append({"file": "lengths/valid-batch.txt", "valid": True, "lengths": [20000, 9000, 4096, 4096, 512, 77, 3, 1]})
L = [
    ("invalid-word", "100\n2x0\n", 2), ("invalid-fraction", "1.5\n", 1), ("invalid-zero", "5\n0\n", 2),
    ("invalid-negative", "-5\n", 1), ("invalid-19-digits", "7\n1234567890123456789\n", 2),
    ("invalid-over-limit", "1099511627777\n", 1), ("invalid-two-numbers", "1 2\n", 1),
    ("invalid-only-comments", "# nothing\n\n", None), ("invalid-empty", "", None),
    ("invalid-control-bytes", "12\x1b[31mred\n", 1), ("invalid-sign-only", "+\n", 1),
    ("invalid-underscore", "1_000\n", 1), ("invalid-unicode-digit", "\u0661\u0662\n", 1),
    ("invalid-vertical-tab", "12\x0b\n", 1),
]
for name, text, line in L:
    open(f"{C}/lengths/{name}.txt", "w").write(text)
    cases["lengths"].append({"file": f"lengths/{name}.txt", "valid": False, "line": line})
json.dump(cases, open(f"{C}/cases.json", "w"), indent=1)
print({k: len(v) for k, v in cases.items()})
