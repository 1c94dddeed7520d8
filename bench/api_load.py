"""The control plane under load: SUBMISSIONS concurrent job launches, then WATCHERS concurrent
event-stream clients on one long job. Standard library only (asyncio streams speaking HTTP/1.1),
so it runs wherever python3 does. Prints errors, latency percentiles and the server's peak RSS.

Usage: api_load.py PORT SERVER_PID SUBMISSIONS WATCHERS
"""

import asyncio
import json
import sys
import time


async def request(port, method, path, body=None):
    """One HTTP/1.1 request on a connection of its own; returns (status, body bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode() + payload)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


async def watch(port, job_id):
    """Follows a job's event stream to its `end` event; returns the sequence numbers seen."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    if b" 200 " not in status_line:
        writer.close()
        raise RuntimeError(f"events answered {status_line!r}")
    seqs, ended = [], False
    while not ended:
        line = await reader.readline()
        if not line:
            break
        if line.startswith(b"id:"):
            seqs.append(int(line[3:].strip()))
        elif line.startswith(b"event: end"):
            ended = True
    writer.close()
    if not ended:
        raise RuntimeError("the stream closed before its end event")
    return seqs


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed_launch(port, body):
    started = time.perf_counter()
    status, _ = await request(port, "POST", "/experiments/structured-concurrency", body)
    return status, (time.perf_counter() - started) * 1000


async def main(port, pid, submissions, watchers):
    quick = {"mode": "settled", "tasks": [{"name": "a", "delay_ms": 1}]}
    results = await asyncio.gather(*(timed_launch(port, quick) for _ in range(submissions)))
    statuses = [status for status, _ in results]
    latencies = [ms for _, ms in results]
    errors = sum(1 for status in statuses if status != 202)
    print(f"submissions: {submissions} concurrent launches, {errors} errors, "
          f"latency p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
          f"max {max(latencies):.1f} ms")

    long_job = {"processes": [{"program": "asynclab-child", "args": ["--lines", "1000", "--interval-ms", "8"],
                               "timeout_ms": 60000}]}
    status, body = await request(port, "POST", "/experiments/subprocess", long_job)
    assert status == 202, body
    job_id = json.loads(body)["id"]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(watch(port, job_id) for _ in range(watchers)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    streams = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    _, stored = await request(port, "GET", f"/jobs/{job_id}")
    complete = sum(1 for seqs in streams if seqs == list(range(1, len(seqs) + 1)) and seqs)
    lengths = {len(seqs) for seqs in streams}
    print(f"watchers: {watchers} concurrent event streams on one job ({json.loads(stored)['status']}), "
          f"{len(failures)} errors, {complete} complete and in order, events per stream {sorted(lengths)}, "
          f"{elapsed:.1f} s")
    if failures:
        print(f"  first error: {failures[0]!r}")
    print(f"server peak RSS: {peak_rss_mib(pid):.1f} MiB")
    return 1 if errors or failures or complete != watchers or len(lengths) != 1 else 0


if __name__ == "__main__":
    port, pid, submissions, watchers = (int(arg) for arg in sys.argv[1:5])
    sys.exit(asyncio.run(main(port, pid, submissions, watchers)))
