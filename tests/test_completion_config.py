"""Where the completion server's configuration comes from (ernie_widget/completion/config.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ernie_widget.client.config import local_available
from ernie_widget.completion.config import completion_settings

KEY = "bce-v3/ALTAK-configtest000/configsecret111"


@pytest.fixture(autouse=True)
def _no_completion_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ERNIE_COMPLETION_MODEL", "ERNIE_LOCAL_MODEL", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_environment_key_gives_the_fast_default_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QIANFAN_API_KEY", KEY)
    s = completion_settings(tmp_path)
    assert (s.provider, s.model, s.source, s.ready) == ("qianfan", "ernie-speed-128k", "environment", True)
    assert KEY not in repr(s) and KEY not in str(s.public())


def test_dotenv_in_the_working_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"AISTUDIO_ACCESS_TOKEN={KEY}\nERNIE_COMPLETION_MODEL=ernie-lite-8k\n")
    s = completion_settings(tmp_path)
    assert (s.provider, s.model, s.ready) == ("aistudio", "ernie-lite-8k", True)
    assert s.source == f".env in {tmp_path.resolve()}"


def test_a_self_hosted_server_keeps_its_own_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ERNIE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ERNIE_MODEL", "my-ernie")
    s = completion_settings(tmp_path)
    assert (s.provider, s.model, s.source) == ("openai", "my-ernie", "environment")


def test_nothing_configured_says_where_to_set_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ERNIE_PROVIDER", "qianfan")  # no key for it: not the offline model either
    s = completion_settings(tmp_path)
    assert not s.ready and s.provider is None
    assert str(tmp_path.resolve() / ".env") in s.message and "%ernie --login" in s.message and " / " in s.message


@pytest.mark.skipif(not local_available(), reason="the offline model (ernie-widget[local]) is not installed")
def test_no_key_means_the_offline_model(tmp_path: Path) -> None:
    s = completion_settings(tmp_path)
    assert s.provider == "local" and s.ready and s.source.startswith("offline model")


def test_a_server_without_a_model_has_no_client_and_says_why(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    from ernie_widget.completion.service import CompletionService

    monkeypatch.setenv("ERNIE_PROVIDER", "aistudio")  # chosen, but its token is missing
    monkeypatch.chdir(tmp_path)
    service = CompletionService()
    assert service.client is None and not service.settings.ready
    assert "AISTUDIO_ACCESS_TOKEN" in service.settings.message


def test_the_service_names_the_model_its_client_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ernie_widget.completion.service import CompletionService

    monkeypatch.setenv("QIANFAN_API_KEY", KEY)
    monkeypatch.setenv("ERNIE_COMPLETION_MODEL", "ernie-lite-8k")
    monkeypatch.chdir(tmp_path)
    service = CompletionService()
    try:
        assert service.client is not None and service.client.model == "ernie-lite-8k"
        assert service.settings.public()["model"] == "ernie-lite-8k" and KEY not in str(service.settings.public())
        assert KEY not in service.redact(f"the key is {KEY}")  # what error lines and completions pass through
    finally:
        asyncio.run(service.aclose())
