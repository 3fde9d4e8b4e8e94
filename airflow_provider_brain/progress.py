"""A progress line in the task log of every long wait: at most one a ``PROGRESS_EVERY_SECONDS``, and a final tally.

Counts only (done, failed, still processing, out of the total) and the time waited: one line for a batch of
10,000 files, never a line per file, and never a file name.
"""

from __future__ import annotations

import time
from typing import Any

#: Seconds between two progress lines of one wait (read at each check, so a test may lower it in-process).
PROGRESS_EVERY_SECONDS = 60.0


class WaitProgress:
    """Counts of one wait, logged to ``log`` once a ``PROGRESS_EVERY_SECONDS`` and once at the end.

    .. code-block:: python

        progress = WaitProgress(log, total=len(ids))
        progress.update(done=3, failed=1)  # logs only if a line is due
        progress.final(done=19, failed=1)
    """

    def __init__(self, log: Any, total: int) -> None:
        self.log = log
        self.total = total
        self.started = time.monotonic()
        self._last_line = self.started

    @property
    def waited(self) -> float:
        """Seconds since the wait started."""
        return time.monotonic() - self.started

    def due_in(self) -> float:
        """Seconds until the next progress line is due (0 if it is)."""
        return max(0.0, self._last_line + PROGRESS_EVERY_SECONDS - time.monotonic())

    def update(self, done: int, failed: int, *, force: bool = False) -> None:
        """Log the counts if a line is due (or ``force``: a wait that lives one check per process)."""
        if force or self.due_in() <= 0:
            self._last_line = time.monotonic()
            self._line("still waiting", done, failed)

    def final(self, done: int, failed: int) -> None:
        """Log the final tally (whatever is neither done nor failed was still processing)."""
        self._line("wait ended", done, failed)

    def _line(self, what: str, done: int, failed: int) -> None:
        processing = max(0, self.total - done - failed)
        self.log.info(
            "Brain progress (%s): %d done, %d failed, %d still processing, of %d; waited %.0f s",
            what,
            done,
            failed,
            processing,
            self.total,
            self.waited,
        )
