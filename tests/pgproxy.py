"""A TCP proxy to PostgreSQL that loses the answer to a COMMIT the server has applied: the fault
after which a retried transaction must not apply its work twice (tests/test_sweep_store.py,
tests/test_write_once.py)."""

from __future__ import annotations

import socket
import threading
import time


class CommitDropper:
    """A TCP proxy to PostgreSQL that, once armed, forwards the next ``COMMIT`` to the server
    and then drops the connection without passing the server's answer on: the transaction is
    committed, but the client only sees a lost connection."""

    COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # a simple-protocol query message

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.refusing = threading.Event()  # while set, new connections are closed at once
        self.refuse_after_drop = False  # set ``refusing`` when a COMMIT's answer is dropped
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            server = socket.create_connection(self.target)
            dropping = threading.Event()
            threading.Thread(target=self._up, args=(client, server, dropping), daemon=True).start()
            threading.Thread(
                target=self._down, args=(server, client, dropping), daemon=True
            ).start()

    def _up(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        while data := _receive(client):
            if self.COMMIT in data and self.armed.is_set():
                self.armed.clear()
                dropping.set()  # the answer to this COMMIT never reaches the client
                server.sendall(data)
                time.sleep(0.3)  # the server has committed
                if self.refuse_after_drop:
                    self.refusing.set()
                self.dropped += 1
                for end in (client, server):
                    end.close()
                return
            server.sendall(data)

    @staticmethod
    def _down(server: socket.socket, client: socket.socket, dropping: threading.Event) -> None:
        while (data := _receive(server)) and not dropping.is_set():
            try:
                client.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


def _receive(end: socket.socket) -> bytes:
    try:
        return end.recv(65536)
    except OSError:
        return b""
