"""Faults a test can switch on and off: a loopback TCP proxy in front of a real server that
passes bytes, refuses connections (down) or holds every byte (hung). Given a server-side
``ssl.SSLContext`` it terminates TLS: a plaintext server seen through TLS."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Iterator

from edml.local.processes import free_port

__all__ = ["TcpProxy", "proxy_to"]

_TICK_S = 0.05  # seconds between checks of the mode and the stop flag


class TcpProxy:
    """127.0.0.1:``port`` forwards to 127.0.0.1:``target``; ``down()``, ``hang()`` and
    ``restore()`` change what a client sees, for connections open and new."""

    def __init__(self, target: int, tls: ssl.SSLContext | None = None,
                 port: int | None = None) -> None:
        self.target, self.port, self._tls = target, port or free_port(), tls
        self._mode = "pass"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._listen()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(_TICK_S)
        self._listener = listener

    def down(self) -> None:
        """Connection refused, and every open connection cut."""
        with self._lock:
            self._mode = "down"
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()
            self._conns.clear()

    def hang(self) -> None:
        """Connections accepted, bytes held: a server that stopped answering."""
        with self._lock:
            self._mode = "hang"

    def restore(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listen()
            self._mode = "pass"

    def close(self) -> None:
        self._stop.set()
        self.down()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                self._stop.wait(_TICK_S)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._tls is not None:
                threading.Thread(target=self._handshake, args=(client,), daemon=True).start()
                continue
            self._connect(client)

    def _handshake(self, client: socket.socket) -> None:
        assert self._tls is not None
        try:
            client.settimeout(10)
            wrapped = self._tls.wrap_socket(client, server_side=True)
            wrapped.settimeout(None)
        except (OSError, ssl.SSLError):
            client.close()
            return
        self._connect(wrapped)

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns += [client, upstream]
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        with a, b:
            while not self._stop.is_set() and self._mode != "down":
                if self._mode == "hang":
                    self._stop.wait(_TICK_S)
                    continue
                try:
                    readable = [s for s in (a, b)
                                if isinstance(s, ssl.SSLSocket) and s.pending()]
                    if not readable:
                        readable, _, _ = select.select([a, b], [], [], _TICK_S)
                    for source in readable:
                        data = source.recv(65536)
                        if not data:
                            return
                        (b if source is a else a).sendall(data)
                except (OSError, ValueError):
                    return


@contextlib.contextmanager
def proxy_to(port: int, tls: ssl.SSLContext | None = None,
             listen: int | None = None) -> Iterator[TcpProxy]:
    proxy = TcpProxy(port, tls, listen)
    try:
        yield proxy
    finally:
        proxy.close()
