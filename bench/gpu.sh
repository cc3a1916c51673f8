#!/usr/bin/env bash
# The engine on CUDA vs faster-whisper used directly on the same GPU, sequential and batched.
#
#   bench/gpu.sh [MODEL] [CLIP]      # MODEL: an installed name (default tiny.en), CLIP: a bench
#                                    # clip name (default long, the 157 s file)
#
# Needs an NVIDIA GPU and `pip install 'whispercli[local,gpu]'`; exits 1 with the reason where
# CUDA cannot work (whispercli.server.engine.device). Rows: faster-whisper's WhisperModel.transcribe
# (beam 5, sequential), its BatchedInferencePipeline at batch 8/16/32, and whispercli's Engine
# with the CUDA plan (one model, the batched pipeline) for each decoding profile and batch size.
# Each row keeps the fastest of 3 runs after one warm-up. Not run in CI (no GPU there).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f bench/data/manifest.json ] || python bench/make_speech.py
exec python - "${1:-tiny.en}" "${2:-long}" <<'PY'
import dataclasses, sys, time
sys.path.insert(0, "bench")
import benchkit
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
from whispercli import modelhub
from whispercli.server.engine import device
from whispercli.server.engine.whisper import Engine

name, clip = sys.argv[1], sys.argv[2]
info = modelhub.resolve(name, None)
if info is None:
    sys.exit(f"model {name} is not installed: whispercli models pull {name}")
try:
    plan = device.choose("cuda", "auto", str(info.path))
except device.DeviceError as exc:
    sys.exit(str(exc))
path, seconds = benchkit.clip(clip), benchkit.clip_seconds(clip)
audio = decode_audio(str(path), sampling_rate=16000)

def best(run):
    run()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)

direct = WhisperModel(str(info.path), device="cuda", compute_type=plan.compute_type)
rows = [("faster-whisper sequential, beam 5",
         best(lambda: list(direct.transcribe(audio, beam_size=5)[0])))]
pipeline = BatchedInferencePipeline(direct)
for size in (8, 16, 32):
    rows.append((f"faster-whisper batched {size}",
                 best(lambda: list(pipeline.transcribe(audio, batch_size=size)[0]))))
del pipeline, direct
for profile in ("default", "fast"):
    for size in (8, 16, 32):
        engine = Engine(str(info.path), speed=profile,
                        plan=dataclasses.replace(plan, batch_size=size))
        rows.append((f"whispercli {profile}, batch {size}",
                     best(lambda: engine.transcribe(str(path), {}, lambda *_: None))))
        del engine
print(f"| {name} on {clip} ({seconds:.0f} s), {plan.compute_type} | wall s | x realtime |")
print("|---|---:|---:|")
for label, wall in rows:
    print(f"| {label} | {wall:.2f} | {seconds / wall:.1f} |")
PY
