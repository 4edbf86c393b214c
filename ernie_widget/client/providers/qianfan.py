"""Qianfan v2: OpenAI-compatible, `Authorization: Bearer bce-v3/ALTAK-…` (docs/ernie-wire.md §1).

The bearer is an API key, or a token minted from IAM AK/SK (``QIANFAN_ACCESS_KEY``/``QIANFAN_SECRET_KEY``,
docs/ernie-wire.md §11) and refreshed before it expires or once when the service answers ``invalid_iam_token``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..iam import DEFAULT_IAM_BASE_URL, BearerTokenSource
from .chat_completions import OpenAIStyleProvider

if TYPE_CHECKING:
    import httpx2

    from ..config import ProviderConfig

#: the v2 error code for a bearer token the service no longer takes (an expired or revoked IAM token)
IAM_TOKEN_REFUSED = "invalid_iam_token"


class QianfanV2Provider(OpenAIStyleProvider):
    name = "qianfan"
    max_tokens_field = "max_completion_tokens"
    ernie_sampling = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._iam: BearerTokenSource | None = None
        if config.iam:
            self._iam = BearerTokenSource(config.api_key or "", config.secret_key or "",
                                          config.extra.get("QIANFAN_IAM_BASE_URL") or DEFAULT_IAM_BASE_URL)

    def secrets(self) -> tuple[str, ...]:
        token = self._iam.token if self._iam is not None else None
        return (*self.config.secrets, *((token,) if token else ()))

    async def authenticate(self, http: httpx2.AsyncClient, *, force: bool = False) -> None:
        if self._iam is not None:
            await self._iam.get(http, force=force)

    def needs_reauth(self, code: Any) -> bool:
        # an API key that is refused stays refused; only a minted token can be replaced by a fresh one
        return self._iam is not None and code == IAM_TOKEN_REFUSED

    def headers(self) -> dict[str, str]:
        if self._iam is None:
            return super().headers()
        # the AK is not a bearer: before the first token (authenticate runs first) send none rather than it
        token = self._iam.token
        return {"Authorization": f"Bearer {token}"} if token else {}
