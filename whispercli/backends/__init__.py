"""Client backends: one module per async protocol the CLI and ``Client`` can drive.

``tiyaro`` (the default, and the embedded server's own protocol), ``edenai`` (Eden AI v2
async speech-to-text), ``octoai`` (OctoAI async inference) and ``openai`` (OpenAI's audio API,
which every OpenAI-compatible server speaks). A profile's ``backend`` picks one; ``create``
imports only the module asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from whispercli.backends.base import Backend, Transport

TIYARO = "tiyaro"
EDENAI = "edenai"
OCTOAI = "octoai"
OPENAI = "openai"
BACKENDS = (TIYARO, EDENAI, OCTOAI, OPENAI)
DEFAULT = TIYARO


def create(name: str, transport: Transport) -> Backend:
    """The backend ``name`` over ``transport`` (the client); a name outside ``BACKENDS`` is a
    ``ValueError``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    module = importlib.import_module(f"whispercli.backends.{name}")
    backend: Backend = module.BACKEND(transport)
    return backend
