#!/usr/bin/env python3
"""Delaying TCP relay: adds round-trip latency to a link (this kernel has no netem).

    relay.py --listen 127.0.0.1:9103 --target 169.254.77.2:9102 --rtt-ms 20 [--stats FILE]

Every accepted connection is paired with a fresh connection to --target. Each chunk read from one
side is written to the other side rtt/2 after it was read, in order, so a request/response pair
pays one full RTT and a new connection pays one more RTT for the emulated TCP handshake. Data is
forwarded as it arrives (no store-and-forward of whole requests), and each direction buffers at
most --max-buffer bytes before it stops reading, so bandwidth comes from the link underneath
(the benchmark puts a tbf-shaped veth pair below this relay).

Runs until SIGTERM/SIGINT. With --stats, writes a JSON line of connection and byte counts there
on exit. Only loopback and the benchmark's own namespace addresses are ever passed to it.
"""
import argparse
import asyncio
import collections
import json
import signal
import time

CHUNK = 256 * 1024


class Stats:
    def __init__(self):
        self.connections = 0
        self.up_bytes = 0
        self.down_bytes = 0


async def pump(reader, writer, delay, max_buffer, count):
    """Copy reader -> writer, delaying every chunk by `delay` seconds, preserving order."""
    loop = asyncio.get_running_loop()
    queue = collections.deque()
    buffered = 0
    have_data = asyncio.Event()
    room = asyncio.Event()
    room.set()
    eof = False

    async def read_side():
        nonlocal buffered, eof
        try:
            while True:
                await room.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                queue.append((loop.time() + delay, data))
                buffered += len(data)
                count(len(data))
                if buffered >= max_buffer:
                    room.clear()
                have_data.set()
        except (ConnectionError, OSError):
            pass
        finally:
            eof = True
            have_data.set()

    async def write_side():
        nonlocal buffered
        try:
            while True:
                if not queue:
                    if eof:
                        break
                    have_data.clear()
                    await have_data.wait()
                    continue
                due, data = queue[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                queue.popleft()
                writer.write(data)
                await writer.drain()
                buffered -= len(data)
                if buffered < max_buffer:
                    room.set()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    reader_task = asyncio.ensure_future(read_side())
    try:
        await write_side()
    finally:
        reader_task.cancel()


async def handle(client_reader, client_writer, args, stats):
    stats.connections += 1
    half = args.rtt_ms / 2000.0
    # The emulated TCP handshake: one round trip before anything flows.
    await asyncio.sleep(2 * half)
    host, port = args.target.rsplit(":", 1)
    try:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
    except OSError:
        client_writer.close()
        return

    def up(n):
        stats.up_bytes += n

    def down(n):
        stats.down_bytes += n

    try:
        await asyncio.gather(
            pump(client_reader, up_writer, half, args.max_buffer, up),
            pump(up_reader, client_writer, half, args.max_buffer, down),
        )
    finally:
        for w in (up_writer, client_writer):
            try:
                w.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="HOST:PORT to listen on (loopback)")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--rtt-ms", type=float, default=20.0, help="added round-trip time (default 20)")
    ap.add_argument("--max-buffer", type=int, default=32 * 1024 * 1024,
                    help="bytes buffered per direction before reading pauses (default 32 MiB)")
    ap.add_argument("--stats", help="write a JSON line of counters here on exit")
    args = ap.parse_args()

    stats = Stats()
    host, port = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(lambda r, w: handle(r, w, args, stats), host, int(port),
                                        limit=CHUNK)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.time()
    async with server:
        await stop.wait()
    if args.stats:
        with open(args.stats, "a") as f:
            f.write(json.dumps({"connections": stats.connections, "up_bytes": stats.up_bytes,
                                "down_bytes": stats.down_bytes,
                                "seconds": round(time.time() - started, 1)}) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
