"""The embedded server (the ``local`` extra): the Tiyaro, Eden AI and OctoAI protocols over one
durable job service, and the engine that runs real Whisper. Folders by concern:

- :mod:`.app` composes the parts; :mod:`.hosting` serves them (``server run``);
  :mod:`.settings` holds every default;
- :mod:`.api` -- routers, one per protocol, and every wire shape (schemas, signed URLs,
  webhook bodies);
- :mod:`.jobs` -- the rules: the job service, input validation, error codes, installed
  models, retention, the local runner;
- :mod:`.storage` -- the Store, BlobStore and Notifier interfaces beside their SQLite/disk
  and PostgreSQL implementations;
- :mod:`.engine` -- faster-whisper, decoding plans, the engine process and the executor that
  runs a claimed job on it;
- :mod:`.scale` -- the PostgreSQL mode's Procrastinate queue, worker and fleet;
- :mod:`.webhooks` -- signed, SSRF-guarded, retried deliveries; :mod:`.vendors` -- other
  vendors' pure shapes.

The map of the whole package is docs/ARCHITECTURE.md.
"""
