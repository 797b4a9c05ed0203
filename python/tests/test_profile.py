"""The profiler: the fit recovers known constants, a profile of a tiny model on 2 gloo ranks is a
complete cost-model document with sane numbers, and the real planner plans with it."""

import json
import subprocess

import numpy as np
import pytest
import torch

from dist_harness import run_world
from flexsp.config import Config, DataConfig
from flexsp.cost_model import CostModel
from flexsp.model import ModelConfig, ModelShape, max_degree_for
from flexsp.plan import violations
from flexsp.planner_client import find_planner_binary
from flexsp.profile_document import ProfileOptions, profile
from flexsp.profile_fit import Sample, fit_bandwidth, fit_compute, nonnegative_lstsq
from flexsp.profile_measure import uniform_plan

# alpha1, alpha2, beta1 of the paper's gpt-7b preset, and a bandwidth per degree.
ALPHA1, ALPHA2, BETA1 = 5.128e-6, 0.1839576, 629.3563
A2A_MB_PER_TOKEN, BANDWIDTH = 2.0, {2: 119.5, 4: 104.1, 8: 96.5}


def synthetic_samples(noise: float, seed: int = 0) -> list[Sample]:
    """Timings the cost model would give, times (1 + noise * N(0, 1))."""
    rng = np.random.default_rng(seed)
    samples = []
    for degree in (1, 2, 4, 8):
        for length in (2048, 4096, 8192, 16384, 32768, 65536):
            for count in (1, 3):
                a2a = 0.0 if degree == 1 else A2A_MB_PER_TOKEN * length / (degree * BANDWIDTH[degree])
                ms = BETA1 + count * ((ALPHA1 * length ** 2 + ALPHA2 * length) / degree + a2a)
                samples.append(Sample(length, degree, ms * (1 + noise * rng.standard_normal()), count))
    return samples


def a2a_ms(length: int, degree: int) -> float:
    return 0.0 if degree == 1 else A2A_MB_PER_TOKEN * length / (degree * BANDWIDTH[degree])


def test_fit_recovers_the_constants_exactly_without_noise():
    fit = fit_compute(synthetic_samples(0.0), a2a_ms)
    assert fit.alpha1_ms == pytest.approx(ALPHA1, rel=1e-9)
    assert fit.alpha2_ms == pytest.approx(ALPHA2, rel=1e-9)
    assert fit.beta1_ms == pytest.approx(BETA1, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0)


def test_fit_recovers_the_constants_through_noise():
    # 2% noise on every timing: the coefficients that carry the time come back within a few
    # percent, and every prediction within the noise's range.
    samples = synthetic_samples(0.02, seed=3)
    fit = fit_compute(samples, a2a_ms)
    assert fit.alpha1_ms == pytest.approx(ALPHA1, rel=0.05)
    assert fit.alpha2_ms == pytest.approx(ALPHA2, rel=0.10)
    assert fit.beta1_ms == pytest.approx(BETA1, rel=0.10)
    assert fit.r2 > 0.99
    clean = synthetic_samples(0.0)
    worst = max(abs(fit.predict(s.length, s.degree, s.count) + s.count * a2a_ms(s.length, s.degree)
                    - s.ms) / s.ms for s in clean)
    assert worst < 0.03


def test_fit_never_returns_a_negative_coefficient():
    # A constant-time workload with noise: unconstrained least squares may give a negative
    # alpha; the planner rejects those.
    rng = np.random.default_rng(1)
    samples = [Sample(n, 1, 10.0 + rng.normal(0, 0.5)) for n in (100, 200, 400, 800) for _ in range(3)]
    fit = fit_compute(samples)
    assert min(fit.alpha1_ms, fit.alpha2_ms, fit.beta1_ms) >= 0
    assert fit.beta1_ms == pytest.approx(10.0, rel=0.1)


def test_nonnegative_lstsq_matches_lstsq_when_unconstrained():
    rng = np.random.default_rng(2)
    features = rng.random((20, 3))
    target = features @ np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(nonnegative_lstsq(features, target), [1.0, 2.0, 3.0], rtol=1e-9)


def test_bandwidth_comes_from_the_slope_not_the_latency():
    # 0.5 ms of latency per group on top of the volume term: the bandwidth is still exact.
    samples = [Sample(n, d, 0.5 + a2a_ms(n, d)) for d in (2, 4, 8) for n in (1024, 4096, 16384)]
    bandwidth = fit_bandwidth(samples, A2A_MB_PER_TOKEN)
    assert bandwidth == {str(d): pytest.approx(BANDWIDTH[d], rel=1e-9) for d in (2, 4, 8)}


def shape(heads: int, kv_heads: int) -> ModelShape:
    return ModelShape("llama", heads, kv_heads, head_dim=8, hidden=8 * heads, layers=2,
                      vocab_size=256)


def test_max_degree_follows_the_query_and_kv_heads_and_the_world():
    assert max_degree_for(shape(8, 2), 4) == 4      # degree 4 replicates each KV head twice
    assert max_degree_for(shape(8, 2), 16) == 8
    assert max_degree_for(shape(12, 4), 8) == 4    # 12 heads do not split over 8
    assert max_degree_for(shape(8, 2), 1) == 1
    assert max_degree_for(shape(12, 3), 8) == 1    # 3 KV heads neither split over 2 nor replicate


def test_uniform_plan_gives_every_group_the_asked_sequences():
    plan, batch = uniform_plan(8, degree=2, length=100, count=3)
    assert batch.lengths == [100] * 12
    groups = plan.micro_batches[0].groups
    assert [(g.degree, g.first_rank, len(g.sequence_ids)) for g in groups] == [
        (2, 0, 3), (2, 2, 3), (2, 4, 3), (2, 6, 3)]
    assert violations(plan) == []


TINY = Config(model=ModelConfig(hf_config={
                  "model_type": "llama", "vocab_size": 256, "hidden_size": 32,
                  "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 1,
                  "intermediate_size": 48, "max_position_embeddings": 1024}),
              data=DataConfig(max_seq_len=512))
# Up to 512 tokens: there attention (s^2) outweighs the fixed cost of a step (FSDP's
# collectives) even on a loaded machine, so the fit must see time grow with length.
OPTIONS = ProfileOptions(lengths=[32, 128, 256, 512], held_out=[192], a2a_lengths=[64, 256, 1024],
                         repeats=2, warmup=1, config_name="tiny-test")


def profile_rank(rank: int, world_size: int) -> tuple[dict, dict]:
    return profile(TINY, OPTIONS, torch.device("cpu"))


@pytest.fixture(scope="module")
def profiled() -> tuple[dict, dict]:
    results = run_world(2, profile_rank, timeout_s=120)
    assert results[0][0] == results[1][0]  # every rank returns the same document
    return results[0]


def test_profile_writes_every_key_with_sane_values(profiled):
    document, report = profiled
    assert set(document) == set(CostModel.from_document(document).to_document())
    assert document["version"] == 1 and document["name"] == "tiny-test@cpu-gloo-2x"
    assert document["world_size"] == 2 and document["gpus_per_node"] == 2
    assert document["max_degree"] == 2
    assert list(document["a2a_bandwidth_gbps"]) == ["2"]
    assert document["a2a_bandwidth_gbps"]["2"] > 0
    for key in ("alpha1_ms", "alpha2_ms", "beta1_ms"):
        assert document[key] >= 0
    # Something of the time must grow with the length (this model is not free).
    assert document["alpha1_ms"] + document["alpha2_ms"] > 0
    # hidden 32: each token keeps at least its embedding and the logits (256 floats) for backward.
    assert 256 * 4 / 2 ** 20 < document["activation_mb_per_token"] < 1.0
    # 1 layer of 32 hidden: about 24K parameters x 16 bytes / 2 ranks + the largest unit.
    assert 0.05 < document["model_states_mb"] < 2.0
    assert document["memory_budget_mb"] > document["model_states_mb"]
    capacity = ((document["memory_budget_mb"] - document["model_states_mb"])
                / document["activation_mb_per_token"])
    assert capacity == pytest.approx(1.5 * TINY.data.max_seq_len, rel=1e-3)
    assert -1.0 <= report["r2"] <= 1.0
    assert report["held_out_lengths"] == [192]
    assert report["held_out_max_relative_error"] >= 0
    assert {(s["degree"], s["length"]) for s in report["compute_samples"]} == {
        (d, n) for d in (1, 2) for n in (32, 128, 192, 256, 512)}


def test_the_planner_accepts_the_profile(profiled, tmp_path):
    binary = find_planner_binary()
    if binary is None:
        pytest.skip("the flexsp binary is not built (set FLEXSP_BIN or run `make build`)")
    document, _ = profiled
    cost_model = tmp_path / "costmodel.json"
    cost_model.write_text(json.dumps(document))
    lengths = tmp_path / "lengths.txt"
    lengths.write_text("\n".join(str(n) for n in (512, 100, 64, 300, 17, 90, 5, 44)) + "\n")
    result = subprocess.run([binary, "plan", "--cost-model", str(cost_model), "--lengths",
                             str(lengths), "--batch-size", "8", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["world_size"] == 2
    assert plan["cost_model"]["name"] == document["name"]


def test_profile_check_has_shapes_for_every_world():
    from flexsp.profile_check import parse_shapes, shapes_for
    assert list(shapes_for(2, 2)) == ["<1,1>", "<2>"]
    assert list(shapes_for(4, 4)) == ["<1,1,1,1>", "<2,2>", "<4>", "<2,1,1>"]
    assert list(shapes_for(4, 2)) == ["<1,1,1,1>", "<2,2>", "<2,1,1>"]
    assert list(shapes_for(1, 1)) == ["<1>"]
    assert parse_shapes("<2,1,1> <4>") == parse_shapes("<2,1,1>,<4>") == [[2, 1, 1], [4]]
    with pytest.raises(SystemExit, match="give shapes as"):
        parse_shapes("2,1,1")
