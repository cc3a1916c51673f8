"""The progress display on stderr: one line per job, upload bytes and speed, then the job's
status and the server's progress, with the elapsed time. Inert when stderr is not a terminal
(rich is imported only when it is shown)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from whispercli.cli.output import stderr_is_tty
from whispercli.protocol import JobInfo


class Tracker:
    """One job's line. Every method is a no-op when the display is off."""

    def __init__(self, display: Display, task_id: Any) -> None:
        self._display = display
        self._task = task_id

    def _update(self, **kwargs: Any) -> None:
        if self._display.progress is not None:
            self._display.progress.update(self._task, **kwargs)

    def upload(self, sent: int, total: int) -> None:
        self._update(phase="upload", status="uploading", total=total or 1, completed=sent)

    def download(self, got: int, total: int) -> None:
        self._update(phase="upload", status="downloading", total=total or 1, completed=got)

    def job(self, info: JobInfo) -> None:
        if info.progress is not None:
            pct = 100.0 if info.status == "success" else max(0.0, min(info.progress, 1.0)) * 100
        else:
            pct = 100.0 if info.terminal else 0.0
        why = info.waiting if info.waiting and not info.terminal else ""
        self._update(
            phase="job",
            status=info.status,
            total=100,
            completed=pct,
            why=why,
            since=_epoch(info.accepted_at),
            until=_epoch(info.completed_at),
        )

    def message(self, status: str, done: bool = False) -> None:
        self._update(phase="job", status=status, total=100, completed=100 if done else 0)


def _epoch(stamp: str | None) -> float | None:
    """An ISO 8601 time (``2026-01-02T03:04:05Z``) as seconds since the epoch, if readable."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None
    except ValueError:
        return None


class Display:
    """Context manager around a rich ``Progress`` on stderr (or nothing)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = stderr_is_tty() if enabled is None else enabled
        self.progress: Any = None
        if self.enabled:
            self.progress = _make_progress()

    def __enter__(self) -> Display:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.progress is not None:
            # Whatever state each job is left in (submitted, failed, interrupted), the last
            # frame drawn must not show a spinner that looks like it is still working.
            for task in self.progress.tasks:
                self.progress.update(task.id, final=True)
            self.progress.refresh()
            self.progress.stop()

    def hide(self) -> None:
        """Take the display off the terminal for good (the transcript prints there next):
        its lines are erased, and the trackers do nothing from now on."""
        if self.progress is not None:
            self.progress.live.transient = True
            self.progress.stop()
            self.progress = None

    def track(self, name: str) -> Tracker:
        task = None
        if self.progress is not None:
            task = self.progress.add_task(name, total=None, phase="job", status="starting", why="")
        return Tracker(self, task)


def _make_progress() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class DetailColumn(ProgressColumn):
        """Bytes and speed while uploading; status and percent afterwards."""

        def __init__(self) -> None:
            super().__init__()
            self._bytes = DownloadColumn()
            self._speed = TransferSpeedColumn()

        def render(self, task: Task) -> Text:
            if task.fields.get("phase") == "upload":
                text = self._bytes.render(task)
                text.append(" ")
                text.append_text(self._speed.render(task))
                return text
            status = str(task.fields.get("status", ""))
            if task.total and status not in (
                "starting",
                "success",
                "reused",
                "failed",
                "cancelled",
            ):
                # Padded to the longest status, so the columns stay put as it changes.
                return Text(f"{status:<10} {task.percentage:3.0f}%")
            return Text(status)

    class SinceAccepted(TimeElapsedColumn):
        """Time since the job was accepted (a resumed wait goes on counting), else since the
        line appeared."""

        def render(self, task: Task) -> Text:
            import time
            from datetime import timedelta

            since = task.fields.get("since")
            elapsed = task.finished_time if task.finished else task.elapsed
            if since is not None:
                elapsed = max(elapsed or 0.0, (task.fields.get("until") or time.time()) - since)
            if elapsed is None:
                return Text("-:--:--", style="progress.elapsed")
            return Text(str(timedelta(seconds=int(elapsed))), style="progress.elapsed")

    class Spinner(SpinnerColumn):
        """A spinner while the job is in flight; a blank once its line is final."""

        def render(self, task: Task) -> Any:
            if task.fields.get("final") or task.finished:
                return Text(" ")
            return super().render(task)

    # https://no-color.org: any non-empty NO_COLOR turns colour off.
    console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")))
    return Progress(
        Spinner(),
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=24),
        DetailColumn(),
        SinceAccepted(),
        TextColumn("{task.fields[why]}"),
        console=console,
        transient=False,
    )
