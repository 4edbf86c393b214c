"""Qianfan IAM credentials: the BCE v1 signer, AK/SK → v2 bearer token, ranking, and the QIANFAN_BASE_URL trap.

The signer is compared with Baidu's own (`baidubce.auth.bce_v1_signer.sign`, the dev extra's bce-python-sdk): the
only check of the signature that does not come from this project. Everything else runs against the simulator over
real sockets, whose IAM route recomputes the signature itself (ernie_widget/testing/_iam.py).
"""

from __future__ import annotations

import re
import time

import httpx2
import pytest

from ernie_widget.client.iam import BEARER_TOKEN_PATH, canonical_time, sign
from ernie_widget.testing import ErnieSimulator
from ernie_widget.testing._iam import SIM_ACCESS_KEY, SIM_SECRET_KEY

#: 2024-11-28T06:09:57Z, the createTime of Baidu's documented example answer
FIXED_TS = 1732774197


# -- the signer against Baidu's ---------------------------------------------------------------------

SIGNER_CASES = {
    # the token request as this package sends it
    "bearer-token request": ("GET", BEARER_TOKEN_PATH, {"expireInSeconds": "43200"},
                             {"Host": "iam.bj.baidubce.com", "x-bce-date": canonical_time(FIXED_TS)},
                             ["host", "x-bce-date"], 300),
    # a query needing every encoding rule: unicode, space (%20, not +), ~ kept, reserved characters, no value
    "query encoding": ("GET", "/v1/BCE-BEARER/token",
                       {"expireInSeconds": "1800", "名字": "值 with space~tilde", "a+b": "c/d?e&f=g", "empty": "",
                        "Upper": "MiXeD"},
                       {"Host": "127.0.0.1:8866", "x-bce-date": canonical_time(FIXED_TS)}, ["host", "x-bce-date"], 1800),
    # headers: trimmed values, an unlisted x-bce-* header (always signed), an empty one (never), an unsigned one
    "headers": ("POST", "/v2/app/conversation",
                {}, {"Host": "qianfan.baidubce.com", "Content-Type": "application/json; charset=utf-8",
                     "x-bce-date": canonical_time(FIXED_TS), "X-Bce-Request-Id": "  id-42  ", "x-bce-empty": "",
                     "User-Agent": "not signed/1.0"}, ["content-type", "host", "x-bce-date"], 300),
    # a path with characters to encode (slashes kept), and no named headers: BCE's default set
    "path and default headers": ("PUT", "/v1/资源/a b~c(1)", {"k": "v"},
                                 {"Host": "iam.bj.baidubce.com", "Content-Length": "12", "x-bce-date": "x"}, None, 60),
}


@pytest.mark.parametrize("case", list(SIGNER_CASES))
def test_signer_equals_baidus_own_signer(case: str) -> None:
    bce_signer = pytest.importorskip("baidubce.auth.bce_v1_signer")
    from baidubce import utils
    from baidubce.auth.bce_credentials import BceCredentials

    method, path, params, headers, signed, expiration = SIGNER_CASES[case]
    ak, sk = "ak" + "0123456789abcdef" * 2, "sk 秘密/+=~" + "fedcba9876543210" * 2
    ours = sign(ak, sk, method, path, params, headers, timestamp=FIXED_TS, expiration=expiration,
                signed_headers=signed)
    # Baidu's HTTP client hands its signer the path already encoded (utils.append_uri); a list, not a set, of
    # headers to sign, so its signedHeaders come out in our (sorted) order
    theirs = bce_signer.sign(
        BceCredentials(ak, sk), method.encode(), utils.normalize_string(path, False),
        {k.encode(): v for k, v in headers.items()}, {k.encode(): v for k, v in params.items()},
        timestamp=FIXED_TS, expiration_in_seconds=expiration,
        headers_to_sign=[h.encode() for h in signed] if signed else None,
    ).decode()
    assert ours == theirs
    assert re.fullmatch(r"bce-auth-v1/[^/]+/2024-11-28T06:09:57Z/\d+/[a-z;-]*/[0-9a-f]{64}", ours)


def test_the_simulator_verifies_the_signature_and_its_age(ernie_simulator: ErnieSimulator) -> None:
    url = ernie_simulator.url + BEARER_TOKEN_PATH
    host = url.split("/")[2]

    def get(*, timestamp: float, secret: str = SIM_SECRET_KEY, sent: str = "600") -> httpx2.Response:
        headers = {"Host": host, "x-bce-date": canonical_time(timestamp)}
        headers["Authorization"] = sign(SIM_ACCESS_KEY, secret, "GET", BEARER_TOKEN_PATH,
                                        {"expireInSeconds": "600"}, headers, timestamp=timestamp,
                                        signed_headers=["host", "x-bce-date"])
        return httpx2.get(url, params={"expireInSeconds": sent}, headers=headers)

    good = get(timestamp=time.time())
    assert good.status_code == 200 and good.json()["token"].startswith("bce-v3/ALTAK-")
    assert good.json()["status"] == "enable" and good.json()["expireTime"] > good.json()["createTime"]
    for response, code in ((get(timestamp=time.time() - 3600), "RequestExpired"),
                           (get(timestamp=time.time(), secret="another-secret-key"), "SignatureDoesNotMatch"),
                           (get(timestamp=time.time(), sent="2592000"), "SignatureDoesNotMatch")):  # tampered query
        assert response.status_code == 401
        assert response.json()["code"] == code and response.headers["x-bce-error-code"] == code
        assert "requestId" in response.json()
    assert ernie_simulator.iam.tokens_issued == 1
