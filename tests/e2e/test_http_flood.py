"""A flood of connections cannot starve /healthz (issue 25). The audit of issue 16's server opened
N connections that each sent half a request and went silent, each reopened as soon as the server
closed it; with 128 of them no /healthz probe was answered within 3 s, and kubelet restarts an
agent whose liveness probe fails.

Here the same flood runs against the agent, from one address (the probe's own, 127.0.0.1) and
from many (127.0.0.2 and up, on loopback), and every /healthz probe sent during it must be
answered within 1 s: when the server's connection caps are full it closes the oldest idle or
slowest connection, never the new one. The table of results is printed."""

import multiprocessing
import os
import selectors
import socket
import time
import urllib.error
import urllib.parse

from wattprobe_e2e import fetch, start_agent, wait_until

PROBE_WITHIN_S = 1.0
PROBES = 12
PROBE_EVERY_S = 0.25
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: flood\r\n"


def flood(host, port, count, sources, stop, reconnects):
    """Keeps `count` half-sent requests open from `sources`, each reopened once the server
    closes it."""
    sel = selectors.DefaultSelector()

    def open_one(i):
        s = socket.socket()
        s.setblocking(False)
        src = sources[i % len(sources)]
        if src != "127.0.0.1":
            s.bind((src, 0))
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return
        sel.register(s, selectors.EVENT_WRITE, (i, "connect"))

    for i in range(count):
        open_one(i)
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            i, state = key.data
            if state == "connect":
                try:
                    s.send(SLOW_HEAD)
                    sel.modify(s, selectors.EVENT_READ, (i, "held"))
                    continue
                except OSError:
                    pass
            else:
                try:
                    if s.recv(4096):
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
            sel.unregister(s)
            s.close()
            with reconnects.get_lock():
                reconnects.value += 1
            open_one(i)
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def probe(host, port):
    """Seconds a /healthz probe took, or None when it got no answer within PROBE_WITHIN_S."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=PROBE_WITHIN_S) as s:
            s.settimeout(max(0.01, PROBE_WITHIN_S - (time.monotonic() - t0)))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
        took = time.monotonic() - t0
        return took if data.startswith(b"HTTP/1.1 200") and took <= PROBE_WITHIN_S else None
    except OSError:
        return None


def run_row(host, port, count, sources):
    stop = multiprocessing.Event()
    reconnects = multiprocessing.Value("l", 0)
    p = multiprocessing.Process(target=flood, args=(host, port, count, sources, stop, reconnects))
    p.start()
    try:
        time.sleep(1.0)  # the flood is up and reconnecting
        times = []
        for _ in range(PROBES):
            times.append(probe(host, port))
            time.sleep(PROBE_EVERY_S)
    finally:
        stop.set()
        p.join(10)
        if p.is_alive():
            p.kill()
    answered = [t for t in times if t is not None]
    return answered, len(times), reconnects.value


def loopback_aliases_work():
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def main():
    with start_agent("--sources", "model", "--accounting", "procfs",
                     "--interval", "200ms") as agent:
        base = agent.url[:-len("/metrics")]
        u = urllib.parse.urlsplit(base)

        def healthy():
            try:
                fetch(base + "/healthz")
                return True
            except urllib.error.HTTPError:
                return False
        wait_until(healthy, 30, "/healthz 200 before the flood")

        rows = [(40, ["127.0.0.1"], "one address"), (64, ["127.0.0.1"], "one address"),
                (128, ["127.0.0.1"], "one address")]
        if loopback_aliases_work():
            rows.append((128, [f"127.0.0.{i}" for i in range(2, 130)], "127.0.0.2-129"))
        else:
            print("note: cannot bind 127.0.0.2 here; the many-address row is left out")
        results = []
        for count, sources, what in rows:
            answered, sent, reconnects = run_row(u.hostname, u.port, count, sources)
            results.append((count, what, answered, sent, reconnects))
        print()
        print("| connections, each reopened as soon as the server closes it | from "
              "| /healthz probes answered within 1 s | slowest answer | reopened |")
        print("|---|---|---|---|---|")
        for count, what, answered, sent, reconnects in results:
            slowest = f"{max(answered) * 1000:.0f} ms" if answered else "-"
            print(f"| {count} | {what} | {len(answered)} of {sent} | {slowest} | {reconnects} |")
        print()
        for count, what, answered, sent, _ in results:
            assert len(answered) == sent, \
                f"{count} connections from {what}: only {len(answered)} of {sent} probes answered"
        fetch(base + "/healthz")


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    main()
    print("PASS")
