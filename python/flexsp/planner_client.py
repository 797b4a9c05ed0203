"""Talks to the planner (`flexsp serve`) from rank 0 and hands every rank a plan it can run.

Protocol (DESIGN.md): one JSON request per line on the service's stdin,
`{"id": 7, "lengths": [1234, 80, ...]}`, one JSON reply per line on its stdout: the plan with
`"id": 7` added, or `{"id": 7, "error": "..."}`.

Rank 0 asks for batch t+1's plan as soon as batch t's plan is in hand, so the planner works
while batch t trains; a background thread reads replies as they come. `PlanSource.plan_for`
then waits at most `timeout_s` for it. Whatever goes wrong (no binary, a late reply, an error
reply, a dead process) ends in a warning and `fallback_plan`, never in a wait without end; a
dead planner is restarted up to `max_restarts` times, then abandoned for the rest of the run.
`broadcast_plan` sends rank 0's document to every rank, and every rank validates it on its own
before any collective of the step (it falls back to the same local plan if it is invalid).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import torch.distributed as dist

from flexsp.plan import PlanError, fallback_plan, validate_plan

log = logging.getLogger("flexsp.planner")

REPO_ROOT = Path(__file__).resolve().parents[2]


class PlannerError(RuntimeError):
    """The planner gave no usable reply: late, dead, or it answered with an error."""


def find_planner_binary() -> str | None:
    """$FLEXSP_BIN, else <repo>/.build/release/flexsp; None if neither is an executable file."""
    candidate = os.environ.get("FLEXSP_BIN") or str(REPO_ROOT / ".build" / "release" / "flexsp")
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


class PlannerProcess:
    """One `flexsp serve` child: send requests, collect replies by id on a reader thread."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1)
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._dead_reason: str | None = None
        self._stderr_tail: list[str] = []
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_replies(self) -> None:
        for line in self._proc.stdout:
            try:
                reply = json.loads(line)
                reply_id = reply["id"]
            except (ValueError, KeyError, TypeError):
                log.warning("planner: ignoring a line that is not a reply: %.200s", line.strip())
                continue
            with self._cond:
                self._replies[reply_id] = reply
                self._cond.notify_all()
        self._proc.wait()
        with self._cond:
            tail = " | ".join(self._stderr_tail[-3:])
            self._dead_reason = f"exited with status {self._proc.returncode}" + (
                f" ({tail})" if tail else "")
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        for line in self._proc.stderr:
            self._stderr_tail = (self._stderr_tail + [line.strip()])[-10:]

    @property
    def alive(self) -> bool:
        return self._dead_reason is None

    def send(self, request_id: int, lengths: list[int]) -> None:
        try:
            self._proc.stdin.write(json.dumps({"id": request_id, "lengths": lengths}) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as error:
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
            raise PlannerError(f"planner refused request {request_id}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()


class PlanSource:
    """Rank 0's source of plans: the planner when it answers in time, else the local fallback."""

    def __init__(self, cost_model_path: str | Path, cost_model: dict, world_size: int,
                 strategy: str = "flexsp", timeout_s: float = 30.0, max_restarts: int = 1,
                 binary: str | None = None, command: list[str] | None = None) -> None:
        self.cost_model, self.world_size = cost_model, world_size
        self.timeout_s, self.restarts_left = timeout_s, max_restarts
        binary = binary or find_planner_binary()
        if command is None and binary is not None:
            command = [binary, "serve", "--cost-model", str(cost_model_path), "--strategy", strategy]
        self.command = command
        self.process: PlannerProcess | None = None
        self.pending: set[int] = set()
        if command is None:
            log.warning("planner: no flexsp binary (set FLEXSP_BIN or build .build/release/flexsp);"
                        " every step uses the runtime's fallback plan")
        else:
            self.process = self._start()

    def _start(self) -> PlannerProcess | None:
        try:
            return PlannerProcess(self.command)
        except OSError as error:
            log.warning("planner: cannot start %s: %s; the fallback plan is used from now on",
                        self.command[0], error)
            return None

    def request(self, step: int, lengths: list[int]) -> None:
        """Asks for the plan of batch `step` now; `plan_for(step)` collects it later."""
        if self.process is None:
            return
        try:
            self.process.send(step, lengths)
            self.pending.add(step)
        except PlannerError as error:
            self._planner_failed(error)

    def plan_for(self, step: int, lengths: list[int]) -> tuple[dict, str]:
        """The plan for batch `step` and where it came from ('planner' or 'fallback: why')."""
        if self.process is not None and step not in self.pending:
            self.request(step, lengths)
        if self.process is None or step not in self.pending:
            return fallback_plan(lengths, self.cost_model, self.world_size), "fallback: no planner"
        self.pending.discard(step)
        try:
            reply = self.process.receive(step, self.timeout_s)
        except PlannerError as error:
            if not self.process.alive:
                self._planner_failed(error)
            else:
                log.warning("%s; using the fallback plan", error)
            return fallback_plan(lengths, self.cost_model, self.world_size), f"fallback: {error}"
        reply.pop("id", None)
        return reply, "planner"

    def _planner_failed(self, error: Exception) -> None:
        """A dead planner: restart it while restarts are left, else run on without it."""
        if self.process is not None:
            self.process.close()
        self.pending.clear()
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


def broadcast_plan(plan: dict | None, source: str | None) -> tuple[dict, str]:
    """Rank 0's (plan, source) on every rank, sent as one pickled object."""
    payload = [plan, source]
    dist.broadcast_object_list(payload, src=0)
    return payload[0], payload[1]


def checked_plan(plan: dict, source: str, lengths: list[int], cost_model: dict,
                 world_size: int) -> tuple[dict, str]:
    """`plan` if it obeys every rule for this batch, else the fallback (same verdict on all ranks)."""
    try:
        validate_plan(plan, world_size, lengths)
        return plan, source
    except PlanError as error:
        if dist.is_initialized() and dist.get_rank() == 0:
            log.warning("refusing the planner's plan: %s; using the fallback plan", error)
        return fallback_plan(lengths, cost_model, world_size), f"fallback: invalid plan: {error}"
