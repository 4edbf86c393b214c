"""The completion service of one Jupyter server: its settings, its one client, and one completion's stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..client import AsyncErnie, ErnieError
from ..client.redact import redact
from .clean import clean_completion
from .config import CompletionSettings, completion_settings, ready_message
from .prompt import DEFAULT_BUDGETS, Budgets, build_prompt

__all__ = ["CompletionRequest", "CompletionService"]

logger = logging.getLogger("ernie_widget.completion")

#: a completion finishes a line or a block, and a short answer is a fast one
MAX_TOKENS = 128
#: low, so the same context gives much the same suggestion; ERNIE takes temperature in (0, 1]
TEMPERATURE = 0.2
#: the longest completion kept, whatever the server sends (each update re-cleans the whole text)
MAX_CHARS = 2000
#: ghost text is wanted now or not at all: one retry (a stale pooled connection), never a long backoff chain
MAX_RETRIES = 1
#: seconds to the first byte; JupyterLab's own provider `timeout` setting usually gives up sooner
TIMEOUT = 30.0


class CompletionRequest(BaseModel):
    """The only fields the browser may send. Anything else (a base URL, a model, a key) is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prefix: str
    suffix: str = ""
    language: str = "python"
    cell_type: Literal["code", "markdown"] = "code"
    context: list[str] = []


class CompletionService:
    """Holds the server's one `AsyncErnie` (made at load, closed at shutdown) and streams completions."""

    def __init__(self, settings: CompletionSettings | None = None, budgets: Budgets = DEFAULT_BUDGETS) -> None:
        self.settings = settings or completion_settings()
        self.budgets = budgets
        self.client: AsyncErnie | None = None
        if self.settings.ready:
            try:
                self.client = AsyncErnie(self.settings.provider, model=self.settings.model, timeout=TIMEOUT,
                                         max_retries=MAX_RETRIES)
            except ErnieError as err:
                self.settings = replace(self.settings, ready=False, message=self.redact(err.message))
            else:
                # the offline model and a cassette know their model name only once the client has it
                model = self.client.model
                self.settings = replace(self.settings, model=model, message=ready_message(self.client.provider, model))

    def redact(self, text: str) -> str:
        """``text`` without this server's secrets or anything shaped like a key."""
        return redact(text, self.client.config.secrets if self.client is not None else ())

    async def complete(self, request: CompletionRequest) -> AsyncIterator[tuple[str, bool]]:
        """``(text so far, done)`` pairs: the whole cleaned completion at each change, then the final text.

        Closing this generator (or cancelling its consumer) closes the upstream request at once."""
        if self.client is None:
            raise RuntimeError("not configured")
        prompt = build_prompt(request.prefix, request.suffix, language=request.language,
                              cell_type=request.cell_type, context=request.context, budgets=self.budgets)
        raw, shown = "", ""
        async with self.client.stream(prompt.user, system=prompt.system, max_tokens=MAX_TOKENS,
                                      temperature=TEMPERATURE) as stream:
            async for event in stream:
                if event.type != "text" or not event.text:
                    continue  # a thinking model's reasoning is not ghost text
                raw += event.text
                if len(raw) > MAX_CHARS:  # a server that ignores max_tokens: stop reading (and paying for) it
                    raw = raw[:MAX_CHARS]
                    break
                text = self.redact(clean_completion(raw, request.prefix, request.suffix))
                if text != shown:
                    shown = text
                    yield text, False
        # a model that repeats a key it saw (or made up one of the server's) must not put it on screen
        yield self.redact(clean_completion(raw, request.prefix, request.suffix, final=True)), True

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
