"""Launch latency as a CI script feels it: LAUNCHES sequential launches of a tiny job, each timed
from the POST to its 202, and from the POST to the first event of the job's stream
(`GET /jobs/{id}/events`, opened right after the 202). Standard library only.

Usage: first_event.py PORT LAUNCHES
"""

import json
import socket
import sys
import time

BODY = json.dumps({"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]}).encode()


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the connection closed mid-answer")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def launch(port):
    """POSTs the job; returns its id, and the time of the 202."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"POST /experiments/structured-concurrency HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nConnection: close\r\n"
                 + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    head, body = read_head(sock)
    accepted = time.perf_counter()
    if b" 202 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"launch answered {head!r}")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    sock.close()
    return json.loads(body)["id"], accepted


def first_event(port, job_id):
    """Opens the job's stream and waits for its first event (`id:` line)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    head, rest = read_head(sock)
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"events answered {head!r}")
    while b"\nid:" not in b"\n" + rest:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the stream closed before its first event")
        rest += chunk
    seen = time.perf_counter()
    sock.close()
    return seen


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(port, launches):
    posts, firsts = [], []
    for _ in range(launches):
        started = time.perf_counter()
        job_id, accepted = launch(port)
        seen = first_event(port, job_id)
        posts.append((accepted - started) * 1000)
        firsts.append((seen - started) * 1000)
        time.sleep(0.02)  # let the tiny job run and end, so launches do not queue behind each other
    for name, values in (("POST -> 202", posts), ("POST -> first event", firsts)):
        print(f"{name:22} p50 {percentile(values, 0.5):6.2f} ms  p90 {percentile(values, 0.9):6.2f} ms  "
              f"max {max(values):6.2f} ms  ({launches} sequential launches)")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
