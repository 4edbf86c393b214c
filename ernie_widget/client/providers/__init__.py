"""One module per ERNIE surface. Each builds a request and reads a chunk — nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Chunk, DirectProvider, HTTPProvider, HTTPRequest

if TYPE_CHECKING:
    from ..config import ProviderConfig

__all__ = ["Chunk", "DirectProvider", "HTTPProvider", "HTTPRequest", "make_provider"]


def make_provider(config: ProviderConfig) -> HTTPProvider | DirectProvider:
    """The provider object for a resolved configuration (local and replay are imported lazily)."""
    name = config.provider
    if name == "qianfan":
        from .qianfan import QianfanV2Provider

        return QianfanV2Provider(config)
    if name == "qianfan-v1":
        from .qianfan_v1 import QianfanV1Provider

        return QianfanV1Provider(config)
    if name == "aistudio":
        from .aistudio import AIStudioProvider

        return AIStudioProvider(config)
    if name == "openai":
        from .openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(config)
    if name == "local":
        from .local import LocalProvider

        return LocalProvider(config)
    if name == "replay":
        from .replay import ReplayProvider

        return ReplayProvider(config)
    raise ValueError(name)
