"""A stand-in for `flexsp serve` that speaks the same protocol and misbehaves on demand.

    python fake_planner.py serve --cost-model FILE [--strategy S] [--delay S] [--die-after N]
        [--invalid] [--error] [--garbage]

Plans come from the runtime's own fallback (valid by construction) so that the tests check the
client, not a planner. --delay sleeps before each reply; --die-after exits after answering N
requests (the N+1-th is read and dropped); --invalid breaks a rule (a sequence placed twice);
--error answers with an error object; --garbage writes a non-JSON line before each reply.
"""

import argparse
import json
import sys
import time

from flexsp.plan import fallback_plan


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
    args = parser.parse_args()
    with open(args.cost_model) as f:
        cost_model = json.load(f)
    answered = 0
    for line in sys.stdin:
        request = json.loads(line)
        if answered == args.die_after:
            print("fake planner: dying on purpose", file=sys.stderr, flush=True)
            sys.exit(3)
        time.sleep(args.delay)
        if args.error:
            reply = {"id": request["id"], "error": "fake planner: refusing on purpose"}
        else:
            reply = fallback_plan(request["lengths"], cost_model, cost_model["world_size"])
            reply["strategy"] = args.strategy
            reply["id"] = request["id"]
            if args.invalid:
                first = reply["micro_batches"][0]["groups"][0]
                first["sequence_ids"] = first["sequence_ids"] + first["sequence_ids"][:1]
        if args.garbage:
            print("this is not JSON", flush=True)
        print(json.dumps(reply), flush=True)
        answered += 1


if __name__ == "__main__":
    main()
