"""The embedded server's defaults as plain values, importing nothing heavy.

:class:`~whispercli.server.settings.ServerSettings` takes its field defaults from here, and the
CLI's ``server run`` / ``worker run`` options show them in ``--help`` without importing the
server (``whispercli --help`` stays as light as the client).
"""

from __future__ import annotations

import whispercli.paths as paths
from whispercli.protocol import DEFAULT_MODEL
from whispercli.server.webhooks import schedule

MIB = 1024**2
GIB = 1024**3


class Defaults:
    host = paths.DEFAULT_HOST
    port = paths.DEFAULT_PORT
    max_upload_bytes = 4 * GIB
    upload_url_ttl = 3600.0
    retention = 24 * 3600.0
    poll_url_ttl = 7 * 24 * 3600.0
    max_queue = 100
    idle_timeout = 0.0
    default_model = DEFAULT_MODEL
    cpu_threads = 0
    speed = "default"
    engine_jobs = 8
    max_audio_hours = 12.0
    max_attempts = 3
    max_loaded_models = 2
    webhook_allow_private = False
    webhook_first_retry = schedule.FIRST_DELAY
    file_url_seconds = 120.0
    header_timeout = 10.0
