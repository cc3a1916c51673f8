"""Where each speed's time goes, in-process: the engine's calls into CTranslate2 (encode,
generate, align), faster-whisper's word timings, Silero VAD and the features, timed by
wrapping them; and the floor under any speed with this model: the encoder alone over the
limit's own chunks, in full 30 s windows and in windows sized to the chunks (as `fast` does).

    python bench/engine_parts.py --rounds 2

Times are wall seconds summed over calls, so two replicas working at once count twice; the
encoder rows are CPU seconds against the limit's. It reads bench/data/ (`bench/run` makes it).
Not a `bench/run` section: it explains the engine section's ratios, it does not race anything.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine
import realset

PARTS = ("encode", "generate", "align")
"""The CTranslate2 Whisper methods the engine's decoding calls."""


class Timings:
    """Seconds per part, summed over calls from any thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[name] += time.perf_counter() - started

        return timed


class _TimedModel:
    """CTranslate2's Whisper (a native object: its methods cannot be patched) behind a proxy
    that times the decoding calls."""

    def __init__(self, inner: Any, timings: Timings) -> None:
        self._inner, self._timings = inner, timings

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        return self._timings.wrap(name, value) if name in PARTS else value


def speed_parts(paths: list[Path], rounds: int) -> None:
    """Each speed's parts on each of ``paths``, the speeds alternated, ``rounds`` times."""
    import faster_whisper.transcribe as fw
    from faster_whisper import vad

    from whispercli.server.engine import decode, speech
    from whispercli.server.engine.whisper import Engine

    timings = Timings()
    eng = Engine(str(engine.model_dir()), cpu_threads=2)
    eng.model.model = _TimedModel(eng.model.model, timings)
    fw.WhisperModel.add_word_timestamps = timings.wrap(  # type: ignore[method-assign]
        "word timings (align + DTW)", fw.WhisperModel.add_word_timestamps
    )
    decode.BatchDecoder.features = timings.wrap(  # type: ignore[method-assign]
        "features", decode.BatchDecoder.features
    )
    speech.get_speech_timestamps = timings.wrap("Silero VAD", vad.get_speech_timestamps)
    runs = [(path, speed) for path in paths for _ in range(rounds) for speed in ("default", "fast")]
    for path, speed in runs:
        timings.seconds.clear()
        started = time.perf_counter()
        eng.transcribe(str(path), {"speed": speed}, lambda segment, progress: None)
        took = time.perf_counter() - started
        parts = ", ".join(f"{k} {v:.3f}" for k, v in sorted(timings.seconds.items()))
        print(f"{path.name} {speed}: wall {took:.3f} s; {parts}", flush=True)


def encoder_share(path: Path, rounds: int) -> None:
    """The encoder alone over the limit's chunks, against the limit, in CPU seconds."""
    import ctranslate2
    import numpy as np
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    model = WhisperModel(str(engine.model_dir()), compute_type="int8", cpu_threads=2)
    pipeline = BatchedInferencePipeline(model)
    audio = decode_audio(str(path))
    options = VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160)  # the limit's
    spans = get_speech_timestamps(audio, options)
    chunks, _ = collect_chunks(audio, spans, max_duration=30)
    features = [model.feature_extractor(chunk) for chunk in chunks]

    def encode(feats: list[Any], frames: int) -> None:
        batch = np.zeros((len(feats), feats[0].shape[0], frames), np.float32)
        for i, feat in enumerate(feats):
            n = min(frames, feat.shape[1])
            batch[i, :, :n] = feat[:, :n]
        model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=True)

    def sized() -> None:
        for chunk, feat in zip(chunks, features, strict=True):
            encode([feat], min(3000, int(max(10.0, chunk.size / 16000 + 5.0) * 100)))

    def least_cpu(fn: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            fn()
            best = min(best, time.process_time() - started)
        return best

    limit = least_cpu(lambda: list(pipeline.transcribe(str(path), batch_size=8, beam_size=5)[0]))
    full = least_cpu(
        lambda: [encode(features[i : i + 8], 3000) for i in range(0, len(features), 8)]
    )
    fitted = least_cpu(sized)
    print(
        f"{path.name}: {len(chunks)} chunks; limit {limit:.3f} CPU s; encoder alone in full "
        f"windows {full:.3f} ({full / limit:.0%}), in sized windows {fitted:.3f} "
        f"({fitted / limit:.0%})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp())
    real = realset.write_joined(out / "real-joined.wav")
    synth, _ = engine.synth_file(out)
    for path in (real, synth):
        encoder_share(path, args.rounds)
    speed_parts([real, synth], args.rounds)


if __name__ == "__main__":
    main()
