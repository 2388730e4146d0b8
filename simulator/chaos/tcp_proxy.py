"""A TCP proxy on loopback that can cut, blackhole, delay and throttle a link.

It stands between clients (agents, the cloud) and a service (the broker, PostgreSQL):

- ``cut()`` closes the listener and every connection: clients get "connection refused";
- ``blackhole()`` keeps connections open (and accepts new ones) but forwards nothing, the
  way a dead mobile link looks: only keepalives notice;
- ``delay(s)`` adds latency to every chunk, in order; ``throttle(bps)`` limits each direction
  of each connection to ``bps`` bytes per second;
- ``restore()`` ends every fault (connections cut or blackholed are not revived: clients
  reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class TcpProxy:
    """Forwards 127.0.0.1:``port`` (0: any free port, fixed after ``start()``) to ``target``."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.delay_s = 0.0
        self.throttle_bps: float | None = None
        self.blackholed = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.cut()

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._abort_all()

    async def blackhole(self) -> None:
        """Forward nothing from now on, on open and new connections alike."""
        self.blackholed = True

    def delay(self, seconds: float) -> None:
        self.delay_s = max(0.0, seconds)

    def throttle(self, bytes_per_s: float | None) -> None:
        self.throttle_bps = bytes_per_s

    async def restore(self) -> None:
        """End every fault; blackholed connections are dropped so that clients reconnect."""
        if self.blackholed:
            self.blackholed = False
            self._abort_all()
        self.delay_s = 0.0
        self.throttle_bps = None
        await self.start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        chunks: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def read() -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    if not self.blackholed:
                        chunks.put_nowait((time.monotonic() + self.delay_s, data))
            chunks.put_nowait(None)

        async def write() -> None:
            with contextlib.suppress(OSError):
                while (item := await chunks.get()) is not None:
                    due, data = item
                    if (wait := due - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    if self.blackholed:
                        continue
                    dst.write(data)
                    await dst.drain()
                    if self.throttle_bps:
                        await asyncio.sleep(len(data) / self.throttle_bps)
            dst.transport.abort()

        await asyncio.gather(read(), write())
