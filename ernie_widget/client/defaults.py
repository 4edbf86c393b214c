"""The client's defaults and limits, in one place (the client, the sync wrapper, batch and the magics read them)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONNECT_TIMEOUT", "DEFAULT_IAM_BASE_URL", "MAX_BODY_BYTES", "MAX_CONCURRENCY", "MAX_RETRIES", "MAX_STREAM_SECONDS", "RETRY_AFTER_CAP", "RETRY_BASE",
    "RETRY_CAP", "RETRY_OVERLOAD_BASE", "STREAM_IDLE_TIMEOUT", "TIMEOUT", "USER_AGENT",
]

USER_AGENT: Final = "ernie-widget/0.1"

#: seconds to connect and receive the first byte of an answer
TIMEOUT: Final = 60.0
#: seconds to open the connection (TCP and TLS): a dead or unreachable host fails after this, not after TIMEOUT
CONNECT_TIMEOUT: Final = 10.0
#: seconds without data before a started stream fails
STREAM_IDLE_TIMEOUT: Final = 60.0
#: the longest answer, in seconds
MAX_STREAM_SECONDS: Final = 600.0
#: retries of a request that failed before any text reached the caller (429, 5xx, connection errors)
MAX_RETRIES: Final = 2
#: requests in flight per client and event loop
MAX_CONCURRENCY: Final = 8

#: backoff (retry.py): after a broken connection the first retry waits RETRY_BASE / 2 to RETRY_BASE seconds, the
#: bound doubling per retry; after a rate limit or an overload at least RETRY_OVERLOAD_BASE seconds (Baidu's SDK
#: waits 1–2 s), doubling per retry; never more than RETRY_CAP, except that a Retry-After header is honoured up to
#: RETRY_AFTER_CAP
RETRY_BASE: Final = 0.5
RETRY_OVERLOAD_BASE: Final = 1.0
RETRY_CAP: Final = 8.0
RETRY_AFTER_CAP: Final = 120.0

#: a whole (unstreamed or error) response body may not exceed 4 MiB; one streamed event 1 MiB (lines.py)
MAX_BODY_BYTES: Final = 4 * 1024 * 1024

#: Baidu IAM, which mints Qianfan v2 bearer tokens for an access key pair (iam.py; docs/ernie-wire.md §11)
DEFAULT_IAM_BASE_URL: Final = "https://iam.bj.baidubce.com"
