"""Secret redaction: every key shape, the registry, and the logging filter on real loggers."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from ernie_widget.client.redact import (
    MASK,
    RedactingFilter,
    forget_secret,
    install_log_redaction,
    redact,
    register_secret,
)

V2_KEY = "bce-v3/ALTAK-XNYpvSpWTC0Qr0cB6LoZR/XLW01fwiwj1gBHiE"
OAUTH_TOKEN = "24.6c5e1ff107f0e8bcef8c46d3424a0e78.2592000.1485516651.282335-8574074"
IAM_AK = "4f2b9c1e8d7a6b5c4d3e2f1a0b9c8d7e"
IAM_SK = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
V1_API_KEY = "Bk5pQTwTMD5sj7mnG9B1AtYw"
V1_SECRET_KEY = "r2kXqLm9TzV4b7NwPe3sYh8JcU6dFa1G"


# --- shapes ------------------------------------------------------------------------------------------


def test_qianfan_v2_key_keeps_its_kind_visible():
    out = redact(f"key={V2_KEY} end")
    assert "bce-v3/ALTAK-***" in out
    assert "XNYpvSpWTC0Qr0cB6LoZR" not in out and "XLW01fwiwj1gBHiE" not in out
    assert out.endswith(" end")


def test_v2_key_assignment_keeps_the_readable_prefix():
    assert redact(f"api_key = {V2_KEY}") == "api_key = bce-v3/ALTAK-***"
    assert redact(f"QIANFAN_API_KEY={V2_KEY}") == "QIANFAN_API_KEY=bce-v3/ALTAK-***"


def test_bearer_header_with_v2_key_keeps_scheme_and_kind():
    out = redact(f"Authorization: Bearer {V2_KEY}")
    assert out == "Authorization: Bearer bce-v3/ALTAK-***"


def test_bearer_with_opaque_token():
    out = redact("headers={'Authorization': 'Bearer eyJhbGciOi.JIUzI1NiJ9.abc123'}")
    assert "eyJhbGciOi" not in out
    assert "Bearer ***" in out


def test_bearer_in_prose_is_not_redacted():
    text = "Bearer authentication sends a token in the header; the Bearer scheme is simple."
    assert redact(text) == text


def test_aistudio_token_header():
    out = redact("Authorization: token 0123456789abcdef0123456789abcdef01234567")
    assert out == "Authorization: token ***"


def test_v1_access_token_query_parameter():
    url = (
        "https://aip.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions"
        f"?access_token={OAUTH_TOKEN}&foo=bar"
    )
    out = redact(f'HTTP Request: POST {url} "HTTP/1.1 200 OK"')
    assert "access_token=***&foo=bar" in out
    assert "6c5e1ff107f0" not in out
    assert out.endswith('"HTTP/1.1 200 OK"')


def test_v1_oauth_client_credentials_in_url():
    url = (
        "https://aip.baidubce.com/oauth/2.0/token?grant_type=client_credentials"
        f"&client_id={V1_API_KEY}&client_secret={V1_SECRET_KEY}"
    )
    out = redact(url)
    assert out.endswith("grant_type=client_credentials&client_id=***&client_secret=***")


def test_bare_oauth_token():
    out = redact(f"token is {OAUTH_TOKEN}.")
    assert out == "token is 24.***."


def test_version_numbers_are_not_oauth_tokens():
    text = "Python 3.11, ERNIE 4.5, release 24.1.0 and 24.04 LTS"
    assert redact(text) == text


def test_json_token_fields():
    body = '{"refresh_token": "25.a7c83604448xxxxx-33345604", "expires_in": 2592000, "access_token": "myak.mysk"}'
    out = redact(body)
    assert '"refresh_token": "***"' in out
    assert '"access_token": "***"' in out
    assert '"expires_in": 2592000' in out


def test_openai_style_key():
    out = redact("OPENAI key sk-proj-AbCdEf0123456789GhIjKl was rejected")
    assert out == "OPENAI key sk-*** was rejected"


def test_ak_sk_assignments():
    out = redact(f"QIANFAN_AK={V1_API_KEY}\nQIANFAN_SK={V1_SECRET_KEY}\n")
    assert out == "QIANFAN_AK=***\nQIANFAN_SK=***\n"
    out = redact(f'Ernie(ak="{IAM_AK}", sk="{IAM_SK}")')
    assert IAM_AK not in out and IAM_SK not in out
    assert out == 'Ernie(ak="***", sk="***")'


def test_env_style_token_assignment():
    out = redact("export AISTUDIO_ACCESS_TOKEN=0123456789abcdef0123456789abcdef01234567")
    assert out == "export AISTUDIO_ACCESS_TOKEN=***"


def test_adjacent_ak_sk_pair_without_names():
    out = redact(f"my keys: {IAM_AK} {IAM_SK} thanks")
    assert out == "my keys: *** *** thanks"
    out = redact(f"{V1_API_KEY},{V1_SECRET_KEY}")
    assert out == "***,***"


def test_bce_iam_signature():
    sig = f"bce-auth-v1/{IAM_AK}/2024-01-01T00:00:00Z/1800/host;x-bce-date/{'ab' * 32}"
    out = redact(f"authorization: {sig}")
    assert out == "authorization: bce-auth-v1/***"


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog.",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed the bug",  # one SHA-1
        "md5 d41d8cd98f00b204e9800998ecf8427e is the empty file",  # one lone hash
        "max_tokens=1024, temperature=0.7, top_p=0.8",
        "这是一个普通的中文句子，没有任何密钥。",
        "skip-the-line and task-based sk- prefix alone",
        "internationalization localization",  # long plain words side by side
        "SK hynix and AK-47 are not keys",
    ],
)
def test_ordinary_text_is_unchanged(text):
    assert redact(text) == text


def test_empty_text():
    assert redact("") == ""


# --- exact values and the registry ---------------------------------------------------------------------


def test_explicit_secrets_are_masked():
    assert redact("pw hunter2pass here", secrets=["hunter2pass"]) == f"pw {MASK} here"


def test_short_values_are_never_secrets():
    assert redact("the cat sat", secrets=["cat", ""]) == "the cat sat"


def test_longest_secret_wins_over_its_prefix():
    out = redact("value=abcdefghijkl!", secrets=["abcdefgh", "abcdefghijkl"])
    assert out == f"value={MASK}!"


def test_registered_secret_is_masked_everywhere_until_forgotten():
    secret = "opaque-provider-secret-7"
    assert redact(f"x {secret} y") == f"x {secret} y"
    register_secret(secret)
    try:
        assert redact(f"x {secret} y") == f"x {MASK} y"
        assert redact(f"a{secret}b", secrets=["other-secret"]) == f"a{MASK}b"
    finally:
        forget_secret(secret)
    assert redact(f"x {secret} y") == f"x {secret} y"


def test_register_ignores_none_and_short_values():
    register_secret(None)
    register_secret("abc")
    assert redact("abc None") == "abc None"


def test_registry_is_thread_safe():
    values = [f"threaded-secret-{i:03d}" for i in range(200)]

    def worker(chunk):
        for v in chunk:
            register_secret(v)
            redact(f"use {v}")

    threads = [threading.Thread(target=worker, args=(values[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        text = " ".join(values)
        assert redact(text) == " ".join([MASK] * len(values))
    finally:
        for v in values:
            forget_secret(v)


# --- logging -------------------------------------------------------------------------------------------


@pytest.fixture
def captured():
    """A real handler on the root logger capturing everything at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_filter_redacts_httpx2_request_line(captured):
    install_log_redaction()
    logger = logging.getLogger("httpx2")
    logger.setLevel(logging.DEBUG)
    logger.info(
        'HTTP Request: %s %s "%s"',
        "POST",
        f"https://aip.baidubce.com/chat/completions?access_token={OAUTH_TOKEN}",
        "HTTP/1.1 200 OK",
    )
    out = captured.getvalue()
    assert "access_token=***" in out
    assert "6c5e1ff1" not in out
    assert out.startswith("httpx2 INFO HTTP Request: POST https://aip.baidubce.com/")


def test_filter_covers_httpcore2_child_loggers(captured):
    install_log_redaction()
    logging.getLogger("httpcore2.http11").debug(
        "send_request_headers headers=%r", {"authorization": f"Bearer {V2_KEY}"}
    )
    out = captured.getvalue()
    assert "bce-v3/ALTAK-***" in out
    assert "XLW01fwiwj1gBHiE" not in out


def test_filter_covers_ernie_widget_children_existing_at_install(captured):
    child = logging.getLogger("ernie_widget.client.test_child_logger")
    install_log_redaction()
    register_secret("registered-in-logging-test")
    try:
        child.debug("resolved key %s", "registered-in-logging-test")
    finally:
        forget_secret("registered-in-logging-test")
    assert "resolved key ***" in captured.getvalue()


def test_filter_redacts_exception_text(captured):
    install_log_redaction()
    logger = logging.getLogger("ernie_widget")
    try:
        raise ValueError(f"bad key {V2_KEY}")
    except ValueError:
        logger.exception("request failed")
    out = captured.getvalue()
    assert "ValueError: bad key bce-v3/ALTAK-***" in out
    assert "XLW01fwiwj1gBHiE" not in out


def test_install_is_idempotent():
    install_log_redaction()
    install_log_redaction()
    for name in ("httpx2", "httpcore2", "ernie_widget", "httpcore2.http11"):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactingFilter)]
        assert len(filters) == 1, name


def test_filter_survives_broken_format_arguments():
    record = logging.LogRecord("ernie_widget", logging.INFO, __file__, 1, "%s %s", (V2_KEY,), None)
    assert RedactingFilter().filter(record) is True
    assert "XLW01fwiwj1gBHiE" not in record.getMessage()


def test_unrelated_loggers_are_untouched(captured):
    install_log_redaction()
    logging.getLogger("some.other.library").warning("token %s", OAUTH_TOKEN)
    # Only our loggers are filtered; redacting the whole process would surprise users.
    assert OAUTH_TOKEN in captured.getvalue()
