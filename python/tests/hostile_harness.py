"""Runs the entry points as a user would (`python -m ...`), cheaply enough for dozens of cases.

Starting Python with torch and transformers costs ~3 s a process on a loaded 2-core machine, so a
server process imports them once and forks one child per run (per rank); the child runs the
entry point as `__main__` and ends the way the interpreter would: a SystemExit's message on
stderr, an uncaught exception's traceback, the exit status. Every child is a real process with
its own stdout/stderr files, environment, working directory and exit status.
FLEXSP_HOSTILE_EXEC=1 makes each child exec a fresh `python -m` instead (slower, exact).

Each run has a hard time limit (a hang fails the test, the children are killed) and can send a
signal to one rank once a file holds some text (Ctrl-C during preparation, a peer that dies).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The one place that says how each entry point is invoked (module and leading arguments).
ENTRY_POINTS = {
    "prepare": ["flexsp.prepare"],
    "train": ["flexsp.train"],
    "export": ["flexsp.export"],
}


@dataclass
class Outcome:
    returncode: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def __str__(self) -> str:  # what a failed assertion shows
        return (f"exit {self.returncode} after {self.seconds:.1f} s\n--- stdout\n"
                f"{self.stdout[-1500:]}\n--- stderr\n{self.stderr[-3000:]}")


class Runner:
    """Client of one server process; `run` blocks until the run ends or is killed."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "python"), "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false", "FLEXSP_BIN": "/nonexistent"}
        self.process = subprocess.Popen([sys.executable, __file__, "--serve"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"hostile harness server did not start: {ready!r}")

    def run(self, entry: str, args: list[str], *, cwd: str | Path | None = None,
            env: dict[str, str] | None = None, world_size: int = 0, timeout_s: float = 60,
            signal_rank: int | None = None, signal_number: int = signal.SIGINT,
            signal_when: tuple[str | Path, str] | None = None) -> list[Outcome] | Outcome:
        """Runs `entry` with `args`; world_size > 0: that many ranks (RANK, WORLD_SIZE,
        MASTER_ADDR/PORT set as torchrun sets them), a list of outcomes by rank. signal_when
        (path, text): once the file holds the text, `signal_number` goes to `signal_rank`."""
        with tempfile.TemporaryDirectory() as logs:
            request = {
                "argv": ENTRY_POINTS[entry] + [str(a) for a in args],
                "cwd": str(cwd or REPO_ROOT), "env": env or {}, "ranks": max(world_size, 1),
                "distributed": world_size > 0, "port": free_port(), "timeout_s": timeout_s,
                "logs": logs, "signal_rank": signal_rank, "signal_number": int(signal_number),
                "signal_when": [str(signal_when[0]), signal_when[1]] if signal_when else None,
                "exec": os.environ.get("FLEXSP_HOSTILE_EXEC") == "1",
            }
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = json.loads(self.process.stdout.readline())
            outcomes = [Outcome(code, Path(logs, f"{r}.out").read_text(errors="replace"),
                                Path(logs, f"{r}.err").read_text(errors="replace"),
                                reply["seconds"])
                        for r, code in enumerate(reply["codes"])]
        return outcomes if world_size > 0 else outcomes[0]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the server side (runs in its own process) ----

def _child(request: dict, rank: int) -> None:
    """In the forked child: become the entry point's process, never return."""
    code = 1
    try:
        os.chdir(request["cwd"])
        env = dict(request["env"])
        if request["distributed"]:
            env.update({"RANK": str(rank), "LOCAL_RANK": str(rank),
                        "WORLD_SIZE": str(request["ranks"]),
                        "LOCAL_WORLD_SIZE": str(request["ranks"]), "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(request["port"])})
        os.environ.update(env)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, suffix in ((1, "out"), (2, "err")):
            log = os.open(Path(request["logs"], f"{rank}.{suffix}"),
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        argv = request["argv"]
        if request["exec"]:
            os.execv(sys.executable, [sys.executable, "-m", *argv])
        import runpy
        sys.modules.pop(argv[0], None)  # as in a fresh `python -m`: run, not imported
        sys.argv = [argv[0], *argv[1:]]
        try:
            runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:  # as the interpreter does at the top level
            if stop.code is None:
                code = 0
            elif isinstance(stop.code, int):
                code = stop.code
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            sys.excepthook(*sys.exc_info())
            code = 128 + signal.SIGINT
        except BaseException:  # noqa: BLE001 - printed as the interpreter prints it
            sys.excepthook(*sys.exc_info())
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _holds(path: str, text: str) -> bool:
    """Whether the file holds `text`; with text "", whether the path exists."""
    if not text:
        return os.path.exists(path)
    try:
        return text in Path(path).read_text(errors="replace")
    except OSError:
        return False


def _serve_one(request: dict) -> dict:
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    pids = []
    for rank in range(request["ranks"]):
        pid = os.fork()
        if pid == 0:
            _child(request, rank)
        pids.append(pid)
    codes: dict[int, int | None] = {}  # None: killed at the time limit
    signalled = request["signal_when"] is None
    deadline = started + request["timeout_s"]
    while len(codes) < len(pids):
        for rank, pid in enumerate(pids):
            if rank in codes:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes[rank] = os.waitstatus_to_exitcode(status)
        if not signalled and _holds(*request["signal_when"]):
            signalled = True
            target = request["signal_rank"] or 0
            if target not in codes:
                os.kill(pids[target], request["signal_number"])
        # A rank stopped on purpose (SIGSTOP) never ends by itself: once every other rank has,
        # it is killed.
        stopped = request["signal_number"] == signal.SIGSTOP and signalled and \
            all(r in codes for r in range(len(pids)) if r != request["signal_rank"])
        if time.monotonic() > deadline or stopped:
            for rank, pid in enumerate(pids):
                if rank not in codes:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    codes[rank] = -signal.SIGSTOP if stopped else None
        time.sleep(0.02)
    return {"codes": [codes[r] for r in range(len(pids))],
            "seconds": time.monotonic() - started}


def serve() -> None:
    # What the entry points import, paid for once.
    import torch  # noqa: F401
    import torch.distributed.checkpoint  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401
    import transformers  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401
    import flexsp.export  # noqa: F401
    import flexsp.prepare  # noqa: F401
    import flexsp.train  # noqa: F401
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(_serve_one(json.loads(line))), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
