"""Which provider, model and configuration the completion server uses, and where they came from.

The server never sees `%ernie --login` (that key lives in a kernel): it reads its own process environment and
the `.env` file in its working directory, as the rest of the package does (client/config.py). Nothing from the
browser takes part: the provider, base URL, model and key are the server's alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..client.config import environment, resolve_config
from ..client.errors import ConfigurationError

__all__ = ["COMPLETION_MODEL_VAR", "DEFAULT_COMPLETION_MODELS", "CompletionSettings", "completion_settings",
           "ready_message"]

COMPLETION_MODEL_VAR = "ERNIE_COMPLETION_MODEL"

#: ERNIE-Speed-128K on Baidu's own surfaces: a completion is sent at every pause in typing, so it must answer
#: fast and cost little. Speed has no thinking phase to wait through (models.py: thinking and always_thinks
#: off), it is served under this name on Qianfan v2, v1 (endpoint ``ernie-speed-128k``) and AI Studio
#: (docs/ernie-wire.md §2.1, §3), and it is Baidu's low-latency, low-price tier, unlike 4.5-Turbo. Other
#: surfaces (a self-hosted server, the offline model, a cassette) keep the model they are configured with.
DEFAULT_COMPLETION_MODELS = {"qianfan": "ernie-speed-128k", "qianfan-v1": "ernie-speed-128k",
                             "aistudio": "ernie-speed-128k"}


@dataclass(frozen=True, slots=True)
class CompletionSettings:
    """What `GET …/completion/status` shows (never a key) and what the client is made from."""

    provider: str | None
    model: str | None
    #: where the configuration came from: "environment", ".env in /path", or the offline model
    source: str
    ready: bool
    message: str

    def public(self) -> dict[str, object]:
        return {"provider": self.provider, "model": self.model, "source": self.source, "ready": self.ready,
                "message": self.message}


def _source(names: list[str], cwd: Path, environ: Mapping[str, str]) -> str:
    """"environment" when every variable that chose the configuration is in the process environment, else the
    `.env` file that supplied one."""
    if all(n in environ for n in names):
        return "environment"
    return f".env in {cwd}"


def _deciding_vars(provider: str, credential_source: str | None, env: Mapping[str, str]) -> list[str]:
    """The variables that chose the provider and its credentials (names only)."""
    names = [n for n in ("ERNIE_PROVIDER", COMPLETION_MODEL_VAR) if n in env]
    if credential_source:
        names += [part for part in credential_source.replace("/", " ").split() if part.isupper() and part in env]
    base = {"qianfan": "QIANFAN_BASE_URL", "qianfan-v1": "QIANFAN_V1_BASE_URL", "aistudio": "AISTUDIO_BASE_URL",
            "openai": "ERNIE_BASE_URL", "local": "ERNIE_LOCAL_MODEL"}.get(provider)
    if base and base in env:
        names.append(base)
    return names


def completion_settings(cwd: str | os.PathLike[str] | None = None) -> CompletionSettings:
    """Resolve the completion configuration of a server started in ``cwd`` (default: the working directory)."""
    where = Path(cwd or os.getcwd()).resolve()
    environ = os.environ
    env = environment(where)
    wanted = env.get(COMPLETION_MODEL_VAR) or None
    try:
        config = resolve_config(model=wanted, env=env)
    except ConfigurationError as err:
        message = (f"服务器未配置补全模型 / the Jupyter server has no completion model: set the variables below in "
                   f"the server's environment or in {where / '.env'} and restart it (a key set with "
                   f"%ernie --login lives in the kernel and does not reach the server).\n{err.message}")
        return CompletionSettings(None, None, f"environment and .env in {where}", False, message)
    model = wanted or DEFAULT_COMPLETION_MODELS.get(config.provider) or config.model
    if config.provider == "local":
        source = "offline model (no key set / 未设置密钥，使用离线模型)"
        if any(n in env for n in ("ERNIE_PROVIDER", "ERNIE_LOCAL_MODEL", COMPLETION_MODEL_VAR)):
            source += f"; settings from {_source(_deciding_vars('local', None, env), where, environ)}"
    else:
        source = _source(_deciding_vars(config.provider, config.credential_source, env), where, environ)
    return CompletionSettings(config.provider, model, source, True, ready_message(config.provider, model))


def ready_message(provider: str, model: str | None) -> str:
    return f"就绪 / ready: {provider}, {model or 'its default model'}"
