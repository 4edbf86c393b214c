"""What an @-mention of a notebook value sends to the model, and the list the @ menu offers.

* `list_variables` — the user's variables (and ``error``, ``cell``, ``In[n]``, ``Out[n]``) for the @ list;
* `describe` — one mention rendered as a bounded `Mention` (a `ContextItem` and image parts);
* `fit_to_budget` / `format_context` — several mentions cut to a turn's token budget, and the block sent;
* `find_mentions` — which ``@name`` in a ``%%ernie`` prompt are mentions.

Nothing here imports the widget or the magics (they use this package); see docs/context.md for what each type
sends and why.
"""

from __future__ import annotations

from .budget import fit_to_budget, format_context
from .errors import MentionError
from .mentions import find_mentions
from .render import Mention, describe
from .variables import list_variables

__all__ = ["Mention", "MentionError", "describe", "find_mentions", "fit_to_budget", "format_context", "list_variables"]
