"""The engine: real Whisper (faster-whisper on CTranslate2) outside the request path.

Parent side: :mod:`.executor` keeps several claimed jobs on :mod:`.process` (the engine child
process and the typed messages on its pipes; :mod:`.outcome` is what a job hears back). Child
side (only the engine process imports faster-whisper): :mod:`.whisper` (the Engine: many jobs
at once), :mod:`.audio` (uploads decoded in bounded pieces, the length limit), :mod:`.speech`
(VAD chunks found as the audio streams), :mod:`.batcher` (every job's chunks on the replicas,
fairly, results back in order), :mod:`.decode` (one batch through faster-whisper, encoder
window sized), :mod:`.plans` (the decoding speeds), :mod:`.quality` (the no-speech gate and
warnings), :mod:`.modelcache` (models kept loaded), :mod:`.device` (CPU or CUDA, and the
layout for it) and :mod:`.fake` (a stand-in engine for scheduling tests).
"""
