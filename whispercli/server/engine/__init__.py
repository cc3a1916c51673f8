"""The engine: real Whisper (faster-whisper on CTranslate2) outside the request path.

Parent side: :mod:`.executor` runs a claimed job on :mod:`.process` (the engine child process
and the typed messages on its pipes). Child side (only the engine process imports
faster-whisper): :mod:`.whisper` (the Engine), :mod:`.plans` (the decoding speeds),
:mod:`.chunked` (VAD chunks decoded in parallel), :mod:`.quality` (the no-speech gate and
warnings), :mod:`.modelcache` (models kept loaded), :mod:`.device` (CPU or CUDA, and the
plan for it) and :mod:`.fake` (a stand-in engine for scheduling tests).
"""
