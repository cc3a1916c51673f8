"""Time to first text: a transcript printed on stdout segment by segment while the job runs.

``transcribe FILE`` on a terminal feeds :class:`LiveText` whatever partial results the backend
gives (the embedded server's poll body carries the segments decoded so far; an OpenAI-compatible
endpoint streams them), then the final result. What it prints is the txt format, one line per
segment, exactly as ``formats.to_txt`` writes the same segments (control characters escaped, as
all data on a terminal); piped output never goes through here (it stays the final transcript,
printed once at the end).

The last segment may still grow (a stream's deltas): its text is printed as it comes and its
line ends once a later segment, or the end, shows it complete.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence

import whispercli.formats as formats
from whispercli.cli.output import terminal_safe
from whispercli.protocol import JobInfo, Result, Segment


class LiveText:
    def __init__(self, before_first: Callable[[], None] = lambda: None) -> None:
        """``before_first`` runs once, just before the first text (the progress display on
        the same terminal steps aside)."""
        self._before_first: Callable[[], None] | None = before_first
        self._closed = 0
        """Segments whose line was printed whole."""
        self._written = ""
        """What is on screen of the open segment (the one after the closed ones)."""
        self._line_open = False
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._before_first is None

    def feed(self, info: JobInfo) -> None:
        """A ``JobCallback``: print the partial segments not printed yet."""
        if info.partial_segments:
            self._show(info.partial_segments, final=False)

    def finish(self, result: Result) -> None:
        """The job's result: print what is left, ending the last line (all of it, speaker
        labels included, when nothing was shown while it ran: Eden AI's diarized results)."""
        if not self.started:
            with self._lock:
                self._write(formats.to_txt(result))
        elif result.segments:
            self._show(result.segments, final=True)

    def close(self) -> None:
        """End a line left open (a job that failed or was interrupted mid-segment), so that
        what follows on the terminal starts on its own line."""
        with self._lock:
            if self._line_open:
                self._write("\n")

    def _show(self, segments: Sequence[Segment], *, final: bool) -> None:
        with self._lock:
            out = []
            for index in range(self._closed, len(segments)):
                text = segments[index].text.strip()
                if text.startswith(self._written):
                    out.append(text[len(self._written) :])
                # else: the segment changed under us (a retried job): keep what is on screen
                if index + 1 < len(segments) or final:
                    out.append("\n")
                    self._closed, self._written = index + 1, ""
                else:
                    self._written = text if text.startswith(self._written) else self._written
            if "".join(out):
                self._write("".join(out))

    def _write(self, text: str) -> None:
        if self._before_first is not None:
            self._before_first()
            self._before_first = None
        sys.stdout.write(terminal_safe(text))  # a terminal: a server's control characters escaped
        sys.stdout.flush()
        self._line_open = not text.endswith("\n")
