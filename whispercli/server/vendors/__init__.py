"""The other vendors' HTTP shapes, as pure functions: requests in, our job's data out, and
our job's data back into their bodies. No HTTP framework, no store: the routers call these.

``DEFAULT_MODEL`` (from ``protocol``) is the model of a request that names none (Eden's
``whisper``, every OctoAI predict)."""

from whispercli.protocol import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL"]
