"""/healthz says whether the agent still ticks, with a status code a Kubernetes probe can use
(issue 12): 503 with the reason before the first tick and once the last tick is older than three
intervals, 200 "ok" while ticks run; /metrics keeps answering throughout.

The tick is made to hang the way a real one can, on a read that never returns: the agent's
--procfs-root holds a process whose proc/1/stat is a FIFO, which procfs accounting reads every
tick (and start-up does not), so each tick waits in open() until the test writes the real
/proc/1/stat into the FIFO, while the HTTP server's threads keep answering."""

import errno
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request

from wattprobe_e2e import scrape, start_agent, start_driver, wait_until

INTERVAL_S = 1.0


def healthz(base):
    """(status, body) of GET /healthz."""
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def healthz_becomes(base, status, timeout):
    """(status, body) of the first /healthz answer with `status` within `timeout` seconds."""
    def answer():
        got = healthz(base)
        return got if got[0] == status else None
    return wait_until(answer, timeout, f"/healthz {status}")


def feed_one_tick(fifo, timeout=10):
    """Lets one blocked tick through: opens the FIFO for writing once the agent waits on it (a
    non-blocking open fails with ENXIO until a reader is there), writes the real /proc/1/stat, and
    closes it, so the agent reads it whole and then end of file."""
    with open("/proc/1/stat", "rb") as f:
        text = f.read()
    deadline = time.time() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.time() > deadline:
                raise AssertionError(f"the agent did not open {fifo} within {timeout}s: {e}")
            time.sleep(0.02)
    try:
        os.set_blocking(fd, True)
        os.write(fd, text)
    finally:
        os.close(fd)


def main():
    work = tempfile.mkdtemp(prefix="wattprobe-e2e-healthz-")
    sysfs = os.path.join(work, "sysfs")
    procfs = os.path.join(work, "procfs")
    os.makedirs(os.path.join(procfs, "proc", "1"))
    shutil.copyfile("/proc/stat", os.path.join(procfs, "proc", "stat"))
    fifo = os.path.join(procfs, "proc", "1", "stat")
    os.mkfifo(fifo, 0o644)  # readable by the agent after it drops to nobody, as /proc/1/stat is
    try:
        with start_driver(sysfs, "--scenario", "one_socket", "--watts", "package=30") as driver, \
                start_agent("--sysfs-root", sysfs, "--procfs-root", procfs,
                            "--sources", "rapl_powercap", "--accounting", "procfs",
                            "--interval", f"{INTERVAL_S:g}s", first_tick=False) as agent:
            base = agent.url[:-len("/metrics")]

            # The first tick waits on the FIFO: the agent serves, but has not ticked.
            status, body = healthz(base)
            assert status == 503, f"before the first tick: {status} {body!r}"
            assert body.strip() == "no tick yet (interval 1 s)", body
            assert not any(n == "wattprobe_node_energy_joules_total" for n, _, _ in
                           scrape(agent.url)), "a node energy series before the first tick"
            print(f"ok: before the first tick /healthz is {status} {body.strip()!r}, "
                  f"/metrics answers")

            feed_one_tick(fifo)
            t_tick = time.time()
            status, body = healthz_becomes(base, 200, 2 * INTERVAL_S)
            assert body == "ok\n", body
            print(f"ok: after the first tick /healthz is 200 {body.strip()!r} "
                  f"({time.time() - t_tick:.2f} s after it)")

            # The second tick hangs on the FIFO. /healthz stays 200 for three intervals after the
            # first, then says how long there has been no tick.
            time.sleep(max(0.0, 2 * INTERVAL_S - (time.time() - t_tick)))
            status, body = healthz(base)
            # The tick ended after t_tick, so an answer read back within three intervals of it
            # must be 200; a host too busy to ask in time cannot tell, and says so.
            answered = time.time() - t_tick
            if answered < 3 * INTERVAL_S:
                assert status == 200, f"{answered:.2f} s after the last tick: {status} {body!r}"
            else:
                print(f"note: the 200 check was asked {answered:.2f} s after the tick on this "
                      f"busy host, too late to tell")
            status, body = healthz_becomes(base, 503, 3 * INTERVAL_S)
            stale_at = time.time() - t_tick
            assert 3 * INTERVAL_S - 0.2 <= stale_at, f"503 after only {stale_at:.2f} s"
            text = body.strip()
            assert text.startswith("no tick for ") and text.endswith(" s (interval 1 s)"), text
            age = float(text[len("no tick for "):].split(" ")[0])
            assert 3 * INTERVAL_S <= age <= stale_at + 0.5, f"age {age} s, stale at {stale_at:.2f} s"
            scrape(agent.url)  # the exporter still answers while the tick hangs
            print(f"ok: with the tick hung, /healthz is 503 {text!r} "
                  f"{stale_at:.2f} s after the last tick; /metrics answers")

            # The tick completes: healthy again.
            feed_one_tick(fifo)
            healthz_becomes(base, 200, 2 * INTERVAL_S)
            print("ok: once the tick completes, /healthz is 200 again")

            # SIGTERM ends the loop once the tick waiting on the FIFO completes: feed it until the
            # agent has exited, then the stop must be the usual clean one.
            agent.proc.send_signal(signal.SIGTERM)
            deadline = time.time() + 10
            while agent.proc.poll() is None and time.time() < deadline:
                try:
                    feed_one_tick(fifo, timeout=0.1)
                except AssertionError:
                    pass
            code = agent.stop(signal.SIGTERM)
            assert code == 0, f"exit {code} after SIGTERM: {agent.stderr()}"
            print("ok: stopped with exit 0")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
