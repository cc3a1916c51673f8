"""A long recording of many short phrases: the real clips of bench/real/ joined (1 s apart) and
repeated ``--copies`` times. Packed into windows without their pauses, such speech made the
decoder stop early in a window (faster-whisper's batched pipeline loses the same words); the
engine decodes a cut-short chunk again in halves (server/engine/decode.py,
``RESCUE_TAIL_SECONDS``). Interleaved, in-process, best of ``--rounds``:

    python bench/phrases.py --rounds 3 --copies 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realset
import wer
from faster_whisper import BatchedInferencePipeline, WhisperModel

import whispercli.server.engine.decode as decode
from whispercli.modelhub import shipped_model
from whispercli.server.engine.whisper import Engine


def repeated(out: Path, copies: int) -> Path:
    joined = realset.write_joined(out / "real-joined.wav")
    with wave.open(str(joined)) as w:
        frames = w.readframes(w.getnframes())
    path = out / f"real-x{copies}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(realset.SAMPLE_RATE)
        w.writeframes(frames * copies)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=8)
    args = parser.parse_args()
    path = repeated(Path(tempfile.mkdtemp()), args.copies)
    reference = " ".join([realset.joined_reference()] * args.copies)
    rescue = decode.RESCUE_DEPTH
    model_path = str(shipped_model())
    engine = Engine(model_path)
    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=2)
    pipeline = BatchedInferencePipeline(model)

    def engine_at(depth: int) -> str:
        decode.RESCUE_DEPTH = depth
        result = engine.transcribe(str(path), {}, lambda segment, progress: None)
        return " ".join(s["text"] for s in result["segments"])

    def limit() -> str:
        segments, _ = pipeline.transcribe(str(path), batch_size=8, beam_size=5)
        return " ".join(s.text for s in segments)

    def sequential() -> str:
        segments, _ = model.transcribe(str(path), beam_size=5, vad_filter=True)
        return " ".join(s.text for s in segments)

    contenders = {
        "limit (batched b8 beam 5)": limit,
        "sequential beam 5 (VAD)": sequential,
        "engine default, cut-short chunks kept": lambda: engine_at(0),
        "engine default (decoded again in halves)": lambda: engine_at(rescue),
    }
    best: dict[str, tuple[float, str]] = {}
    for r in range(args.rounds):
        for name in list(contenders)[r % 4 :] + list(contenders)[: r % 4]:
            started = time.perf_counter()
            text = contenders[name]()
            took = time.perf_counter() - started
            best[name] = (min(took, best.get(name, (took, ""))[0]), text)
            print(f"  round {r + 1} {name}: {took:.2f} s", file=sys.stderr, flush=True)
    base = best["limit (batched b8 beam 5)"][0]
    print(f"{args.copies} copies of the real clips joined, {len(reference.split())} words\n")
    print("| run | seconds | x limit | WER % |\n|---|---|---|---|")
    for name, (took, text) in best.items():
        print(f"| {name} | {took:.2f} | {took / base:.2f} | {100 * wer.wer(reference, text):.2f} |")


if __name__ == "__main__":
    main()
