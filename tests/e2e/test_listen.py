"""--listen takes one address per option and may be repeated (issue 25): two --listen options
(IPv4 and, where the host has it, IPv6 loopback) both serve /metrics and /healthz; a comma list
is refused with exit 2 and a message saying to repeat the option, never split silently."""

import re
import socket
import subprocess
import tempfile

from wattprobe_e2e import BIN, Process, fetch, wait_until, with_user


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def main():
    second = "[::1]:0" if has_ipv6_loopback() else "127.0.0.1:0"
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    with Process([BIN, "run", "--listen", "127.0.0.1:0", "--listen", second, "--state-dir", state,
                  *with_user(["--sources", "model", "--accounting", "procfs", "--interval",
                              "200ms"])]) as p:
        p.wait_for(r"(?s)serving metrics at \S+.*serving metrics at \S+")
        urls = re.findall(r"serving metrics at (http://\S+/metrics)", p.stdout())
        assert len(urls) == 2 and urls[0] != urls[1], urls
        # Each serves the same page once the first tick has made one: wait for the agent.
        for url in urls:
            wait_until(lambda: "wattprobe_" in fetch(url), 30, f"{url} serving the first tick")
        print(f"ok: both listeners serve /metrics: {urls}")

    r = subprocess.run([BIN, "run", "--listen", "127.0.0.1:0,127.0.0.1:1", "--state-dir", state],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "--listen" in r.stderr and "again" in r.stderr, r.stderr
    print(f"ok: a comma list refused: {r.stderr.strip()}")


if __name__ == "__main__":
    main()
    print("PASS")
