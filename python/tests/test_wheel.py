"""The platform wheel (`make wheel`) in a clean environment: a new virtual environment with the
wheel installed, no Swift toolchain on PATH or on disk, no `.build/` reachable, no COIN-OR (nor
LAPACK, nor Fortran runtime) libraries on the system; `flexsp plan` must still solve with CBC and
CLP, and a 3-step training run on 2 ranks must take its plans from the bundled planner.

Dependencies: installing torch, transformers and datasets from the package index into a fresh
environment takes minutes (5 min here), so the new environment reads them from the running
interpreter's site-packages through a .pth file, with flexsp's own entries left out; pip installs
the wheel with `--no-index`, which also checks that those packages satisfy the wheel's metadata.
The hiding uses a private mount namespace (`unshare -m`, or `unshare -rm` without root) when the
kernel allows one; the dynamic loader's own trace checks what the planner loads either way.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, TINY_LLAMA, cost_model_for

DIST = REPO_ROOT / "dist"
WHEEL_INPUTS = [REPO_ROOT / "Package.swift", REPO_ROOT / "Sources", REPO_ROOT / "python" / "flexsp",
                REPO_ROOT / "python" / "pyproject.toml", REPO_ROOT / "scripts" / "build-wheel.py"]
# What the bundled planner may load from the system: glibc, libstdc++, libgcc_s (manylinux).
SYSTEM_LIBRARY = re.compile(r"/(ld-linux-x86-64|libc|libm|libpthread|librt|libdl|libstdc\+\+|"
                            r"libgcc_s)\.so[.0-9]*$")
# What the clean environment must not find (the toolchain's and Debian's copies).
HIDDEN_LIBRARIES = ("libCbc", "libClp", "libCgl", "libOsi", "libCoinUtils", "libgfortran",
                    "libquadmath", "liblapack", "libblas")


def newest_input_mtime() -> float:
    files = [p for root in WHEEL_INPUTS for p in ([root] if root.is_file() else root.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts]
    return max(p.stat().st_mtime for p in files)


def fresh_wheel() -> Path:
    """dist/'s wheel when it is newer than everything it is built from, else a new one."""
    wheels = sorted(DIST.glob("flexsp-*.whl"))
    if len(wheels) == 1 and wheels[0].stat().st_mtime >= newest_input_mtime():
        return wheels[0]
    if shutil.which("swift") is None:
        pytest.skip("no up-to-date dist/flexsp-*.whl and no Swift toolchain to build one "
                    "(run `make wheel` where Swift is installed)")
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "build-wheel.py")], check=True,
                   cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    (wheel,) = DIST.glob("flexsp-*.whl")
    return wheel


def dependency_layer(tmp: Path) -> Path:
    """A folder of links to the running interpreter's site-packages, flexsp's entries left out."""
    site = Path(sysconfig.get_paths()["purelib"])
    layer = tmp / "deps"
    layer.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("flexsp", "__editable__")) or name.endswith(".pth"):
            continue
        (layer / entry.name).symlink_to(entry)
    return layer


def make_environment(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "flexsp_test_dependencies.pth").write_text(f"{dependency_layer(tmp)}\n")
    # Without PYTHONPATH: a checkout's flexsp on it (say with an egg-info) would count as
    # installed, and pip would skip the wheel.
    outside = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-index", "--no-cache-dir", str(wheel)],
                   check=True, env=outside)
    return venv


def hiding_prefix(tmp: Path) -> list[str]:
    """A command prefix that runs its command in a mount namespace where the Swift toolchain,
    the checkout's .build/ and the system's COIN-OR, LAPACK and Fortran libraries are gone;
    [] when no namespace can be made here."""
    targets = set()
    for folder in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/lib"):
        for path in Path(folder).glob("*.so*") if Path(folder).is_dir() else []:
            if path.name.startswith(HIDDEN_LIBRARIES) and path.exists():
                targets.add(str(path.resolve()))
    folders = {str(REPO_ROOT / ".build")}
    swift = shutil.which("swift")
    if swift:
        folders.add(str(Path(swift).resolve().parents[2]))  # <toolchain>/usr/bin/swift
    lines = ["set -e"]
    lines += [f"mount -t tmpfs none '{f}'" for f in sorted(folders) if Path(f).is_dir()]
    lines += [f"mount --bind /dev/null '{t}'" for t in sorted(targets)]
    lines.append('exec "$@"')
    script = tmp / "hide.sh"
    script.write_text("\n".join(lines) + "\n")
    for flags in (["-m"], ["-r", "-m"]):
        probe = ["unshare", *flags, "--propagation", "private", "bash", str(script), "true"]
        if shutil.which("unshare") and subprocess.run(probe, capture_output=True).returncode == 0:
            return ["unshare", *flags, "--propagation", "private", "bash", str(script)]
    return []


def write_run(run: Path) -> Path:
    """A 3-step job on 2 ranks: the tiny Llama on the bundled corpus, the tiny cost model."""
    run.mkdir()
    shutil.copy(REPO_ROOT / "data" / "corpus" / "python-docstrings.txt", run / "corpus.txt")
    (run / "cost-model.json").write_text(json.dumps(cost_model_for(2)))
    (run / "run.yaml").write_text(f"""
model: {{hf_config: {json.dumps(TINY_LLAMA)}}}
data: {{source: corpus, path: corpus.txt, batch_sequences: 8, max_seq_len: 256}}
train: {{steps: 3, seed: 0, lr: 3.0e-3, collective_timeout_s: 60}}
planner: {{cost_model: cost-model.json, timeout_s: 30, max_restarts: 0}}
""")
    (run / "lengths.txt").write_text("\n".join(str(n) for n in [64, 128, 300, 900, 2000] * 4))
    return run


def test_the_wheel_plans_and_trains_without_toolchain_checkout_or_coin_or(tmp_path):
    started = time.monotonic()
    wheel = fresh_wheel()
    venv = make_environment(tmp_path, wheel)
    run = write_run(tmp_path / "run")
    hide = hiding_prefix(tmp_path)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
           "LANG": "C.UTF-8"}
    assert not any("swift" in p for p in env["PATH"].split(":"))

    def clean(*command: str, **extra: str) -> subprocess.CompletedProcess:
        # `extra` reaches the command only, not the hiding's unshare, bash and mount.
        settings = [f"{key}={value}" for key, value in extra.items()]
        return subprocess.run([*hide, "env", *settings, *command], cwd=run, env=env,
                              capture_output=True, text=True, timeout=240)

    located = clean("python", "-c", "from flexsp.planner_binary import find_planner_binary as f;"
                    " print(f())")
    assert located.returncode == 0, located.stderr
    binary = located.stdout.strip()
    assert binary == str(Path(binary).resolve()) and Path(binary).is_relative_to(venv), binary

    # The planner's loads, from the dynamic loader: bundled files or the manylinux baseline only.
    traced = clean(binary, "presets", LD_DEBUG="libs")
    assert traced.returncode == 0, traced.stderr[-2000:]
    loaded = set(re.findall(r"calling init: (\S+)", traced.stderr))
    assert loaded and all(p.startswith(str(Path(binary).parent)) or SYSTEM_LIBRARY.search(p)
                          for p in loaded), sorted(loaded)
    assert any(p.endswith("/libgfortran.so.5") for p in loaded)  # the bundled copy, as checked

    # The console script, with CBC (milp) and CLP (the thorough bound) doing real work.
    planned = clean("flexsp", "plan", "--cost-model", "cost-model.json", "--lengths", "lengths.txt",
                    "--batch-size", "20", "--strategy", "milp", "--milp-time-limit", "20",
                    "--bound", "thorough", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["solver"]["name"] == "milp" and plan["world_size"] == 2
    assert sorted(s["length"] for s in plan["sequences"]) == sorted([64, 128, 300, 900, 2000] * 4)
    assert 0 < plan["lower_bound_ms"] <= plan["est_step_ms"]

    trained = clean("python", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    "-m", "flexsp.train", "--config", "run.yaml", "--metrics", "metrics.jsonl")
    assert trained.returncode == 0, trained.stderr[-4000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all(r["source"] == "planner" for r in train), [r["source"] for r in train]
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB; hidden by "
          f"{' '.join(hide[:2]) if hide else 'nothing (no mount namespace here)'}; "
          f"{time.monotonic() - started:.0f} s")


def test_flexsp_bin_then_the_bundled_planner_then_the_checkouts(tmp_path, monkeypatch):
    from flexsp import planner_binary
    paths = {}
    for name in ("chosen", "bundled", "checkout"):
        paths[name] = tmp_path / name
        paths[name].write_text("#!/bin/sh\n")
        paths[name].chmod(0o755)
    monkeypatch.setattr(planner_binary, "BUNDLED", paths["bundled"])
    monkeypatch.setattr(planner_binary, "CHECKOUT", paths["checkout"])
    monkeypatch.setenv("FLEXSP_BIN", str(paths["chosen"]))
    assert planner_binary.find_planner_binary() == str(paths["chosen"])
    monkeypatch.setenv("FLEXSP_BIN", str(tmp_path / "missing"))  # never replaced by another
    assert planner_binary.find_planner_binary() is None
    monkeypatch.delenv("FLEXSP_BIN")
    assert planner_binary.find_planner_binary() == str(paths["bundled"])
    paths["bundled"].chmod(0o644)  # not executable: not a planner
    assert planner_binary.find_planner_binary() == str(paths["checkout"])
    paths["checkout"].unlink()
    assert planner_binary.find_planner_binary() is None
    monkeypatch.setattr(sys, "argv", ["flexsp", "plan"])
    with pytest.raises(SystemExit, match=r"flexsp: no planner binary: neither .*bundled \(a wheel "
                                         r"from `make wheel`\) nor .*checkout \(`make build`\) exists"):
        planner_binary.main()
