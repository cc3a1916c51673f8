"""What every command shares: the global options, the client, the jobs file, job references."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from whispercli.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from whispercli.client import Client, Job
    from whispercli.state import JobStore, SavedJob


@dataclass
class Globals:
    """The options given before the command (``whispercli --url X status``)."""

    url: str | None = None
    api_key: str | None = None
    profile: str | None = None
    debug: bool = False
    _client: Client | None = field(default=None, repr=False)
    _job_clients: dict[tuple[str, str | None, str], Client] = field(
        default_factory=dict, repr=False
    )
    _store: JobStore | None = field(default=None, repr=False)


def globals_of(ctx: typer.Context) -> Globals:
    root = ctx.find_root()
    if not isinstance(root.obj, Globals):
        root.obj = Globals()
    return root.obj


def get_client(ctx: typer.Context) -> Client:
    """The one ``Client`` for this command (settings resolved from flags, env, config)."""
    g = globals_of(ctx)
    if g._client is None:
        from whispercli.client import Client

        g._client = Client(url=g.url, api_key=g.api_key, profile=g.profile)
    return g._client


def get_store(ctx: typer.Context) -> JobStore:
    g = globals_of(ctx)
    if g._store is None:
        from whispercli.state import JobStore

        g._store = JobStore()
    return g._store


def resolve_job(ctx: typer.Context, ref: str) -> tuple[Job, SavedJob | None]:
    """A job reference (id, unique prefix, ``last``) -> a ``Job`` handle and its saved entry.

    A saved job is resumed where it was submitted (see ``client_for``); a full id that is not
    saved locally is looked up on the server in effect.
    """
    client = get_client(ctx)  # a bad config is reported before anything else
    try:
        saved = get_store(ctx).resolve(ref)
    except NotFoundError:
        if not client.backend.has_jobs:  # nothing saved to resume, nothing to look up
            raise client.backend.no_jobs("look a job up") from None
        if ref == "last" or len(ref) < 8:
            raise
        return client.job(ref), None
    return client_for(ctx, saved).job(saved.id, saved.poll_url), saved


def client_for(ctx: typer.Context, saved: SavedJob) -> Client:
    """The client for a saved job: its own endpoint, with the key of the profile it was
    submitted with (or of the environment), as ``gh run watch`` resumes a run. Only an
    explicit, different ``--url`` is a conflict."""
    import whispercli.backends as backends

    client = get_client(ctx)
    endpoint = saved.endpoint.rstrip("/")
    if saved.backend not in backends.BACKENDS:
        raise UsageError(
            f"job {saved.id} was submitted with the backend {saved.backend!r}, unknown here",
            hint="backends: " + ", ".join(backends.BACKENDS) + "; a newer whispercli may know it",
        )
    same_backend = saved.backend == client.settings.backend
    if (not endpoint or endpoint == client.url) and same_backend:
        return client
    if endpoint and endpoint != client.url and client.settings.url_source == "--url":
        raise UsageError(
            f"job {saved.id} was submitted to {endpoint}, not {client.url}",
            hint=f"drop --url to resume it at {endpoint}",
        )
    g = globals_of(ctx)
    profile = g.profile or saved.profile or client.settings.profile
    key = (endpoint or client.url, profile, saved.backend)
    if key not in g._job_clients:
        from dataclasses import replace

        import whispercli.config as config
        from whispercli.client import Client

        if profile not in config.profiles():
            raise UsageError(
                f"job {saved.id} was submitted with the profile {profile!r}, which is gone",
                hint=f"recreate it (`whispercli config set url {endpoint} --profile {profile}`)"
                " or give --profile",
            )
        url = endpoint or client.url
        settings = replace(
            config.resolve(url=url, api_key=g.api_key, profile=profile),
            url_source=f"job {saved.id}'s saved endpoint",
            auto_start=url == config.local_default_url(),
            backend=saved.backend,
        )
        g._job_clients[key] = Client(settings=settings)
    return g._job_clients[key]


def complete_job_ref(incomplete: str) -> list[str]:
    """Shell completion for job arguments: saved ids, newest first, and ``last``."""
    try:
        from whispercli.state import JobStore

        ids = [j.id for j in JobStore().newest_first()]
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [i for i in ["last", *ids] if i.startswith(incomplete)]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms]?)")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h30m``, ``1.5h``, ``7d`` -> seconds."""
    text = text.strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += (
            float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        )
        pos = match.end()
    if not text or pos != len(text):
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 90, 90s, 30m, 1h30m)")
    return total


def check_duration(value: str | None) -> str | None:
    """An option callback: a bad duration is a usage error naming the option, at parse
    time; the command then reads it with ``parse_duration``."""
    if value is not None:
        parse_duration(value)
    return value
