"""Secret redaction: the one place that turns keys and tokens into ``***``.

Used by the client's logging and exceptions, the magics and prompt interpolation. Two mechanisms:

* exact values: every secret the client resolves is registered with :func:`register_secret`;
  :func:`redact` always replaces registered values (and any extra ``secrets`` passed in);
* shapes: key-shaped strings are recognised even if nobody registered them (a key pasted into a
  prompt, a token echoed in an error body, an ``access_token=`` in a logged v1 URL).

The shape rules keep a short, non-secret prefix visible (``bce-v3/ALTAK-***``, ``Bearer ***``,
``access_token=***``) so a redacted log line still says *which* credential was involved.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "REDACTED_LOGGERS",
    "RedactingFilter",
    "forget_secret",
    "install_log_redaction",
    "redact",
    "register_secret",
]

MASK = "***"
#: Shorter values are not treated as secrets: replacing "abc" everywhere would shred ordinary text.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_registry: set[str] = set()
# Compiled alternation of the registered values, rebuilt lazily after each change.
_registry_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that every later :func:`redact` call masks it (thread-safe)."""
    global _registry_pattern
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value not in _registry:
            _registry.add(value)
            _registry_pattern = None


def forget_secret(value: str) -> None:
    """Drop a value registered with :func:`register_secret` (e.g. a rotated token)."""
    global _registry_pattern
    with _lock:
        if value in _registry:
            _registry.discard(value)
            _registry_pattern = None


def _exact_pattern(extra: Iterable[str]) -> re.Pattern[str] | None:
    global _registry_pattern
    values = {s for s in extra if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
    with _lock:
        if not values:
            if _registry_pattern is None and _registry:
                _registry_pattern = _compile_alternation(_registry)
            return _registry_pattern
        values |= _registry
    return _compile_alternation(values)


def _compile_alternation(values: Iterable[str]) -> re.Pattern[str]:
    # Longest first, so a secret that contains another one is masked as a whole.
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered))


# ---------------------------------------------------------------------------------------------------
# Shape rules. Each is (pattern, replacement); applied in order after the exact values.
# Character class of token-ish values (URL-safe base64, hex, dots, dashes).
_TOK = r"[A-Za-z0-9._~+/=-]"

_SHAPES: list[tuple[re.Pattern[str], str]] = [
    # Qianfan v2 API key / BearerToken: bce-v3/ALTAK-<id>/<secret>. Keep the kind, hide id and secret.
    (re.compile(r"\b(bce-v3/[A-Za-z]+-)[A-Za-z0-9]+(?:/[A-Za-z0-9]+)?"), r"\1" + MASK),
    # BCE IAM request signature: bce-auth-v1/{ak}/{ts}/{expire}/{headers}/{hmac}.
    (re.compile(r"\b(bce-auth-v1/)[^\s\"',]+"), r"\1" + MASK),
    # Authorization header values. A bce-v3 key is already masked above (its prefix stays readable);
    # a token must contain a non-letter so that prose like "Bearer authentication" survives.
    (
        re.compile(r"\b(Bearer\s+)(?!bce-v3/)(?=" + _TOK + r"*[0-9._~+/=-])" + _TOK + r"{8,}"),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)(\bAuthorization[\"']?\s*[:=]\s*[\"']?(?:token|Basic)\s+)[^\s\"',]{6,}"), r"\1" + MASK),
    # Query parameters and form fields of the v1 OAuth flow (and common key parameter names).
    (
        re.compile(
            r"(?i)([?&;]|\b)((?:access_token|refresh_token|client_secret|client_id|api_key|apikey|"
            r"secret_key|session_key|session_secret)=)[^&\s\"'#<>]+"
        ),
        r"\1\2" + MASK,
    ),
    # The same names as JSON fields: {"access_token": "24.…"}.
    (
        re.compile(
            r"(?i)(\"(?:access_token|refresh_token|client_secret|api_key|apikey|secret_key|session_key|"
            r"session_secret|token)\"\s*:\s*\")[^\"*]{6,}(\")"
        ),
        r"\1" + MASK + r"\2",
    ),
    # Baidu OAuth access tokens: 24.<32 hex>.<expires>.<timestamp>.<n>-<appid>.
    (re.compile(r"\b24\.[0-9a-f]{16,}(?:[0-9A-Za-z.-]*[0-9A-Za-z])?"), "24." + MASK),
    # OpenAI-style keys (sk-…, sk-proj-…), also used by OpenAI-compatible gateways.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "sk-" + MASK),
    # AK / SK (and *_KEY / *_SECRET / *_TOKEN) assignments: QIANFAN_AK=…, ak: "…", AISTUDIO_ACCESS_TOKEN=….
    # The atomic group + (?!\*) skip values an earlier rule already masked (api_key=bce-v3/ALTAK-***).
    (
        re.compile(
            r"(?i)\b((?:[A-Z0-9_]*_)?(?:AK|SK|ACCESS_KEY|SECRET_KEY|API_KEY|SECRET|ACCESS_TOKEN|TOKEN|PASSWORD)"
            r"[\"']?\s*[=:]\s*[\"']?)(?=[A-Za-z0-9._/+=-]*[0-9])(?>[A-Za-z0-9._/+=-]{12,})(?!\*)"
        ),
        r"\1" + MASK,
    ),
]

# A cheap test for the last rule: a key-ish name followed by = or : (the rule itself costs ~1 ms a line).
_ASSIGNMENT_HINT = re.compile(r"(?i)(?:ak|sk|key|secret|token|password)[\"']?\s*[=:]")

# Two key-like strings side by side (an AK/SK or API key/secret key pair pasted together). Each has
# 24–32 alphanumerics (a v1 API key has 24, secret keys and IAM AK/SK 32; a 40-char SHA-1 is left
# alone) with at least one digit and one letter, so words and a lone hash stay readable.
_KEYLIKE = r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{24,32}"
_PAIR = re.compile(
    r"(?<![A-Za-z0-9])" + _KEYLIKE + r"(?P<sep>[\s,;:|/]{1,3})" + _KEYLIKE + r"(?![A-Za-z0-9])"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with registered/given secret values and key-shaped strings replaced by ``***``.

    Values shorter than :data:`MIN_SECRET_LENGTH` characters are never treated as secrets.
    """
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    exact = _exact_pattern(secrets)
    if exact is not None:
        text = exact.sub(MASK, text)
    for pattern, replacement in _SHAPES[:-1]:
        text = pattern.sub(replacement, text)
    # the assignment rule is the slow one (it tries every word); run it only where an assignment can be
    if _ASSIGNMENT_HINT.search(text):
        text = _SHAPES[-1][0].sub(_SHAPES[-1][1], text)
    return _PAIR.sub(lambda m: MASK + m.group("sep") + MASK, text)


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the formatted message, exception text and stack of each record.

    It formats ``record.msg % record.args`` itself and stores the redacted result with ``args``
    cleared, so handlers further down never see the raw values.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the caller's bug; still never leak args
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is redacted once here.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


#: Loggers that can carry credentials: httpx2 logs full request URLs (v1 puts ``access_token`` in the
#: query string) and httpcore2 traces requests; our own package logs client activity.
REDACTED_LOGGERS = ("httpx2", "httpcore2", "ernie_widget")
# httpcore2 logs through child loggers; a filter on a parent does not apply to records that only
# propagate through it, so the known children get their own filter.
_KNOWN_CHILDREN = (
    "httpcore2.connection",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.proxy",
    "httpcore2.socks",
)
_FILTER = RedactingFilter()
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Attach the redacting filter to the credential-carrying loggers and their existing children.

    Idempotent and cheap: call it again after creating new child loggers (the client does, on
    construction) so they are covered too.
    """
    with _install_lock:
        names = set(REDACTED_LOGGERS) | set(_KNOWN_CHILDREN)
        existing = list(logging.root.manager.loggerDict)
        names.update(n for n in existing if n.split(".", 1)[0] in REDACTED_LOGGERS)
        for name in names:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
