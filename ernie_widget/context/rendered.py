"""What a renderer hands back: the header's description, the chip label, the body, and image parts."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Rendered", "plural"]


@dataclass
class Rendered:
    #: after "@name: " on the first line, e.g. "pandas DataFrame, 12,000 rows × 7 columns"
    kind: str
    #: the chip's text, e.g. "DataFrame 12,000 × 7"
    label: str
    body: str = ""
    #: data URLs of image parts (vision models only)
    images: list[str] = field(default_factory=list)


def plural(n: int, one: str, many: str | None = None) -> str:
    """ "1 row", "12,000 rows"."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
