"""The PostgreSQL mode's scale-out (the ``postgres`` extra): :mod:`.queue` (Procrastinate
dispatch, the periodic tasks, the migration of both schemas), :mod:`.worker` (``whispercli
worker run``) and :mod:`.fleet` (live workers and queue depth for ``/v1/health``)."""
