"""Webhooks: signed (Standard Webhooks), sent only to addresses the SSRF guard allows, retried
on a fixed schedule. Each module is stdlib-only and free of server state:

* :mod:`.signing`  - the ``whsec_`` secret file and the three ``webhook-*`` headers;
* :mod:`.guard`    - which URLs and addresses may be contacted (checked before any connect);
* :mod:`.sender`   - one POST to the address the guard checked (no redirects, 10 s timeout);
* :mod:`.schedule` - when to try again.
"""
