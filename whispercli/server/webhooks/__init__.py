"""Webhooks: signed (Standard Webhooks), sent only to addresses the SSRF guard allows, retried
on a fixed schedule. :mod:`.outbox` is the thread that sends what the store's outbox
(:mod:`whispercli.server.storage.deliveries`) says is due; the others are stdlib-only and free
of server state:

* :mod:`.signatures` - the ``whsec_`` secret file and the three ``webhook-*`` headers;
* :mod:`.guard`      - which URLs and addresses may be contacted (checked before any connect);
* :mod:`.sender`     - one POST to the address the guard checked (no redirects, 10 s timeout);
* :mod:`.schedule`   - when to try again.
"""
