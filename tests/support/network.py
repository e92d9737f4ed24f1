"""No test reaches the network: sockets may connect only to loopback (or Unix) addresses.

Loaded as a pytest plugin from tests/conftest.py. A connection elsewhere raises
`NetworkBlocked` naming the address, so a test that would need the Internet fails at once
instead of hanging or depending on the machine it runs on.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest


class NetworkBlocked(OSError):
    """A test tried to connect beyond loopback."""


def is_loopback(address: Any) -> bool:
    """True for Unix sockets and loopback hosts; anything else is the network."""
    if not isinstance(address, tuple):  # AF_UNIX path (str or bytes)
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:  # a host name other than localhost
        return False


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not is_loopback(address):
        raise NetworkBlocked(f"tests may not reach the network (connect to {address!r})")
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not is_loopback(address):
        raise NetworkBlocked(f"tests may not reach the network (connect to {address!r})")
    return _connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = _connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
