"""Where the planner binary is, and the `flexsp` console script that runs it.

In order: `$FLEXSP_BIN`; the binary a platform wheel carries (flexsp/_planner/flexsp, built by
scripts/build-wheel.py); a developer checkout's `<repo>/.build/release/flexsp`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "_planner" / "flexsp"
CHECKOUT = Path(__file__).resolve().parents[2] / ".build" / "release" / "flexsp"


def _executable(path: str | Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_planner_binary() -> str | None:
    """$FLEXSP_BIN when set (None if it is not an executable file: an explicit choice is never
    replaced by another binary), else the bundled binary, else the checkout's build."""
    chosen = os.environ.get("FLEXSP_BIN")
    if chosen:
        return chosen if _executable(chosen) else None
    return next((str(p) for p in (BUNDLED, CHECKOUT) if _executable(p)), None)


def main() -> None:
    """The `flexsp` command: the planner's own CLI, run in place of this process."""
    binary = find_planner_binary()
    if binary is None:
        where = (f"FLEXSP_BIN={os.environ['FLEXSP_BIN']} is not an executable file"
                 if os.environ.get("FLEXSP_BIN") else
                 f"neither {BUNDLED} (a wheel from `make wheel`) nor {CHECKOUT} (`make build`) exists")
        sys.exit(f"flexsp: no planner binary: {where}")
    os.execv(binary, [binary, *sys.argv[1:]])
