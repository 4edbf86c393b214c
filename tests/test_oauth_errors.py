"""A rejected Qianfan v1 AK/SK says why, in both languages, and where to look.

Baidu's OAuth endpoint answers a wrong Secret Key with
``{"error": "invalid_client", "error_description": "Client authentication failed"}`` (docs/ernie-wire.md §2.2); the
message used to keep only ``invalid_client``. Checked against the simulator's `/oauth/2.0/token` over a real socket.
"""

from __future__ import annotations

import json

import pytest

from ernie_widget.client import AuthenticationError
from ernie_widget.testing import ErnieSimulator

try:  # tests/ may or may not be a package
    from tests.client_support import MODES, collect
except ImportError:
    from client_support import MODES, collect  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(60)

BAD_SECRET = "bad-secret-key-0123456789abcdef"  # the simulator rejects a secret containing "bad"


@pytest.mark.parametrize("mode", MODES)
def test_a_rejected_secret_key_names_the_reason_the_code_and_what_to_check(ernie_simulator: ErnieSimulator,
                                                                          mode: str) -> None:
    out = collect(ernie_simulator, mode, "qianfan-v1", secret_key=BAD_SECRET, max_retries=2)

    # the simulator answered as Baidu does: HTTP 200 and the OAuth error body
    (oauth,) = [r for r in ernie_simulator.requests if r.path == "/oauth/2.0/token"]
    assert oauth.status == 200 and oauth.response_body is not None
    assert json.loads(oauth.response_body) == {"error": "invalid_client",
                                               "error_description": "Client authentication failed"}
    assert ernie_simulator.chat_requests == []  # no token, no chat request; and not retried

    err = out.error
    assert isinstance(err, AuthenticationError)
    assert err.code == "invalid_client"
    message = err.message
    chinese, english = message.split(" / ", 1)
    assert "Client authentication failed (invalid_client)" in chinese and "QIANFAN_SK" in chinese
    assert english.startswith("the Qianfan AK/SK were rejected: Client authentication failed (invalid_client). ")
    # actionable: which key is wrong, as Baidu's SDK reads the description, and where the keys come from
    assert "QIANFAN_SK (the Secret Key) does not match QIANFAN_AK" in english
    assert "https://console.bce.baidu.com/qianfan/ais/console/applicationConsole/application" in english
    assert BAD_SECRET not in str(err)
