"""whispercli: asynchronous speech-to-text over the Tiyaro async API.

The client library is importable without the CLI::

    from whispercli import Client
    job = Client().submit("talk.mp3", model="tiny")
    print(job.wait().text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from whispercli.version import __version__

__all__ = ["Client", "Job", "__version__"]

if TYPE_CHECKING:
    from whispercli.client import Client, Job


def __getattr__(name: str) -> Any:
    # Lazy so that ``import whispercli`` (and ``whispercli --help``) stays cheap.
    if name in ("Client", "Job"):
        import whispercli.client as client

        return getattr(client, name)
    raise AttributeError(name)
