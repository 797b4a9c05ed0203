"""Hostile input to the entry points, run as a user runs them (`python -m ...`, one process per
rank, see hostile_harness.py): bad configs, corpora, checkpoints, outputs, full disks, a Ctrl-C,
a rank that stops answering. Each case expects what a user would: exit non-zero, the last line of
stderr names the problem and where (file:line, key, record, rank), no Python traceback, nothing
left behind that a later run would trip over, no hang; and, where it can be known then, the
refusal comes before the process group forms (no "N ranks (gloo)" line)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, TINY_LLAMA, cost_model_for
from hostile_harness import Outcome, Runner

TOKENIZER = REPO_ROOT / "data" / "tokenizer"
CORPUS = REPO_ROOT / "data" / "corpus" / "python-docstrings.txt"
FORMED = re.compile(r"\d+ ranks \(gloo\)")  # train's first line once the process group exists


@pytest.fixture(scope="module")
def runner():
    runner = Runner()
    yield runner
    runner.close()


def last_line(outcome: Outcome) -> str:
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def record(outcome: Outcome) -> None:
    """With FLEXSP_HOSTILE_RECORD=FILE, appends what each case did (for before/after tallies)."""
    if os.environ.get("FLEXSP_HOSTILE_RECORD"):
        with open(os.environ["FLEXSP_HOSTILE_RECORD"], "a") as f:
            f.write(json.dumps({"case": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                                "exit": outcome.returncode,
                                "traceback": "Traceback" in outcome.stderr,
                                "last": last_line(outcome)[:300]}) + "\n")


def refused(outcome: Outcome, pattern: str, *, early: bool = True) -> None:
    """Exit non-zero with `pattern` on the last line of stderr and no traceback; `early`: before
    the process group formed."""
    record(outcome)
    assert not outcome.timed_out, f"hang\n{outcome}"
    assert outcome.returncode != 0, f"exit 0 where an error was due\n{outcome}"
    assert "Traceback" not in outcome.stderr, outcome
    assert re.search(pattern, last_line(outcome)), f"expected /{pattern}/ last\n{outcome}"
    if early:
        assert not FORMED.search(outcome.stderr), f"refused only after the group formed\n{outcome}"


def succeeded(outcome: Outcome) -> None:
    record(outcome)
    assert outcome.returncode == 0 and "Traceback" not in outcome.stderr, outcome


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".partial", ".tmp")))


def strict_json_lines(path: Path) -> list[dict]:
    """Every line parses as JSON proper (no NaN/Infinity)."""
    def refuse(constant):
        raise AssertionError(f"{path}: {constant} in a JSON line")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory):
    """mount(size, ro=False) -> a fresh tmpfs directory of that many bytes, or a skip when the
    machine does not let the tests mount (not root, or a container without the capability)."""
    base = tmp_path_factory.mktemp("mounts")
    mounted = []

    def mount(size: int, ro: bool = False) -> Path:
        target = base / f"m{len(mounted)}"
        target.mkdir()
        options = f"size={size}" + (",ro" if ro else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


# ---- preparation -------------------------------------------------------------------------

def prepare_args(inputs, out, *extra) -> list:
    return ["--tokenizer", TOKENIZER, "--input", *inputs, "--out", out, "--quiet", *extra]


@pytest.fixture
def docs(tmp_path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": f"document {i}: " + "words " * i}) + "\n"
                            for i in range(40)))
    return path


def test_prepare_output_parent_is_a_file(runner, tmp_path, docs):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "out"
    refused(runner.run("prepare", prepare_args([docs], out)), r"afile/out(\.partial)?: .*"
            r"(not a directory|is a file)")


def test_prepare_stale_partial_that_is_a_file(runner, tmp_path, docs):
    (tmp_path / "out.partial").write_text("someone's file")
    refused(runner.run("prepare", prepare_args([docs], tmp_path / "out")),
            r"out\.partial: .*not a directory")
    assert (tmp_path / "out.partial").read_text() == "someone's file"


@pytest.mark.parametrize("kind", ["file", "symlink-to-directory", "dangling-symlink"])
def test_prepare_overwrite_onto_something_else_than_a_corpus(runner, tmp_path, docs, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("precious")
        pattern = r"out: .*not a prepared corpus"
    else:
        (tmp_path / "target").mkdir()
        out.symlink_to(tmp_path / ("target" if kind == "symlink-to-directory" else "nowhere"))
        pattern = r"out: .*symbolic link"
    refused(runner.run("prepare", prepare_args([docs], out, "--overwrite")), pattern)
    assert leftovers(tmp_path) == []
    assert out.is_symlink() or out.read_text() == "precious"


def test_prepare_read_only_output(runner, tmp_path, docs, tmpfs):
    read_only = tmpfs(1 << 20, ro=True)
    refused(runner.run("prepare", prepare_args([docs], read_only / "out")),
            r"out(\.partial)?: .*(read-only file system|permission denied)")


def test_prepare_disk_full_removes_the_partial_output(runner, tmp_path, tmpfs):
    small = tmpfs(64 << 10)
    big = tmp_path / "big.txt"
    big.write_text(CORPUS.read_text() * 2)  # ~250k tokens x 2 bytes: far over 64 KiB
    refused(runner.run("prepare", prepare_args([big], small / "out")),
            r"out: no space left on device")
    assert list(small.iterdir()) == []


@pytest.mark.parametrize("name, content, pattern", [
    ("deep.jsonl", '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
     r"deep\.jsonl:1: .*nest"),
    ("bigint.jsonl", '{"text": "a", "n": ' + "9" * 5000 + "}\n",
     r"bigint\.jsonl:1: .*(digits|integer)"),
    ("surrogate.jsonl", '{"text": "fine"}\n{"text": "bad \\ud800 half"}\n',
     r"surrogate\.jsonl:2: .*surrogate"),
])
def test_prepare_hostile_json_lines(runner, tmp_path, name, content, pattern):
    (tmp_path / name).write_text(content)
    refused(runner.run("prepare", prepare_args([tmp_path / name], tmp_path / "out")), pattern)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_prepare_eval_fraction_holds_out_that_fraction(runner, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(8)))
    out = tmp_path / "out"
    succeeded(runner.run("prepare", prepare_args([path], out, "--eval-fraction", "0.75")))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sequences"] == {"train": 2, "eval": 6}
    assert len((out / "lengths.txt").read_text().split()) == 2


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_prepare_input_that_is_not_a_file(runner, tmp_path, kind):
    path = tmp_path / "input"
    path.mkdir() if kind == "directory" else os.mkfifo(path)
    refused(runner.run("prepare", prepare_args([path], tmp_path / "out"), timeout_s=30),
            rf"input: .*{'a directory' if kind == 'directory' else 'FIFO'}")


def test_prepare_ctrl_c_says_interrupted_and_leaves_nothing(runner, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text(CORPUS.read_text() * 12)  # ~3 M tokens: seconds of work to interrupt
    out = tmp_path / "out"
    outcome = runner.run("prepare", prepare_args([big], out), signal_rank=0,
                         signal_when=(tmp_path / "out.partial", ""))
    refused(outcome, r"interrupted")
    assert not out.exists() and leftovers(tmp_path) == []


# ---- training: configs -------------------------------------------------------------------

def base_config(tmp_path: Path, world_size: int = 1) -> dict:
    cost_model = tmp_path / "cost-model.json"
    cost_model.write_text(json.dumps(cost_model_for(world_size)))
    return {
        "model": {"hf_config": dict(TINY_LLAMA)},
        "data": {"source": "corpus", "path": str(CORPUS), "batch_sequences": 4,
                 "max_seq_len": 64},
        "train": {"steps": 2, "seed": 0, "lr": 3.0e-3, "collective_timeout_s": 30},
        "planner": {"cost_model": str(cost_model), "timeout_s": 10, "max_restarts": 0},
    }


def write_yaml(tmp_path: Path, config: dict | str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def train(runner: Runner, config: Path, *extra, world_size: int = 1, **options):
    outcome = runner.run("train", ["--config", config, *extra], world_size=world_size,
                         timeout_s=options.pop("timeout_s", 90), **options)
    return outcome[0] if world_size == 1 else outcome


@pytest.mark.parametrize("text, pattern", [
    ("train: {steps: 3\nmodel: {}\n", r"bad\.yaml:\d+(:\d+)?: not valid YAML"),
    ("42\n", r"bad\.yaml: .*mapping.*(int|42)"),
    ("- model\n- train\n", r"bad\.yaml: .*mapping.*list"),
])
def test_config_that_is_not_a_mapping_of_sections(runner, tmp_path, text, pattern):
    refused(train(runner, write_yaml(tmp_path, text)), pattern)


BAD_VALUES = [  # (section, key, value, what the last line must say)
    ("train", None, 5, r"bad\.yaml:\d+: train: .*mapping"),
    ("train", "betas", 0.9, r"train\.betas: .*(two|2|pair).*0\.9"),
    ("train", "stpes", 3, r"train\.stpes: unknown key; did you mean 'steps'\?"),
    ("train", "steps", "ten", r"train\.steps: .*integer.*'ten'"),
    ("train", "steps", 1.5, r"train\.steps: .*integer.*1\.5"),
    ("train", "steps", 0, r"train\.steps: .*at least 1"),
    ("train", "steps", -1, r"train\.steps: .*at least 1"),
    ("train", "lr", "x", r"train\.lr: .*number.*'x'"),
    ("train", "lr", float("nan"), r"train\.lr: .*finite"),
    ("train", "lr", float("inf"), r"train\.lr: .*finite"),
    ("train", "lr", -1, r"train\.lr: .*> 0"),
    ("data", "batch_sequences", 0, r"data\.batch_sequences: .*at least 1"),
    ("data", "batch_sequences", -1, r"data\.batch_sequences: .*at least 1"),
    ("data", "batch_sequences", "x", r"data\.batch_sequences: .*integer.*'x'"),
    ("train", "seed", "x", r"train\.seed: .*integer.*'x'"),
    ("train", "dtype", "bogus", r"train\.dtype: .*'bogus'.*float32"),
    ("train", "collective_timeout_s", 0, r"train\.collective_timeout_s: .*> 0"),
    ("train", "lr_schedule", "bogus", r"train\.lr_schedule: .*'bogus'.*cosine"),
    ("train", "max_grad_norm", -1, r"train\.max_grad_norm: .*> 0"),
    ("planner", "strategy", "bogus", r"planner\.strategy: .*'bogus'.*flexsp"),
]


@pytest.mark.parametrize("section, key, value, pattern", BAD_VALUES,
                         ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD_VALUES])
def test_config_values_are_checked_at_load(runner, tmp_path, section, key, value, pattern):
    config = base_config(tmp_path)
    if key is None:
        config[section] = value
    else:
        config.setdefault(section, {})[key] = value
    refused(train(runner, write_yaml(tmp_path, config)), pattern)


def test_command_line_overrides_are_checked_too(runner, tmp_path):
    refused(train(runner, write_yaml(tmp_path, base_config(tmp_path)), "--steps", "0"),
            r"(--steps|train\.steps): .*at least 1")


@pytest.mark.parametrize("key, make, pattern", [
    ("train.checkpoint_dir", lambda d: d / "afile" / "ckpt",
     r"train\.checkpoint_dir: .*afile/ckpt.*(not a directory|file)"),
    ("train.metrics_file", lambda d: d, r"train\.metrics_file: .*(is a directory)"),
    ("parallel.export_dir", lambda d: d / "afile", r"parallel\.export_dir: .*afile.*(file|not a "
                                                   r"directory)"),
])
def test_unusable_outputs_are_refused_at_start(runner, tmp_path, key, make, pattern):
    (tmp_path / "afile").write_text("x")
    config = base_config(tmp_path)
    section, name = key.split(".")
    config.setdefault(section, {})[name] = str(make(tmp_path))
    if name == "checkpoint_dir":
        config["train"]["checkpoint_every"] = 1
    refused(train(runner, write_yaml(tmp_path, config)), pattern)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    from flexsp.prepare import prepare
    base = tmp_path_factory.mktemp("corpus")
    (base / "docs.jsonl").write_text("".join(json.dumps({"text": f"def f{i}(x):\n    return x"})
                                             + "\n" for i in range(64)))
    prepare(TOKENIZER, [base / "docs.jsonl"], base / "prepared", max_seq_len=64,
            eval_fraction=0, progress=False)
    return base / "prepared"


@pytest.mark.parametrize("damage, pattern", [
    (lambda meta: meta.pop("dtype"), r"meta\.json: .*'dtype'"),
    (lambda meta: meta.update(dtype="float99"), r"meta\.json: .*dtype.*'float99'"),
    (lambda meta: meta.update(shards="none"), r"meta\.json: .*shards"),
])
def test_damaged_corpus_metadata(runner, tmp_path, small_corpus, damage, pattern):
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    meta = json.loads((corpus / "meta.json").read_text())
    damage(meta)
    (corpus / "meta.json").write_text(json.dumps(meta))
    config = base_config(tmp_path)
    config["model"]["hf_config"]["vocab_size"] = 4096
    config["data"] = {"source": "tokens", "path": str(corpus), "batch_sequences": 4,
                      "max_seq_len": 64}
    refused(train(runner, write_yaml(tmp_path, config)), pattern)


# ---- training: runs ----------------------------------------------------------------------

def test_a_non_finite_loss_stops_with_the_step_and_writes_no_nan(runner, tmp_path):
    config = base_config(tmp_path)
    config["train"].update(lr=1e30, steps=3, checkpoint_dir=str(tmp_path / "ckpt"),
                           checkpoint_every=1, metrics_file=str(tmp_path / "m.jsonl"))
    outcome = train(runner, write_yaml(tmp_path, config))
    refused(outcome, r"step 2: .*loss .*not finite", early=False)
    assert [r["step"] for r in strict_json_lines(tmp_path / "m.jsonl")] == [1]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-000001"]


def test_a_non_finite_loss_can_skip_the_step(runner, tmp_path):
    config = base_config(tmp_path)
    config["train"].update(lr=1e30, steps=3, nonfinite_loss="skip",
                           metrics_file=str(tmp_path / "m.jsonl"))
    outcome = train(runner, write_yaml(tmp_path, config))
    succeeded(outcome)
    records = strict_json_lines(tmp_path / "m.jsonl")
    assert [(r["step"], r.get("skipped", False)) for r in records] == [
        (1, False), (2, True), (3, True)]
    assert records[1]["loss"] is None
    assert re.search(r"skipped 2 steps", outcome.stdout + outcome.stderr)


@pytest.fixture(scope="module")
def checkpoints(runner, tmp_path_factory) -> tuple[Path, Path]:
    """A config and a directory with the complete checkpoints after steps 1 and 2."""
    base = tmp_path_factory.mktemp("checkpoints")
    config = base_config(base)
    config["train"].update(checkpoint_dir=str(base / "ckpt"), checkpoint_every=1)
    path = write_yaml(base, config, "run.yaml")
    succeeded(train(runner, path))
    assert sorted(p.name for p in (base / "ckpt").iterdir()) == ["step-000001", "step-000002"]
    return path, base / "ckpt"


def shard_of(step_dir: Path) -> Path:
    return sorted(step_dir.glob("*.distcp"))[0]


DAMAGES = {
    "truncated-shard": lambda d: os.truncate(shard_of(d), shard_of(d).stat().st_size // 2),
    "deleted-shard": lambda d: shard_of(d).unlink(),
    "corrupt-metadata": lambda d: (d / ".metadata").write_bytes(
        bytes(b ^ 0x5A for b in (d / ".metadata").read_bytes())),
    "no-data-json": lambda d: (d / "data.json").unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_resume_passes_over_a_damaged_newest_checkpoint(runner, tmp_path, checkpoints, damage):
    config, original = checkpoints
    ckpt = tmp_path / "ckpt"
    shutil.copytree(original, ckpt)
    DAMAGES[damage](ckpt / "step-000002")
    outcome = train(runner, config, "--checkpoint-dir", ckpt, "--resume", "--steps", "3")
    succeeded(outcome)
    assert re.search(r"step-000002.* damaged.*resum\w* from .*step-000001", outcome.stderr), \
        outcome


def test_resume_refuses_a_checkpoint_of_another_model(runner, tmp_path, checkpoints):
    config, original = checkpoints
    other = base_config(tmp_path)
    other["model"]["hf_config"]["hidden_size"] = 64
    refused(train(runner, write_yaml(tmp_path, other), "--checkpoint-dir", original, "--resume",
                  "--steps", "3"), r"step-000002: .*(another model|does not fit)")


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(runner, tmp_path, checkpoints,
                                                             tmpfs):
    config, original = checkpoints
    size = sum(p.stat().st_size for p in (original / "step-000001").iterdir())
    disk = tmpfs(int(size * 1.5) + (8 << 10))
    outcome = train(runner, config, "--checkpoint-dir", disk / "ckpt")
    refused(outcome, r"no space left on device", early=False)
    assert sorted(p.name for p in (disk / "ckpt").iterdir()) == ["step-000001"]
    from flexsp.checkpoint import latest_checkpoint
    assert latest_checkpoint(disk / "ckpt") == disk / "ckpt" / "step-000001"


# ---- export ------------------------------------------------------------------------------

def test_export_refusals(runner, tmp_path, checkpoints):
    config, original = checkpoints
    (tmp_path / "afile").write_text("x")
    step = original / "step-000002"
    refused(runner.run("export", ["--config", config, "--checkpoint", step,
                                  "--out", tmp_path / "afile"]), r"afile: .*(file|not a dir)")
    damaged = tmp_path / "damaged"
    shutil.copytree(step, damaged)
    os.truncate(shard_of(damaged), 10)
    refused(runner.run("export", ["--config", config, "--checkpoint", damaged,
                                  "--out", tmp_path / "out"]), r"damaged: .*(damaged|truncated)")
    other = base_config(tmp_path)
    other["model"]["hf_config"]["hidden_size"] = 64
    refused(runner.run("export", ["--config", write_yaml(tmp_path, other), "--checkpoint", step,
                                  "--out", tmp_path / "out"]), r"(another model|does not fit)")
    assert not (tmp_path / "out").exists()


# ---- a peer that stops answering ---------------------------------------------------------

@pytest.mark.parametrize("how", [signal.SIGSTOP, signal.SIGKILL], ids=["stopped", "killed"])
def test_survivors_of_a_stopped_rank_name_it_and_the_timeout(runner, tmp_path, how):
    config = base_config(tmp_path, world_size=2)
    config["train"].update(steps=50, collective_timeout_s=4,
                           metrics_file=str(tmp_path / "m.jsonl"))
    ranks = train(runner, write_yaml(tmp_path, config), world_size=2, timeout_s=90,
                  signal_rank=1, signal_number=how,
                  signal_when=(tmp_path / "m.jsonl", '"step": 2'))
    survivor = ranks[0]
    refused(survivor, r"rank 1 .*(stopped answering|did not answer).*4 s", early=False)
    assert survivor.seconds < 60, survivor
