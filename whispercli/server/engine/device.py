"""Which device the engine decodes on, and how: chosen once at server start.

``auto`` picks CUDA when CTranslate2 sees a device *and* a short encode succeeds in a child
process (CUDA library errors show only at the first encode, and a cuDNN mismatch aborts the
whole process); otherwise the CPU with int8, logged with the reason. An explicit ``cuda`` that
cannot work is a :class:`DeviceError` at start. The plans differ: on a CPU the engine loads
single-thread replicas (:func:`layout`); on CUDA one model and batches of
batched pipeline, ``CUDA_BATCH_SIZE`` chunks per call.

The ``gpu`` extra installs the CUDA runtime libraries from PyPI (``nvidia-cublas-cu12``,
``nvidia-cudnn-cu12``); :func:`loader_path_env` puts their ``lib`` folders on
``LD_LIBRARY_PATH`` for the processes started after it (the probe and the engine child), since
the loader reads it only when a process starts.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from whispercli.extras import GPU, pip_command

DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "float16", "float32")
CUDA_BATCH_SIZE = 16
"""faster-whisper's documented batch size for its batched pipeline on a GPU (not measured here:
bench/gpu.sh measures 8, 16 and 32 where a GPU exists)."""
CPU_BATCH_SIZE = 1
"""Chunks a CPU replica encodes and decodes in one call: a single-thread replica gained
nothing from batches of 2, 4 or 8 on the bench (bench/RESULTS.md); the scheduler still
spreads every job's chunks over the replicas."""
MAX_REPLICAS = 4
"""Past this many replicas the cores go into threads per replica (each replica keeps its own
encoder activations, and the batcher reads ahead for each)."""
WIDE_COPY_SHARE = 16
"""The sequential path gets its own copy of the model (:func:`wide_threads`) only when the
model's file is at most this fraction of the machine's memory: a second tiny.en costs the
engine about 110 MiB, a second large-v3 would cost gigabytes."""
PROBE_TIMEOUT = 180.0
_NVIDIA_LIBS = ("cublas", "cudnn")
_PROBE = """
import sys
import ctranslate2
import numpy as np
if ctranslate2.get_cuda_device_count() == 0:
    print("CTranslate2 sees no CUDA device", file=sys.stderr)
    sys.exit(3)
model = ctranslate2.models.Whisper(sys.argv[1], device="cuda", compute_type=sys.argv[2])
model.encode(ctranslate2.StorageView.from_array(np.zeros((1, 80, 3000), np.float32)))
"""


class DeviceError(RuntimeError):
    """``--device cuda`` was asked for and cannot work here; the message says why."""


@dataclass(frozen=True)
class DevicePlan:
    device: str
    compute_type: str
    replicas: int | None
    """Model replicas; ``None`` = one single-thread replica per core (:func:`layout`)."""
    batch_size: int | None
    """Chunks per encoder/decoder call; ``None`` = the device's rule (:func:`layout`)."""
    reason: str


@dataclass(frozen=True)
class Layout:
    """How a plan uses the machine: model replicas, threads each, chunks per call."""

    replicas: int
    threads: int
    batch_size: int

    def describe(self) -> str:
        return (
            f"{self.replicas} replica(s) x {self.threads} thread(s), "
            f"{self.batch_size} chunk(s) per call"
        )


def layout(plan: DevicePlan, cpu_threads: int = 0, cores: int | None = None) -> Layout:
    """The layout of ``plan`` on this machine (``cpu_threads``: the thread budget, 0 = every
    core the process may use).

    The rule, CPU: Whisper decodes one token at a time through matrix-vector products as wide
    as the model (384 for tiny), too little work to split between threads (one thread decoded
    a chunk faster than two on the 2-core machines this was measured on), so each core gets
    its own single-thread replica decoding its own chunks, up to ``MAX_REPLICAS``; past that
    the cores go into threads per replica. CUDA: one replica, ``CUDA_BATCH_SIZE`` chunks a call.
    """
    if plan.device == "cuda":
        return Layout(plan.replicas or 1, max(1, cpu_threads), plan.batch_size or CUDA_BATCH_SIZE)
    total = cpu_threads or cores or len(os.sched_getaffinity(0)) or 1
    replicas = plan.replicas or min(total, MAX_REPLICAS)
    return Layout(replicas, max(1, total // replicas), plan.batch_size or CPU_BATCH_SIZE)


def wide_threads(plan: DevicePlan, shape: Layout, model_bytes: int, memory_bytes: int) -> int:
    """Threads of the copy of the model the sequential path decodes on, or 0 for no copy.

    Whisper's own algorithm decodes one window after another: on single-thread replicas a
    lone sequential job keeps one core busy and leaves the others idle (1.3x slower than
    faster-whisper's sequential decoding on two threads here, bench/RESULTS.md). So a CPU
    plan with several replicas gets one more copy with every thread, if the model is small
    next to the machine's memory (``WIDE_COPY_SHARE``).
    """
    if plan.device != "cpu" or shape.replicas < 2:
        return 0
    if model_bytes * WIDE_COPY_SHARE > memory_bytes:
        return 0
    return shape.replicas * shape.threads


def memory_bytes() -> int:
    """The machine's physical memory."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


IDLE_SAMPLE_SECONDS = 0.05
"""How long :func:`idle_cores` watches the machine (5 ticks of the kernel's clock per core)."""


def _proc_stat() -> str:
    return Path("/proc/stat").read_text(encoding="ascii")


def _cpu_times(stat: str) -> tuple[int, int, int]:
    """(all jiffies, idle jiffies, cores) from /proc/stat's text."""
    lines = stat.splitlines()
    fields = [int(f) for f in lines[0].split()[1:9]]  # user nice system idle iowait irq ...
    cores = sum(1 for line in lines[1:] if line.startswith("cpu"))
    return sum(fields), fields[3] + fields[4], cores


def idle_cores(
    interval: float = IDLE_SAMPLE_SECONDS, read: Callable[[], str] = _proc_stat
) -> float:
    """How many cores sat idle over the next ``interval`` seconds (0.0 where the kernel does
    not say: not Linux).

    The sequential path's copy with every thread (:func:`wide_threads`) is only worth it on
    cores nobody else wants: a thread of it that the kernel takes away stalls the other at
    every step. Measured here: a 3-minute ``accurate`` job took 8 s alone, 14 s beside two
    busy processes (9.5 s on one single-thread replica), and 52-75 s in a test run with
    three pytest workers (25 s on a replica).
    """
    try:
        total0, idle0, cores = _cpu_times(read())
        time.sleep(interval)
        total1, idle1, _ = _cpu_times(read())
    except (OSError, ValueError, IndexError):
        return 0.0
    spent = total1 - total0
    return cores * (idle1 - idle0) / spent if spent > 0 else 0.0


def cpu_plan(compute_type: str, reason: str) -> DevicePlan:
    return DevicePlan("cpu", "int8" if compute_type == "auto" else compute_type, None, None, reason)


def cuda_plan(compute_type: str, reason: str) -> DevicePlan:
    chosen = "float16" if compute_type == "auto" else compute_type
    return DevicePlan("cuda", chosen, 1, CUDA_BATCH_SIZE, reason)


def nvidia_lib_dirs() -> list[str]:
    """The ``lib`` folders of the pip CUDA libraries (``nvidia/cublas/lib``...), if installed."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for root in spec.submodule_search_locations:
        for name in _NVIDIA_LIBS:
            lib = Path(root) / name / "lib"
            if lib.is_dir():
                dirs.append(str(lib))
    return dirs


def loader_path_env(env: Mapping[str, str], lib_dirs: list[str]) -> dict[str, str]:
    """``env`` with ``lib_dirs`` in front of ``LD_LIBRARY_PATH`` (each once)."""
    current = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    merged = list(dict.fromkeys([*lib_dirs, *current]))
    out = dict(env)
    if merged:
        out["LD_LIBRARY_PATH"] = os.pathsep.join(merged)
    return out


def cuda_device_count() -> int:
    try:
        import ctranslate2
    except ImportError:
        return 0
    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken driver: no usable device
        return 0


def probe_cuda(model_path: str, compute_type: str) -> str | None:
    """Encode 30 s of silence on CUDA in a child process; ``None`` if it worked, else why."""
    env = loader_path_env(os.environ, nvidia_lib_dirs())
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, model_path, compute_type],
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"the CUDA probe did not finish within {PROBE_TIMEOUT:.0f} s"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return f"the CUDA probe was killed by {name} (often a cuDNN/cuBLAS version mismatch)"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"the CUDA probe exited with {done.returncode}"


def choose(
    device: str,
    compute_type: str,
    probe_model: str | None,
    *,
    count: Callable[[], int] = cuda_device_count,
    probe: Callable[[str, str], str | None] = probe_cuda,
) -> DevicePlan:
    """The plan for ``--device``/``--compute-type``; raises :class:`DeviceError` for a ``cuda``
    that cannot work. ``probe_model`` is the model folder the probe encodes with."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use {', '.join(DEVICES)}")
    if compute_type not in COMPUTE_TYPES:
        raise ValueError(f"unknown compute type {compute_type!r}; use {', '.join(COMPUTE_TYPES)}")
    if device == "cpu":
        return cpu_plan(compute_type, "--device cpu")
    cuda_type = "float16" if compute_type == "auto" else compute_type
    devices = count()
    if devices == 0:
        why = "CTranslate2 sees no CUDA device"
    elif probe_model is None:
        why = "no installed model to probe the CUDA device with"
    else:
        failure = probe(probe_model, cuda_type)
        if failure is None:
            return cuda_plan(compute_type, f"{devices} CUDA device(s), probe encode ok")
        why = f"CUDA probe failed: {failure}"
    if device == "cuda":
        raise DeviceError(
            f"--device cuda cannot work here: {why}; install the CUDA libraries (the gpu "
            f"extra) with `{pip_command(GPU)}` (an NVIDIA driver is needed), or use "
            "--device auto or cpu"
        )
    return cpu_plan(compute_type, why)
