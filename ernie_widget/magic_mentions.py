"""`%%ernie` @-mentions: which words of a prompt attach notebook context, and the text that goes with it.

A mention is attached only where it cannot change the meaning of an existing prompt (ernie_widget.context.mentions):
``@name`` of a user variable, starting a word, outside code fences and backticks. ``--no-mentions`` turns it off;
``{name}`` keeps its own meaning (interpolation).
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.error import UsageError

from .protocol import ContextItem

__all__ = ["attach_mentions", "with_context"]


def attach_mentions(text: str, ns: dict[str, Any], shell: Any, *, budget: int,
                    vision: bool) -> tuple[list[ContextItem], list[str]]:
    """The context items (fit to ``budget`` tokens) and image parts of the prompt's mentions; says on stderr what
    was attached. A mention that cannot be sent (a key-bearing variable) is a usage error: nothing is sent."""
    from .context import describe, find_mentions, fit_to_budget

    names = find_mentions(text, ns)
    if not names:
        return [], []
    items: list[ContextItem] = []
    images: list[str] = []
    for name in names:
        try:
            mention = describe(name, ns, shell=shell, vision=vision)
        except (ValueError, LookupError) as err:  # MentionError: a key in the value, and the like
            raise UsageError(str(err)) from None
        items.append(mention.item)
        images.extend(mention.images)
    items = fit_to_budget(items, budget)
    shown = ", ".join(f"@{i['name']} ({i['label']} · {i['tokens']} tok{', shortened' if i.get('shortened') else ''})"
                      for i in items)
    print(f"已附加上下文 / attached: {shown}", file=sys.stderr)
    return items, images


def with_context(text: str, items: list[ContextItem]) -> str:
    """The prompt as the model gets it: the user's text, then the mentions' context."""
    if not items:
        return text
    from .context import format_context

    return f"{text}\n\n{format_context(items)}"
