"""What a batch returns: rows in input order, their errors, and the columns added to a DataFrame."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from ..client.errors import ErnieError
from ..client.events import Usage

TEXT_COLUMN = "ernie_text"
ERROR_COLUMN = "ernie_error"
TOKENS_COLUMN = "ernie_tokens"
#: with schema=, each field of the answer becomes a column named ernie_<field>
FIELD_PREFIX = "ernie_"


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One row's outcome. ``text`` is None when the row failed; ``cached`` when it came from the cache."""

    index: int
    prompt: str
    text: str | None
    usage: Usage | None = None
    error: ErnieError | None = None
    cached: bool = False
    #: the validated answer, with ``schema=`` (a pydantic model instance or the JSON value)
    parsed: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens(self) -> int | None:
        return None if self.usage is None else self.usage.total_tokens


class BatchResult(Sequence[BatchRow]):
    """The rows of a batch in input order (a read-only list of `BatchRow`)."""

    def __init__(self, rows: Sequence[BatchRow]) -> None:
        self._rows = list(rows)

    @overload
    def __getitem__(self, i: int) -> BatchRow: ...

    @overload
    def __getitem__(self, i: slice) -> BatchResult: ...

    def __getitem__(self, i: int | slice) -> BatchRow | BatchResult:
        if isinstance(i, slice):
            return BatchResult(self._rows[i])
        return self._rows[i]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[BatchRow]:
        return iter(self._rows)

    @property
    def texts(self) -> list[str | None]:
        """Every row's answer, None where the row failed."""
        return [r.text for r in self._rows]

    @property
    def errors(self) -> dict[int, ErnieError]:
        """The failed rows: row index → error (empty when every row succeeded)."""
        return {r.index: r.error for r in self._rows if r.error is not None}

    @property
    def usage_total(self) -> Usage:
        """Tokens summed over every row that reported usage (cached rows included)."""
        p = c = t = 0
        for r in self._rows:
            if r.usage is not None:
                p += r.usage.prompt_tokens
                c += r.usage.completion_tokens
                t += r.usage.total_tokens
        return Usage(p, c, t)

    def to_pandas(self) -> Any:
        """A DataFrame indexed by row: ``prompt``, ``ernie_text``, ``ernie_error``, ``ernie_tokens``, ``cached``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "prompt": [r.prompt for r in self._rows],
                TEXT_COLUMN: [r.text for r in self._rows],
                ERROR_COLUMN: [describe_error(r.error) for r in self._rows],
                TOKENS_COLUMN: pd.array([r.tokens for r in self._rows], dtype="Int64"),
                "cached": [r.cached for r in self._rows],
            },
            index=pd.Index([r.index for r in self._rows], name="row"),
        )

    def __repr__(self) -> str:
        failed = sum(1 for r in self._rows if r.error is not None)
        cached = sum(1 for r in self._rows if r.cached)
        return (f"BatchResult({len(self._rows)} rows, {failed} failed, {cached} cached, "
                f"{self.usage_total.total_tokens} tokens)")


class BatchRowError(ErnieError):
    """``on_error="raise"``: a row failed. ``.index``, ``.prompt``, ``.error`` (the cause), ``.partial_result``."""

    def __init__(self, index: int, prompt: str, error: ErnieError, partial_result: BatchResult) -> None:
        super().__init__(
            f"第 {index} 行失败 / row {index} failed: {error.message}",
            partial_text=error.partial_text, status_code=error.status_code, code=error.code,
            request_id=error.request_id, retry_after=error.retry_after,
        )
        self.index = index
        self.prompt = prompt
        self.error = error
        self.partial_result = partial_result


class BatchInterrupted(KeyboardInterrupt):
    """The batch was interrupted; ``.partial_result`` holds every row that finished (cached rows too)."""

    def __init__(self, partial_result: BatchResult) -> None:
        super().__init__(f"批处理已中断 / batch interrupted: {len(partial_result)} rows finished")
        self.partial_result = partial_result


def describe_error(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"
