"""The progress bar: tqdm in a notebook or a terminal, refreshed at most 10 times a second."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import BatchRow

REFRESH_SECONDS = 0.1  # at most 10 updates a second (a notebook bar is a comm message each)

_hinted = False


def make_bar(total: int, initial: int) -> Any:
    global _hinted
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if not _hinted:
            _hinted = True
            print("提示 / hint: pip install 'ernie-widget[batch]' for a progress bar (tqdm)", file=sys.stderr)
        return None
    # initial=cached rows, so rows/s and the ETA measure only the rows actually sent
    return tqdm(total=total, initial=initial, desc="ernie", unit="row", mininterval=REFRESH_SECONDS,
                dynamic_ncols=True, disable=False, leave=True)


class Progress:
    """Counters written by the batch's loop; a bar refreshed from outside at most every 0.1 s."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.done = initial
        self.tokens = 0
        self.failed = 0
        self._bar = make_bar(total, initial) if enabled and total else None
        self._shown = initial
        self._postfix = ""

    def row_done(self, row: BatchRow) -> None:
        self.done += 1
        if row.usage is not None:
            self.tokens += row.usage.total_tokens
        if row.error is not None:
            self.failed += 1

    def _set_postfix(self, bar: Any) -> None:
        postfix = f"tokens={self.tokens}" + (f", failed={self.failed}" if self.failed else "")
        if postfix != self._postfix:
            self._postfix = postfix
            bar.set_postfix_str(postfix, refresh=False)

    def refresh(self) -> None:
        bar = self._bar
        if bar is None:
            return
        self._set_postfix(bar)
        delta = self.done - self._shown
        if delta:
            self._shown += delta
            bar.update(delta)  # tqdm prints only if mininterval has passed since its last print

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            self._set_postfix(bar)
            bar.n = self.done  # close() draws the final state once (red in a notebook if rows are missing)
            bar.close()
