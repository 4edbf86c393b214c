"""The gateway over TLS (a real `ernie-widget serve` process with a certificate), and JWTs verified against a JWKS
URL whose keys rotate while the gateway runs (no restart)."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ernie_widget.gateway import GatewaySettings
from ernie_widget.gateway.testing import GatewayProcess, gateway_for
from ernie_widget.testing import ErnieSimulator

pytestmark = pytest.mark.timeout(90)

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


# -- TLS ----------------------------------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_serve_speaks_https_with_the_given_certificate(ernie_simulator: ErnieSimulator, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    env = ernie_simulator.env("qianfan")
    with GatewayProcess(["--no-auth", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                         "--keys", str(tmp_path / "k.sqlite3")], env=env) as gw:
        base = f"https://127.0.0.1:{gw.port}"
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=context, timeout=20) as client:
            assert client.get(base + "/healthz").json()["status"] == "ok"
            r = client.post(base + "/v1/chat/completions", json=CHAT)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        with httpx.Client(timeout=5) as plain, pytest.raises(httpx.HTTPError):  # no clear text on the TLS port
            plain.get(f"http://127.0.0.1:{gw.port}/healthz")
        assert "https://127.0.0.1" in gw.output()


def test_tls_needs_both_files_that_exist(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    for kwargs in ({"ssl_certfile": cert}, {"ssl_certfile": cert, "ssl_keyfile": tmp_path / "missing.pem"}):
        with pytest.raises(ValueError):
            GatewaySettings(no_auth=True, **kwargs).validate()  # type: ignore[arg-type]


# -- JWKS ---------------------------------------------------------------------------------------------------


class _JwksServer:
    """A JWKS document on 127.0.0.1 that the test changes while the gateway runs; counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def jwks() -> Iterator[_JwksServer]:
    server = _JwksServer()
    yield server
    server.close()


def _rsa(kid: str) -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "alg": "RS256", "use": "sig"}


def _token(private: Any, kid: str, sub: str = "dana", alg: str = "RS256") -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 120}, private, algorithm=alg, headers={"kid": kid})


def _ask(gw: Any, token: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"}, json=CHAT,
                      timeout=20)


def _until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_jwks_keys_rotate_without_a_restart(ernie_simulator: ErnieSimulator, jwks: _JwksServer) -> None:
    key_a, jwk_a = _rsa("a")
    key_b, jwk_b = _rsa("b")
    jwks.keys = [jwk_a]
    with gateway_for(ernie_simulator, jwks_url=jwks.url, jwks_refresh=10) as gw:
        keys = gw.gateway.auth.jwks
        keys.min_interval = 0.2  # rotation is noticed within the sweeper's tick instead of 10 s, for the test
        assert jwks.fetches == 1  # fetched at start, before the first request
        assert _ask(gw, _token(key_a, "a")).status_code == 200

        r = _ask(gw, _token(key_b, "b"))  # signed by a key the provider has not published yet
        assert r.status_code == 401 and r.json()["error"]["code"] == "unknown_key_id"
        jwks.keys = [jwk_a, jwk_b]  # the provider publishes the new key
        assert _until(lambda: _ask(gw, _token(key_b, "b")).status_code == 200)

        jwks.keys = [jwk_b]  # and retires the old one
        keys.refresh = 0.2
        assert _until(lambda: _ask(gw, _token(key_a, "a")).status_code == 401)
        assert _ask(gw, _token(key_b, "b")).status_code == 200

        # made-up key ids do not make the gateway hammer the provider
        keys.refresh, keys.min_interval = 3600, 10
        before = jwks.fetches
        for i in range(20):
            assert _ask(gw, _token(key_b, f"made-up-{i}")).json()["error"]["code"] == "unknown_key_id"
        time.sleep(0.5)
        assert jwks.fetches - before <= 1


def test_jwks_refuses_symmetric_keys_missing_kids_and_algorithm_confusion(ernie_simulator: ErnieSimulator,
                                                                           jwks: _JwksServer) -> None:
    key_a, jwk_a = _rsa("a")
    secret = "s" * 40
    oct_key = {"kty": "oct", "kid": "s", "k": jwt.utils.base64url_encode(secret.encode()).decode(), "alg": "HS256"}
    jwks.keys = [jwk_a, oct_key]
    public_pem = key_a.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    with gateway_for(ernie_simulator, jwks_url=jwks.url) as gw:
        assert _ask(gw, _token(key_a, "a")).status_code == 200
        # a symmetric key in the published set is ignored: anyone who read the set could sign with it
        assert _ask(gw, _token(secret, "s", alg="HS256")).json()["error"]["code"] == "unknown_key_id"
        no_kid = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, key_a, algorithm="RS256")
        assert _ask(gw, no_kid).json()["error"]["code"] == "invalid_token"
        # HS256 "signed" with the RSA public key, naming the RSA key: refused (the key fixes the algorithm)
        assert _ask(gw, _forge_hs256(public_pem, "a")).status_code == 401


def _forge_hs256(secret: bytes, kid: str) -> str:
    """An HS256 token whose HMAC key is ``secret`` (PyJWT refuses PEM-looking HMAC keys, so sign by hand)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps({"sub": "x", "exp": int(time.time()) + 60}).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_a_jwks_url_must_be_https_or_loopback() -> None:
    for url in ("http://idp.example.com/jwks.json", "ftp://127.0.0.1/jwks", "https:///nohost"):
        with pytest.raises(ValueError):
            GatewaySettings(jwks_url=url).validate()
    GatewaySettings(jwks_url="https://idp.example.com/.well-known/jwks.json").validate()
    with pytest.raises(ValueError):
        GatewaySettings(jwks_url="https://idp.example.com/jwks", jwt_secret="x" * 32).validate()
