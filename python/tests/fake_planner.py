"""A stand-in for `flexsp serve` that speaks the same protocol and misbehaves on demand.

    python fake_planner.py serve --cost-model FILE [--strategy S] [--delay S] [--die-after N]
        [--invalid] [--error] [--garbage] [--fault NAME]

Plans come from the runtime's own fallback (valid by construction) so that the tests check the
client, not a planner. --delay sleeps before each reply; --die-after exits after answering N
requests (the N+1-th is read and dropped); --invalid breaks a rule (a sequence placed twice);
--error answers with an error object; --garbage writes a non-JSON line before each reply.
--fault makes every reply one kind of lie or breakage (see FAULTS).
"""

import argparse
import json
import sys
import time

from flexsp.cost_model import CostModel
from flexsp.plan import fallback_plan

FAULTS = {
    "id-string": "the id as a string",
    "id-list": "the id inside a list",
    "id-bool": "the id as true",
    "id-other": "another request's id",
    "not-object": "a JSON list instead of an object",
    "scalar": "a bare JSON number",
    "wrong-shape": "an object without micro_batches",
    "wrong-types": "a plan whose degrees are strings",
    "other-job": "a plan for a cost model that allows degree 4 (the job allows 1)",
    "wrong-batch": "a valid plan for other lengths",
    "nan": "a plan with NaN in it",
    "two-lines": "two replies per request",
    "no-reply": "no reply at all",
    "half-line-then-die": "half a reply, then exit",
    "binary": "bytes that are not UTF-8",
}


def reply_for(request: dict, cost_model: CostModel, args: argparse.Namespace) -> list[str]:
    """The lines to write for one request."""
    rid = request["id"]
    if args.error:
        return [json.dumps({"id": rid, "error": "fake planner: refusing on purpose"})]
    plan = fallback_plan(request["lengths"], cost_model).to_document()
    plan["strategy"] = args.strategy
    if args.invalid:
        first = plan["micro_batches"][0]["groups"][0]
        first["sequence_ids"] = first["sequence_ids"] + first["sequence_ids"][:1]
    fault = args.fault
    if fault == "id-string":
        rid = str(rid)
    elif fault == "id-list":
        rid = [rid]
    elif fault == "id-bool":
        rid = True
    elif fault == "id-other":
        rid = rid + 1000
    elif fault == "not-object":
        return [json.dumps([rid, plan])]
    elif fault == "scalar":
        return ["42"]
    elif fault == "wrong-shape":
        del plan["micro_batches"]
    elif fault == "wrong-types":
        for mb in plan["micro_batches"]:
            for g in mb["groups"]:
                g["degree"] = str(g["degree"])
    elif fault == "other-job":
        wider = CostModel.from_document({**cost_model.to_document(), "max_degree": 4})
        plan = fallback_plan([cost_model.token_capacity(1) + 1] + request["lengths"][1:], wider).to_document()
        plan["sequences"][0]["length"] = request["lengths"][0]
    elif fault == "wrong-batch":
        plan = fallback_plan([n + 1 for n in request["lengths"]], cost_model).to_document()
    elif fault == "nan":
        return [json.dumps({"id": rid, **plan, "est_step_ms": float("nan")})]
    elif fault == "no-reply":
        return []
    elif fault == "binary":
        return ["\udcff\udcfe not utf-8"]
    line = json.dumps({"id": rid, **plan})
    if fault == "two-lines":
        return [line, line]
    if fault == "half-line-then-die":
        sys.stdout.write(line[: len(line) // 2])
        sys.stdout.flush()
        sys.exit(4)
    return [line]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--cost-model", required=True)
    parser.add_argument("--strategy", default="flexsp")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--die-after", type=int, default=-1)
    parser.add_argument("--invalid", action="store_true")
    parser.add_argument("--error", action="store_true")
    parser.add_argument("--garbage", action="store_true")
    parser.add_argument("--fault", choices=sorted(FAULTS))
    args = parser.parse_args()
    cost_model = CostModel.load(args.cost_model)
    out = open(sys.stdout.fileno(), "w", encoding="utf-8", errors="surrogateescape", closefd=False)
    answered = 0
    for line in sys.stdin:
        request = json.loads(line)
        if answered == args.die_after:
            print("fake planner: dying on purpose", file=sys.stderr, flush=True)
            sys.exit(3)
        time.sleep(args.delay)
        if args.garbage:
            out.write("this is not JSON\n")
        # As `serve`: a request may carry its own cost model (a calibrated one).
        model = CostModel.from_document(request["cost_model"]) if "cost_model" in request else cost_model
        for reply in reply_for(request, model, args):
            out.write(reply + "\n")
        out.flush()
        answered += 1


if __name__ == "__main__":
    main()
