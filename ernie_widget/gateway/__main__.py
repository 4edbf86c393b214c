"""`python -m ernie_widget.gateway …`: the same as `ernie-widget serve …`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
