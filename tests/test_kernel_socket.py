"""Kernel websockets without Nagle's delay (ernie_widget/kernel_socket.py), in a real `jupyter server`.

The option is read from the server's own socket: the test finds the server end of its websocket connection in
/proc and asks the kernel for a copy of that descriptor (pidfd_getfd, Linux 5.6+; the server is our child, so
ptrace permission holds). The control is the same server with the extension disabled: Nagle stays on there.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from .processes import ShippedConfigServer

TOKEN = "kernel-socket-test-token"
SYS_PIDFD_GETFD = 438  # the same number on x86_64 and arm64

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads the server's socket through /proc")


class Server(ShippedConfigServer):
    """`jupyter server` with the shipped config file; `enabled=False` turns our kernel-socket extension off."""

    def __init__(self, root: Path, *, enabled: bool) -> None:
        self.enabled = enabled
        off = ("ernie_widget.completion",) + (() if enabled else ("ernie_widget.kernel_socket",))
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / ".rt"), "JUPYTER_DATA_DIR": str(root / ".data"),
               "ERNIE_QUIET": "1", "NO_PROXY": "127.0.0.1,localhost"}
        super().__init__(root, env, TOKEN, disabled=off)

    def start_kernel(self) -> str:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}),
                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 201, reply.read()
        kernel_id: str = json.loads(reply.read())["id"]
        conn.close()
        return kernel_id

    def channels(self, kernel_id: str) -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?token={TOKEN}",
                       open_timeout=60)


def kernel_info(ws: ClientConnection) -> dict[str, object]:
    """One request and its reply over the websocket (the legacy JSON protocol: no subprotocol asked for)."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"channel": "shell", "header": {"msg_id": msg_id, "msg_type": "kernel_info_request",
                                                       "username": "t", "session": "s", "version": "5.3"},
                        "parent_header": {}, "metadata": {}, "content": {}}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=60))
        if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "kernel_info_reply":
            return dict(msg["content"])
    raise TimeoutError("no kernel_info_reply")


def server_side_nodelay(server_pid: int, server_port: int, client_port: int) -> int:
    """TCP_NODELAY on the server's end of the connection from `client_port`, read from the server's own socket."""
    inode = _inode_of(server_port, client_port)
    fd = next(int(name) for name in os.listdir(f"/proc/{server_pid}/fd")
              if _readlink(f"/proc/{server_pid}/fd/{name}") == f"socket:[{inode}]")
    pidfd = os.pidfd_open(server_pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        assert copy >= 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(pidfd)
    with socket.socket(fileno=copy) as sock:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def _inode_of(local_port: int, remote_port: int) -> int:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            return inode
    raise LookupError(f"no socket from port {remote_port} to {local_port}")


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@pytest.fixture(scope="module", params=[True, False], ids=["extension", "control"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kernel-socket"), enabled=request.param)
    try:
        yield srv
    finally:
        srv.stop()


def test_the_kernel_websocket_sends_without_nagle_delay_only_with_the_extension(server: Server) -> None:
    kernel_id = server.start_kernel()
    with server.channels(kernel_id) as ws:
        assert kernel_info(ws)["status"] == "ok"  # open and relaying: set once open
        nodelay = server_side_nodelay(server.proc.pid, server.port, ws.socket.getsockname()[1])
    assert bool(nodelay) is server.enabled
    assert ("kernel websockets send without delay" in server.log_path.read_text()) is server.enabled
