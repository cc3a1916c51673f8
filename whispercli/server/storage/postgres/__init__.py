"""The PostgreSQL implementations (the ``postgres`` extra: psycopg 3): :mod:`.schema` (our
tables and their migration), :mod:`.pool` (connections), :mod:`.store`, :mod:`.blobs` (bytea
chunks) and :mod:`.notify` (LISTEN/NOTIFY)."""
