"""A loopback TCP proxy that adds network latency, for scripts/bench's "over a WAN"
figures: every byte is delayed by half the round trip in each direction, and a new
connection waits one round trip before its first byte goes through (the TCP handshake a
real link would cost). Bandwidth is not limited. Used by benchmarks only, never by portalfs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

_CHUNK = 256 * 1024


class LatencyProxy:
    """`with LatencyProxy(target_port, rtt_s) as port:` forwards 127.0.0.1:port there."""

    def __init__(self, target_port: int, rtt_s: float, port: int = 0) -> None:
        self.target_port = target_port
        self.rtt_s = rtt_s
        self._sock = socket.create_server(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> int:
        self._thread.start()
        self._ready.wait(10)
        return self.port

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _cancel_all(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, sock=self._sock)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        writers = [client_w]
        try:
            await asyncio.sleep(self.rtt_s)  # SYN, SYN-ACK: a round trip before data flows
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            writers.append(server_w)
            for w in writers:
                w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        except (asyncio.CancelledError, OSError):
            pass  # stopping, or a side went away: close both
        finally:
            for w in writers:
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copies reader to writer, each chunk leaving half a round trip after it came."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        one_way = self.rtt_s / 2

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                delay = due - self._loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(_CHUNK)
                await queue.put((self._loop.time() + one_way, data))
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            sender.cancel()
