"""The HTTP routers, one module per concern, all over one job service
(:class:`~whispercli.server.jobs.service.JobService`).

- :mod:`.uploads` -- steps 1 and 2 of the Tiyaro protocol (signed upload URL, PUT of bytes);
- :mod:`.jobs` -- step 3 (submit) and 4 (poll, long-poll), plus list, cancel and delete;
- :mod:`.health` -- ``/v1/health``;
- :mod:`.deps` -- what a route may depend on, read from ``app.state``: the service, the URL
  signer (:class:`~.deps.Links`), the API key check;
- :mod:`.errors` -- the ``{"error": {"code", "message"}}`` answers of every failure;
- :mod:`.edenai`, :mod:`.octoai`, :mod:`.openai` -- the other vendors' protocols over the same
  service;
- the wire shapes: :mod:`.schemas` (our bodies), :mod:`.signed_urls` (HMAC-signed upload and
  poll URLs), :mod:`.webhook_bodies` (what a webhook delivery POSTs).

A new protocol is one new module here with an ``APIRouter`` named ``router``, added to
:data:`ROUTERS`; it calls the service and shapes its own bodies (docs/ARCHITECTURE.md).
"""

from fastapi import APIRouter

from whispercli.server.api import edenai, health, jobs, octoai, openai, uploads

ROUTERS: tuple[APIRouter, ...] = (
    uploads.router,
    jobs.router,
    health.router,
    edenai.router,
    octoai.router,
    openai.router,
)
