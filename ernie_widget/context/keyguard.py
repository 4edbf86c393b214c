"""The secret rule: key-shaped text is masked everywhere, and a variable holding a key is not sent at all.

The shapes are `client.redact`'s, the ones ``%%ernie`` uses for ``{var}``: a string is key-shaped when
`redact` would change it (a key or token pattern, or a secret the client registered). Code, cells and tracebacks
are masked; a *value* (a string, or a string inside a container, frame or array) that is key-shaped makes the
whole mention fail: a masked key still tells the model a key is there, and the user most likely did not mean to
share it.
"""

from __future__ import annotations

from ernie_widget.client.redact import MASK, redact

from .errors import MentionError

__all__ = ["KeyShaped", "check_value", "mask", "refusal"]

#: characters examined past what is sent, so a key cut in half by a truncation is still recognised
MARGIN = 512


class KeyShaped(Exception):
    """Internal: a rendered value holds a key; `describe` turns it into a `MentionError` naming the mention."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


def check_value(text: str, shown: int | None = None) -> None:
    """Raise `KeyShaped` when ``text`` (its first ``shown`` characters plus a margin) is key-shaped."""
    if shown is not None:
        text = text[: shown + MARGIN]
    masked = redact(text)
    if masked != text:
        raise KeyShaped(_hint(masked))


def mask(text: str) -> str:
    """Key-shaped parts of code, cells and tracebacks become ``***`` (their readable prefix stays)."""
    return redact(text)


def refusal(name: str, hint: str) -> MentionError:
    """The error for a mention whose value holds a key."""
    return MentionError(
        f"@{name} 含有类似密钥的值（{hint}），为安全起见没有发送给模型；请删除其中的密钥，或提及不含密钥的变量 / "
        f"@{name} holds a key-shaped value ({hint}), so it was not sent to the model: remove the key from it, "
        "or mention a variable without one"
    )


def _hint(masked: str) -> str:
    """Where the key was, masked: a few characters around the first ``***`` (never the key itself)."""
    at = masked.find(MASK)
    if at < 0:
        return MASK
    start = max(at - 24, 0)
    snippet = masked[start : at + len(MASK) + 8].replace("\n", " ")
    return ("…" if start else "") + snippet + "…"
