"""The engine's plan from the machine (engine.device.layout) and its encoder windows."""

from __future__ import annotations

import pytest

from whispercli.server.engine.decode import WINDOW_FRAMES, window_frames
from whispercli.server.engine.device import (
    CPU_BATCH_SIZE,
    CUDA_BATCH_SIZE,
    MAX_REPLICAS,
    cpu_plan,
    cuda_plan,
    layout,
)


@pytest.mark.parametrize(
    ("cores", "replicas", "threads"),
    [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, MAX_REPLICAS, 8 // MAX_REPLICAS), (16, 4, 4)],
)
def test_cpu_gets_single_thread_replicas_first_then_threads(
    cores: int, replicas: int, threads: int
) -> None:
    got = layout(cpu_plan("int8", "test"), 0, cores=cores)
    assert (got.replicas, got.threads, got.batch_size) == (replicas, threads, CPU_BATCH_SIZE)


def test_a_thread_budget_wins_over_the_core_count() -> None:
    assert layout(cpu_plan("int8", "test"), 1, cores=16).replicas == 1


def test_cuda_is_one_replica_with_big_batches() -> None:
    got = layout(cuda_plan("auto", "test"), 0, cores=16)
    assert (got.replicas, got.batch_size) == (1, CUDA_BATCH_SIZE)
    assert "replica" in got.describe()


def test_windows_are_full_unless_padded_and_never_under_ten_seconds() -> None:
    assert window_frames(3.0, None) == WINDOW_FRAMES
    assert window_frames(1.0, 5.0) == 1000  # the 10 s floor
    assert window_frames(12.2, 5.0) == 1800  # 12.2 + 5 -> 18 s
    assert window_frames(29.0, 5.0) == WINDOW_FRAMES
