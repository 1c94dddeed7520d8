#!/usr/bin/env python3
"""TCP echo benchmark on asyncio: an echo server and CONNECTIONS clients in one process, each
client doing ROUND_TRIPS round trips of MESSAGE_BYTES (write a message, read its whole echo),
on the stdlib event loop and on uvloop. Prints one line per loop: `LOOP MSGS_PER_S ELAPSED_S`.

The same load as asynclab's runtime-echo experiment, for bench/echo.sh.
"""

import argparse
import asyncio
import sys
import time


async def echo(reader, writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        import socket

        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def client(port, connection, round_trips, message_bytes):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    base = bytes(((offset * 31 + connection * 7) & 0xFF) for offset in range(message_bytes))
    for round_number in range(round_trips):
        stamp = round_number.to_bytes(4, "little")[: min(4, message_bytes)]
        message = stamp + base[len(stamp):]
        writer.write(message)
        echoed = await reader.readexactly(message_bytes)
        if echoed != message:
            raise RuntimeError(f"connection {connection}, round {round_number}: echo differs")
    writer.close()
    await writer.wait_closed()
    return round_trips


async def run(connections, round_trips, message_bytes):
    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    started = time.perf_counter()
    done = await asyncio.gather(*(client(port, c, round_trips, message_bytes) for c in range(connections)))
    elapsed = time.perf_counter() - started
    server.close()
    await server.wait_closed()
    return sum(done), elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--message-bytes", type=int, default=2048)
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    args = parser.parse_args()
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    for name in loops:
        if name == "uvloop":
            try:
                import uvloop
            except ImportError:
                print("uvloop not installed", file=sys.stderr)
                continue
            runner = uvloop.run
        else:
            runner = asyncio.run
        messages, elapsed = runner(run(args.connections, args.round_trips, args.message_bytes))
        print(f"{name} {messages / elapsed:.0f} {elapsed:.3f}", flush=True)


if __name__ == "__main__":
    main()
