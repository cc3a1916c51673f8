"""Device choice and per-device plans (whispercli.server.engine.device), with fake CUDA probes."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from whispercli.server.engine import device
from whispercli.server.engine.device import DeviceError, choose


def fake(count: int, failure: str | None = None) -> dict[str, object]:
    calls: list[tuple[str, str]] = []

    def probe(model: str, compute_type: str) -> str | None:
        calls.append((model, compute_type))
        return failure

    return {"count": lambda: count, "probe": probe, "calls": calls}


def plan_for(dev: str, compute: str, env: dict[str, object]) -> device.DevicePlan:
    return choose(dev, compute, "/models/tiny", count=env["count"], probe=env["probe"])  # type: ignore[arg-type]


def test_cpu_is_single_thread_replicas_with_int8_and_never_probes() -> None:
    env = fake(1)
    plan = plan_for("cpu", "auto", env)
    assert (plan.device, plan.compute_type, plan.replicas, plan.batch_size) == (
        "cpu",
        "int8",
        None,  # engine.replica_layout: one single-thread replica per core
        None,
    )
    assert env["calls"] == []


def test_auto_without_a_device_is_cpu_and_says_why() -> None:
    plan = plan_for("auto", "auto", fake(0))
    assert plan.device == "cpu" and plan.compute_type == "int8"
    assert plan.reason == "CTranslate2 sees no CUDA device"


def test_auto_with_a_failing_probe_is_cpu_with_the_probe_error() -> None:
    env = fake(1, "libcublas.so.12: cannot open shared object file")
    plan = plan_for("auto", "auto", env)
    assert plan.device == "cpu"
    assert "CUDA probe failed: libcublas.so.12" in plan.reason
    assert env["calls"] == [("/models/tiny", "float16")]


def test_auto_with_a_working_device_is_one_model_batched_in_float16() -> None:
    plan = plan_for("auto", "auto", fake(2))
    assert (plan.device, plan.compute_type, plan.replicas, plan.batch_size) == (
        "cuda",
        "float16",
        1,
        device.CUDA_BATCH_SIZE,
    )
    assert "2 CUDA device(s)" in plan.reason


def test_an_explicit_compute_type_is_kept_and_probed_with() -> None:
    env = fake(1)
    assert plan_for("cuda", "int8_float16", env).compute_type == "int8_float16"
    assert env["calls"] == [("/models/tiny", "int8_float16")]
    assert plan_for("cpu", "float32", env).compute_type == "float32"


@pytest.mark.parametrize(("count", "failure"), [(0, None), (1, "SIGABRT")])
def test_explicit_cuda_that_cannot_work_is_an_error(count: int, failure: str | None) -> None:
    with pytest.raises(DeviceError, match="--device cuda cannot work here") as err:
        plan_for("cuda", "auto", fake(count, failure))
    assert "whispercli[local,gpu]" in str(err.value)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        plan_for("tpu", "auto", fake(0))
    with pytest.raises(ValueError, match="unknown compute type"):
        plan_for("cpu", "int4", fake(0))


def test_the_real_probe_on_this_machine_reports_no_device() -> None:
    from whispercli.modelhub import shipped_model

    assert device.probe_cuda(str(shipped_model()), "float16") == "CTranslate2 sees no CUDA device"
    assert device.cuda_device_count() == 0


def test_pip_cuda_lib_folders_go_first_on_the_loader_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("cublas", "cudnn"):
        (tmp_path / "nvidia" / name / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "cuda_nvrtc").mkdir()  # another package: not needed
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nvidia", raising=False)
    importlib.invalidate_caches()
    dirs = device.nvidia_lib_dirs()
    assert dirs == [str(tmp_path / "nvidia" / n / "lib") for n in ("cublas", "cudnn")]
    env = device.loader_path_env({"LD_LIBRARY_PATH": f"/opt/x:{dirs[0]}", "A": "1"}, dirs)
    assert env["LD_LIBRARY_PATH"] == f"{dirs[0]}:{dirs[1]}:/opt/x"
    assert env["A"] == "1"
    assert "LD_LIBRARY_PATH" not in device.loader_path_env({}, [])


def test_server_run_puts_the_cuda_libs_on_the_engine_childs_loader_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whispercli.server.hosting import choose_device

    lib = tmp_path / "nvidia" / "cublas" / "lib"
    lib.mkdir(parents=True)
    monkeypatch.setattr(device, "nvidia_lib_dirs", lambda: [str(lib)])
    monkeypatch.setattr(device, "choose", lambda *a: device.cuda_plan("auto", "fake GPU"))
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/cuda/lib64")
    plan = choose_device("auto", "auto")
    assert (plan.device, plan.compute_type, plan.batch_size) == ("cuda", "float16", 16)
    child = subprocess.run(  # a process started now inherits it, as the engine child does
        [sys.executable, "-c", "import os; print(os.environ['LD_LIBRARY_PATH'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == f"{lib}:/opt/cuda/lib64"
