"""Throughput figures: FLOPs counted by hand, attention per sequence, MFU's peak."""

import pytest
import torch

from conftest import tiny_model
from flexsp.metrics import StepMeter, linear_weights, peak_tflops, step_flops, throughput
from flexsp.model import ModelShape

SHAPE = ModelShape("llama", heads=8, kv_heads=2, head_dim=4, hidden=32, layers=2, vocab_size=256)


def test_linear_weights_of_the_tiny_llama():
    # Per layer q, o: 32x32; k, v: 32x8; gate, up, down: 32x48; plus the output layer 32x256.
    per_layer = 2 * 32 * 32 + 2 * 32 * 8 + 3 * 32 * 48
    assert linear_weights(tiny_model()) == 2 * per_layer + 32 * 256


def test_attention_is_counted_per_sequence_not_per_stream():
    dense = 6 * 1000 * 300
    assert step_flops(SHAPE, 1000, [100, 200]) == dense + 6 * 2 * 8 * 4 * (100 ** 2 + 200 ** 2)
    # One sequence of 300 would count the 2 * 100 * 200 cross terms that no kernel computes.
    assert step_flops(SHAPE, 1000, [300]) - step_flops(SHAPE, 1000, [100, 200]) == \
        6 * 2 * 8 * 4 * 2 * 100 * 200


def test_throughput_and_mfu():
    figures = throughput(SHAPE, 1000, [100, 200], step_ms=500.0, world_size=4, peak=2e-6)
    assert figures["tokens_per_s"] == 600.0 and figures["tokens_per_s_per_rank"] == 150.0
    assert figures["tflops_per_rank"] == pytest.approx(step_flops(SHAPE, 1000, [100, 200]) / 0.5 / 4 / 1e12)
    assert figures["mfu"] == pytest.approx(figures["tflops_per_rank"] / 2e-6)
    assert throughput(SHAPE, 1000, [10], 1.0, 1, None)["mfu"] is None


def test_peak_is_the_configured_value_or_unknown_on_cpu():
    assert peak_tflops(torch.device("cpu"), torch.bfloat16, 1.5) == 1.5
    assert peak_tflops(torch.device("cpu"), torch.bfloat16, None) is None


def test_the_step_meter_on_cpu_has_no_memory_figure():
    meter = StepMeter(SHAPE, 1000, 4, torch.device("cpu"), None)
    figures = meter.figures([100, 200], 500.0)
    assert figures["peak_memory_gb"] is None and figures["mfu"] is None
    assert figures["tokens_per_s_per_rank"] == 150.0
