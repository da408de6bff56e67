"""Slow clients cannot starve /healthz (issue 16): with 16 connections that sent only the first line
of a request and then went silent, /healthz still answers within 2 s, and the server drops the
silent connections once its request timeout has passed, so they cannot pile up for ever.

Before the fix two such connections held /healthz for about 30 s; with the DaemonSet's liveness
probe that lets any pod that reaches the node restart the agent."""

import socket
import time
import urllib.parse

import urllib.error

from wattprobe_e2e import fetch, start_agent, wait_until


def _ok(base):
    try:
        fetch(base + "/healthz")
        return True
    except urllib.error.HTTPError:
        return False

SLOW_CLIENTS = 16
ANSWER_WITHIN_S = 2.0
# exporters/http_server.h: HttpServerLimits::header_timeout, plus slack for a loaded machine.
REQUEST_TIMEOUT_S = 5.0


def open_slow_client(host, port):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\n")
    return s


def timed_healthz(base):
    start = time.monotonic()
    body = fetch(base + "/healthz", timeout=10)
    return time.monotonic() - start, body


def closed_by_server(s, timeout):
    """True when the server closes `s` within `timeout` seconds (end of file or a reset)."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def main():
    with start_agent("--sources", "model", "--accounting", "procfs",
                     "--interval", "200ms") as agent:
        base = agent.url[:-len("/metrics")]
        u = urllib.parse.urlsplit(base)
        # Served at all, and ticking (200, not "no tick yet"), before the test begins.
        wait_until(lambda: _ok(base), 30, "/healthz 200")

        slow = [open_slow_client(u.hostname, u.port) for _ in range(SLOW_CLIENTS)]
        try:
            time.sleep(0.5)  # every slow connection has been accepted and holds a worker
            took, body = timed_healthz(base)
            print(f"/healthz answered in {took * 1000:.1f} ms with {SLOW_CLIENTS} unfinished "
                  f"requests open: {body.strip()!r}")
            assert took < ANSWER_WITHIN_S, f"/healthz took {took:.2f}s with slow clients open"
            took, text = time.monotonic(), fetch(agent.url, timeout=10)
            took = time.monotonic() - took
            print(f"/metrics answered in {took * 1000:.1f} ms beside them")
            assert "wattprobe_" in text

            # The request timeout frees the workers: every slow connection is closed by the
            # server, not left to hold a worker until the client gives up.
            deadline = time.monotonic() + REQUEST_TIMEOUT_S + 5
            for s in slow:
                left = max(0.1, deadline - time.monotonic())
                assert closed_by_server(s, left), "a silent connection outlived the request timeout"
            print(f"all {SLOW_CLIENTS} silent connections were closed by the server")
        finally:
            for s in slow:
                s.close()
        took, _ = timed_healthz(base)
        assert took < ANSWER_WITHIN_S


if __name__ == "__main__":
    main()
    print("PASS")
