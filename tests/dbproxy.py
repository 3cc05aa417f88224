"""A TCP proxy on 127.0.0.1 in front of a database server, which a test can cut or hang.

``cut()`` closes every connection and stops listening (clients get "connection refused");
``hang()`` keeps accepting connections but forwards nothing in either direction (bytes wait in
the proxy, as with a stopped server: the kernel accepts, nobody answers); ``restore()`` listens
again on the same port and forwards what waited. Runs its own event loop in a thread, so the code
under test can block on it without blocking the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any


class DbProxy:
    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self.port = _free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: asyncio.Event | None = None  # set: bytes flow; clear: they wait
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> DbProxy:
        self._thread.start()
        self._run(self._setup())
        self._run(self._listen())
        return self

    def stop(self) -> None:
        self.cut()
        self._run(self._finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones (the database went away)."""
        self._run(self._cut())

    def hang(self) -> None:
        """Accept connections, answer nothing (the database stopped responding)."""
        self._run(self._set(False))

    def restore(self) -> None:
        """Forward again, on the same port; what waited during a hang goes through."""
        self._run(self._listen())
        self._run(self._set(True))

    def url(self, url: str) -> str:
        """``url`` (a postgresql:// URL at the target) pointed at this proxy instead."""
        return url.replace(f"{self.target[0]}:{self.target[1]}", f"127.0.0.1:{self.port}")

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self.loop).result(5)

    async def _setup(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    async def _set(self, flowing: bool) -> None:
        assert self._open is not None
        if flowing:
            self._open.set()
        else:
            self._open.clear()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._client, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _finish(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        with contextlib.suppress(asyncio.CancelledError):  # stop(): the connection just ends
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        while data := await reader.read(65536):
            await self._open.wait()
            writer.write(data)
            await writer.drain()
        writer.transport.abort()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
