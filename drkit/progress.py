"""What a long command is waiting for, on stderr: the stage, the awaited event, and the time
spent on it against its budget (`lab up: postgres: waiting for us-west-2 to stream WAL ...
3.2 s of 20 s`).

On a terminal one line is redrawn in place and erased at the end; elsewhere (CI logs) a line
is written only once something has lasted `every_s` seconds, and again every `every_s`, so a
quick success prints nothing but the command's own one-line summary. Stdout is never
touched: `--json` output stays the only thing there.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

LOG_SUFFIX = re.compile(r"\s*\(log: [^)]*\)$")  # the timeout error names the log; the line need not


@dataclass
class _Activity:
    text: str
    budget_s: float | None
    started: float


class Progress:
    """A stage reporter (`progress("postgres: starting")`, the lab's callback) whose waits
    (`with progress.waiting(what, budget_s)`) show their elapsed time against their budget.

    Use it as a context manager: the ticker runs inside it and the line is cleared on exit.
    """

    def __init__(
        self,
        command: str,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_s: float = 5.0,
        tick_s: float = 0.2,
    ) -> None:
        self.command = command
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s
        self.tick_s = tick_s if self.tty else min(tick_s * 5, every_s)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # the ticker and the command both draw
        self._stage: _Activity | None = None
        self._wait: _Activity | None = None
        self._printed_at = 0.0
        self._drawn = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the command reports ---------------------------------------------------------
    def __call__(self, stage: str) -> None:
        """A new stage begins (it ends the one before)."""
        with self._lock:
            self._stage = _Activity(stage, None, time.monotonic())
            self._wait = None
            self._printed_at = 0.0
        self._tick()

    @contextmanager
    def waiting(self, what: str, budget_s: float | None = None) -> Iterator[None]:
        """Inside the current stage, wait for `what` (the text after "waiting for")."""
        activity = _Activity(LOG_SUFFIX.sub("", what), budget_s, time.monotonic())
        with self._lock:
            outer, self._wait = self._wait, activity
        try:
            yield
        finally:
            with self._lock:
                if self._wait is activity:
                    self._wait = outer

    # -- rendering --------------------------------------------------------------------------
    def line(self, now: float | None = None, width: int | None = None) -> str | None:
        """The progress line as it reads now (what is awaited cut to fit `width`, the clock
        kept), or None before the first stage."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stage, wait = self._stage, self._wait
        if stage is None:
            return None
        current = wait or stage
        text = f"{self.command}: {stage.text}"
        if wait is not None:
            text += f": waiting for {wait.text}"
        clock = f" ... {now - current.started:.1f} s"
        if current.budget_s is not None:
            clock += f" of {current.budget_s:g} s"
        if width is not None and len(text) + len(clock) > width:
            text = text[: max(width - len(clock) - 1, 0)] + "…"
        return text + clock

    def _tick(self) -> None:
        with self._write_lock:
            self._draw()

    def _draw(self) -> None:
        now = time.monotonic()
        width = shutil.get_terminal_size((100, 20)).columns - 1 if self.tty else None
        text = self.line(now, width)
        if text is None:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._drawn = True
            return
        with self._lock:
            current = self._wait or self._stage
            assert current is not None
            lasted = now - current.started >= self.every_s
            due = now - self._printed_at >= self.every_s
            if lasted and due:
                self._printed_at = now
        if lasted and due:
            print(text, file=self.stream, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._tick()

    def __enter__(self) -> Progress:
        self._thread = threading.Thread(target=self._run, name="drkit-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._write_lock:
            if self._drawn:  # leave the terminal as it was: the summary or the error follows
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._drawn = False


def elapsed(since: float) -> str:
    """Seconds since the monotonic time `since`, as the summaries write them."""
    return f"{time.monotonic() - since:.1f} s"
