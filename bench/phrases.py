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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine as eb
import realset
from faster_whisper import BatchedInferencePipeline, WhisperModel

import whispercli.server.engine.decode as decode
from whispercli.modelhub import shipped_model
from whispercli.server.engine.whisper import Engine

LIMIT = "limit (batched b8 beam 5)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=8)
    args = parser.parse_args()
    path = realset.write_joined(Path(tempfile.mkdtemp()) / "phrases.wav", copies=args.copies)
    reference = realset.joined_reference(copies=args.copies)
    rescue = decode.RESCUE_DEPTH
    model_path = str(shipped_model())
    whisper = Engine(model_path)
    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=2)
    pipeline = BatchedInferencePipeline(model)

    def engine_at(depth: int) -> str:
        decode.RESCUE_DEPTH = depth
        result = whisper.transcribe(str(path), {}, lambda segment, progress: None)
        return " ".join(s["text"] for s in result["segments"])

    def limit() -> str:
        segments, _ = pipeline.transcribe(str(path), batch_size=8, beam_size=5)
        return " ".join(s.text for s in segments)

    def sequential() -> str:
        segments, _ = model.transcribe(str(path), beam_size=5, vad_filter=True)
        return " ".join(s.text for s in segments)

    contenders = {
        LIMIT: limit,
        "sequential beam 5 (VAD)": sequential,
        "engine default, cut-short chunks kept": lambda: engine_at(0),
        "engine default (decoded again in halves)": lambda: engine_at(rescue),
    }
    best = eb.interleaved({name: _with_cpu(run) for name, run in contenders.items()}, args.rounds)
    what = f"{args.copies} copies of the real clips joined ({len(reference.split())} words)"
    print(eb.markdown("phrases", eb.rows_against(best, reference, LIMIT, what)))


def _with_cpu(run: Callable[[], str]) -> Callable[[], eb.Outcome]:
    """A contender as engine.interleaved takes it: its text and this process's CPU seconds."""

    def measured() -> eb.Outcome:
        started = time.process_time()
        text = run()
        return text, time.process_time() - started

    return measured


if __name__ == "__main__":
    main()
