"""What an @-mention of a notebook value sends to the model, and the list the @ menu offers.

* `list_variables` — the user's variables (and ``error``, ``cell``, ``In[n]``, ``Out[n]``) for the @ list;
* `find_mentions` — which ``@name`` in a ``%%ernie`` prompt are mentions.

Nothing here imports the widget or the magics (they use this package).
"""

from __future__ import annotations

from .errors import MentionError
from .mentions import find_mentions
from .variables import list_variables

__all__ = ["MentionError", "find_mentions", "list_variables"]
