"""Talks to the planner (`flexsp serve`) from rank 0 and hands every rank a plan it can run.

Protocol (docs/DESIGN.md): one JSON request per line on the service's stdin,
`{"id": 7, "lengths": [1234, 80, ...]}` (with `"cost_model"` once calibration has refitted the
job's), one JSON reply per line on its stdout: the plan with `"id": 7` added, or
`{"id": 7, "error": "..."}`.

`serve` answers every request with exactly one line, in order, so the client pairs each line
with its oldest unanswered request: a line that is not that request's reply (not JSON, not an
object, an id of another value or type) is an unusable reply to it, which falls back at once
instead of leaving the step to wait for a reply that will never come.

Rank 0 asks for batch t+1's plan as soon as batch t's plan is in hand, so the planner works
while batch t trains; a background thread reads replies as they come. `PlanSource.plan_for`
then waits at most `timeout_s` for it and checks it against the job (`plan.check_plan`).
Whatever goes wrong (no binary, a late reply, an error reply, a reply of any other shape or
type, a plan for another job, a dead process) ends within the step in a warning and
`fallback_plan`, never in a wait without end, and never in an exception. A dead planner is
restarted up to `max_restarts` times, then abandoned for the rest of the run. The reader thread
survives any line; if it ever stops, the planner counts as dead, so no later step waits for it.
`broadcast_plan` sends rank 0's checked plan to every rank.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import torch.distributed as dist

from flexsp.calibrate import probe_for
from flexsp.contract import ContractError, loads_strict
from flexsp.cost_model import CostModel
from flexsp.plan import Plan, PlanError, check_plan, fallback_plan
from flexsp.planner_binary import find_planner_binary

log = logging.getLogger("flexsp.planner")

_MAX_KEPT_REPLIES = 64


class PlannerError(RuntimeError):
    """The planner gave no usable reply: late, dead, or it answered with an error."""


def _reply_id(reply: object) -> int | None:
    """The integer id of a reply object, or None when it has none a request could have had."""
    if not isinstance(reply, dict):
        return None
    rid = reply.get("id")
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


class PlannerProcess:
    """One `flexsp serve` child: send requests, collect replies by id on a reader thread."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1, errors="replace")
        self._replies: dict[int, dict] = {}
        self._unanswered: deque[int] = deque()  # ids sent, oldest first, not yet answered
        self._cond = threading.Condition()
        self._dead_reason: str | None = None
        self._stderr_tail: list[str] = []
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_replies(self) -> None:
        reason = None
        try:
            for line in self._proc.stdout:
                if not line.strip():
                    continue
                try:
                    reply, problem = loads_strict(line), None
                except ContractError as error:
                    reply, problem = None, f"not JSON ({error})"
                rid = _reply_id(reply)
                with self._cond:
                    if not self._unanswered:
                        log.warning("planner: ignoring a line no request asked for: %.200r", line.strip())
                        continue
                    expected = self._unanswered.popleft()
                    if problem is None and rid != expected:
                        shown = reply.get("id") if isinstance(reply, dict) else reply
                        problem = f"a reply with id {shown!r:.80}" if isinstance(reply, dict) else "not a JSON object"
                    if problem is not None:
                        log.warning("planner: unusable reply to request %d: %s: %.200r", expected, problem,
                                    line.strip())
                        reply = {"error": f"unusable reply: {problem}"}
                    self._replies[expected] = reply
                    # A planner that answers ids nobody asked for cannot grow this without end.
                    while len(self._replies) > _MAX_KEPT_REPLIES:
                        del self._replies[min(self._replies)]
                    self._cond.notify_all()
            self._proc.wait()
            tail = " | ".join(self._stderr_tail[-3:])
            reason = f"exited with status {self._proc.returncode}" + (f" ({tail})" if tail else "")
        except Exception as error:  # noqa: BLE001 - the thread must never die silently
            reason = f"reply reader failed: {type(error).__name__}: {error}"
            log.warning("planner: %s", reason)
        finally:
            with self._cond:
                self._dead_reason = reason or "reply reader stopped"
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        try:
            for line in self._proc.stderr:
                self._stderr_tail = (self._stderr_tail + [line.strip()[:300]])[-10:]
        except (OSError, ValueError):
            pass

    @property
    def alive(self) -> bool:
        return self._dead_reason is None

    def send(self, request_id: int, lengths: list[int], fields: dict | None = None) -> None:
        with self._cond:
            self._replies.pop(request_id, None)
            self._unanswered.append(request_id)
        try:
            self._proc.stdin.write(json.dumps({"id": request_id, "lengths": lengths, **(fields or {})}) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError) as error:
            raise PlannerError(f"planner: cannot send request {request_id}: {error}") from error

    def receive(self, request_id: int, timeout_s: float) -> dict:
        """The reply to `request_id`; PlannerError if it is an error, late, or the planner died."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while request_id not in self._replies:
                if self._dead_reason is not None:
                    raise PlannerError(f"planner died: {self._dead_reason}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PlannerError(f"planner: no reply to request {request_id} in {timeout_s:g} s")
                self._cond.wait(left)
            reply = self._replies.pop(request_id)
            # Replies to older requests (given up on after a timeout) are never needed.
            for stale in [i for i in self._replies if i < request_id]:
                del self._replies[stale]
        if "error" in reply:
            raise PlannerError(f"planner refused request {request_id}: {str(reply['error'])[:500]}")
        return reply

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                try:
                    self._proc.stdin.close()
                    self._proc.wait(timeout=2)
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    self._proc.kill()
                    self._proc.wait()
        except OSError:
            pass


class PlanSource:
    """Rank 0's source of plans: the planner when it answers in time with a plan this job can
    run, else the local fallback."""

    def __init__(self, cost_model_path: str | Path, cost_model: CostModel, world_size: int,
                 strategy: str = "flexsp", timeout_s: float = 30.0, max_restarts: int = 1,
                 binary: str | None = None, command: list[str] | None = None,
                 degree_problem: Callable[[int], str | None] | None = None) -> None:
        if world_size != cost_model.world_size:
            raise ValueError(f"the cost model is for {cost_model.world_size} ranks; this job has {world_size}")
        self.cost_model, self.world_size, self.degree_problem = cost_model, world_size, degree_problem
        # The model plans are asked for with: the job's, or the calibrated one (`set_cost_model`).
        self.planning_model = cost_model
        self.timeout_s, self.restarts_left = timeout_s, max_restarts
        binary = binary or find_planner_binary()
        if command is None and binary is not None:
            command = [binary, "serve", "--cost-model", str(cost_model_path), "--strategy", strategy]
        self.command = command
        self.process: PlannerProcess | None = None
        self.pending: dict[int, CostModel] = {}  # step -> the cost model its plan was asked for
        # The strategy plans are asked for with, when not the planner's own (a calibration probe:
        # `set_strategy`), and what each pending step was asked with.
        self.strategy: str | None = None
        self.pending_strategy: dict[int, str | None] = {}
        if command is None:
            log.warning("planner: no flexsp binary (set FLEXSP_BIN or build .build/release/flexsp);"
                        " every step uses the runtime's fallback plan")
        else:
            self.process = self._start()

    def _start(self) -> PlannerProcess | None:
        try:
            return PlannerProcess(self.command)
        except (OSError, ValueError) as error:
            log.warning("planner: cannot start %s: %s; the fallback plan is used from now on",
                        self.command[0], error)
            return None

    def set_cost_model(self, cost_model: CostModel) -> None:
        """Plans asked for from now on use `cost_model` (the same world, degrees and memory as
        the job's, refitted times: flexsp.calibrate); a plan is checked against the model it
        was asked for."""
        self.planning_model = cost_model

    def set_strategy(self, strategy: str | None) -> None:
        """Plans asked for from now on use `strategy` (None: the one the planner was started
        with); flexsp.calibrate asks for `static:d` now and then to sample degree d."""
        self.strategy = strategy

    def request(self, step: int, lengths: list[int], cost_model: CostModel | None = None,
                strategy: str | None = None) -> None:
        """Asks for the plan of batch `step` now (with `cost_model`, else the planning model,
        and `strategy`, else the current one); `plan_for(step)` collects it later."""
        if self.process is None:
            return
        if not self.process.alive:
            self._planner_failed(PlannerError("planner died"))
            if self.process is None:
                return
        model = cost_model or self.planning_model
        strategy = probe_for(strategy or self.strategy, model, lengths)
        fields = {"cost_model": model.to_document()} if model != self.cost_model else {}
        if strategy is not None:
            fields["strategy"] = strategy
        try:
            self.process.send(step, lengths, fields or None)
            self.pending[step] = model
            self.pending_strategy[step] = strategy
        except PlannerError as error:
            self._planner_failed(error)

    def plan_for(self, step: int, lengths: list[int]) -> tuple[Plan, str]:
        """A plan for batch `step` that this job can run, and where it came from ('planner' or
        'fallback: why'). PlanError only when not even the fallback can hold the batch."""
        try:
            plan = self._planner_plan(step, lengths)
            return plan, "planner"
        except (PlannerError, ContractError) as error:
            why = str(error)
        except Exception as error:  # noqa: BLE001 - any other fault still ends in the fallback
            why = f"{type(error).__name__}: {error}"
        log.warning("%s; using the fallback plan", why)
        return fallback_plan(lengths, self.planning_model), f"fallback: {why}"

    def _planner_plan(self, step: int, lengths: list[int]) -> Plan:
        if self.process is not None and step not in self.pending:
            self.request(step, lengths)
        if self.process is None or step not in self.pending:
            raise PlannerError("no planner")
        model = self.pending.pop(step)
        self.pending_strategy.pop(step, None)
        try:
            reply = self.process.receive(step, self.timeout_s)
        except PlannerError as error:
            if not self.process.alive:
                self._planner_failed(error)
            raise
        reply = dict(reply)
        reply.pop("id", None)
        try:
            return check_plan(reply, model, lengths, self.degree_problem)
        except PlanError as error:
            raise PlanError(f"refusing the planner's plan for step {step}: {error}") from None

    def _planner_failed(self, error: Exception) -> None:
        """A dead planner: restart it while restarts are left, else run on without it."""
        if self.process is not None:
            self.process.close()
        self.pending.clear()
        self.pending_strategy.clear()
        if self.restarts_left > 0:
            self.restarts_left -= 1
            log.warning("%s; restarting the planner (%d restart(s) left)", error, self.restarts_left)
            self.process = self._start()
        else:
            log.warning("%s; no restarts left, the fallback plan is used from now on", error)
            self.process = None

    def close(self) -> None:
        if self.process is not None:
            self.process.close()
            self.process = None


def broadcast_plan(plan: Plan | None, source: str | None) -> tuple[Plan | None, str | None]:
    """Rank 0's (plan, source) on every rank, sent as one pickled object. Rank 0 checked the
    plan (`PlanSource.plan_for`), so every rank runs the same valid plan."""
    payload = [plan, source]
    dist.broadcast_object_list(payload, src=0)
    return payload[0], payload[1]
