"""What a webhook delivery sends: the job's body in the protocol it was submitted with.

``tiyaro`` deliveries carry the poll body (``id``, ``status``, ``result``, ``error``...), with
the poll URL on the base URL the job was submitted to; ``edenai`` ones Eden's get-job body
(``users_webhook_parameters`` echoed, results left out if ``send_webhook_data`` was false).
"""

from __future__ import annotations

import json
from typing import Any

from whispercli.server.api.deps import Links
from whispercli.server.api.schemas import JobBody
from whispercli.server.storage.deliveries import Delivery
from whispercli.server.storage.store import JobRecord, Store
from whispercli.server.vendors import edenai
from whispercli.server.webhooks.outbox import BodyBuilder


def eden_job_body(
    job: JobRecord, result: dict[str, Any] | None, meta: dict[str, Any] | None
) -> dict[str, Any]:
    """Eden's get-job body of ``job`` (the providers and options its launch recorded)."""
    meta = meta or {}
    return edenai.job_body(
        edenai.public_id(job.id),
        job.status,
        edenai.providers_of(meta),
        result,
        job.error,
        original=bool(meta.get("show_original_response")),
    )


def body_builder(store: Store, links: Links) -> BodyBuilder:
    def build(delivery: Delivery) -> bytes | None:
        job = store.get_job(delivery.job_id)
        if job is None:
            return None
        result = store.read_result(job.id) if job.has_result else None
        body: dict[str, Any]
        if delivery.kind == "edenai":
            body = edenai.webhook_body(
                eden_job_body(job, result, store.get_meta(job.id)),
                delivery.extra.get("users_webhook_parameters"),
                bool(delivery.extra.get("send_webhook_data", True)),
            )
        else:
            poll_url = links.poll_url_at(delivery.base_url, job)
            body = JobBody.from_job(job, poll_url, result).model_dump(
                mode="json", exclude_unset=True
            )
        return json.dumps(body).encode()

    return build
