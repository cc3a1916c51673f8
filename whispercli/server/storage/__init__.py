"""Where jobs and uploads live: each interface beside its implementations.

- :mod:`.store` -- :class:`~.store.Store` (jobs, uploads metadata, attempts, results; writes
  fenced by attempt) with :mod:`.deliveries` (its webhook outbox): the job state machine,
  written once over :mod:`.sql` (a dialect and a connector per database): :mod:`.sqlite` (the
  embedded default) and :mod:`.postgres.store`;
- :mod:`.blobs` -- :class:`~.blobs.BlobStore` (upload bytes): :mod:`.disk_blobs` and
  :mod:`.postgres.blobs`;
- :mod:`.notify` -- :class:`~.notify.Notifier` (wakes long-polls): :mod:`.local_notify` and
  :mod:`.postgres.notify` (LISTEN/NOTIFY);
- :mod:`.open` -- :class:`~.open.Storage`, the three that fit together, chosen from the
  settings.

tests/server/storage/test_store_contract.py is the contract suite every implementation passes.
"""
