"""Remote-write through the real binary (issue 6). Against a real Prometheus (Debian package
`prometheus`, remote-write receiver on): pushed samples arrive with the agent's values; the server
goes down for a stretch of ticks while the agent is stopped with SIGTERM and killed with -9 and
started again, and once the server is back every tick of every instance is stored, in time order,
none missing. Against scripted receivers: 400 drops the batch once and counts it, 429 is retried
after its Retry-After, a receiver that never answers times out, keeps the samples queued and does
not hold up SIGTERM. Prints the bytes per sample on the wire and on disk through the binary."""

import os
import shutil
import signal
import socket
import tempfile
import time

from wattprobe_e2e import (BIN, RemoteWriteReceiver, RestartablePrometheus, decode_write_request,
                           scaled, scrape, series, start_agent, start_driver, time_scale, value,
                           wait_ticks, wait_until)

TICKS = "wattprobe_agent_tick_duration_seconds_count"
NODE = "wattprobe_node_energy_joules_total"
INTERVAL = 0.2
# Short delays so outages and retries play out in seconds; the rest are the defaults.
FAST = ["--interval", "200ms", "--accounting", "procfs", "--sources", "rapl_powercap",
        "--remote-write-batch-interval", "100ms", "--remote-write-backoff-min", "50ms",
        "--remote-write-backoff-max", "400ms", "--remote-write-connect-timeout", "500ms"]
# SIGTERM must not wait for a hung request or a backoff: 3 s on a quiet host, more on a busy one,
# always well under the 60 s request timeout the test hangs on.
STOP_LIMIT_S = min(scaled(3), 15)


def rw(metrics, name, **labels):
    return value(metrics, "wattprobe_agent_remote_write_" + name, **labels)


def dropped(metrics):
    return {l["reason"]: v for l, v in series(metrics, "wattprobe_agent_remote_write_samples_dropped_total")}


def stop_timed(agent, sig=signal.SIGTERM):
    t0 = time.monotonic()
    agent.proc.send_signal(sig)
    code = agent.proc.wait(scaled(15))
    return code, time.monotonic() - t0


def metrics_when(agent, predicate, timeout, what):
    """The agent's /metrics once it has published a tick (empty before) and `predicate` holds."""
    def check():
        try:
            m = scrape(agent.url)
        except OSError:
            return None  # a slow answer on a busy host: ask again
        return m if series(m, TICKS) and predicate(m) else None
    return wait_until(check, timeout, what)


def first_snapshot(agent):
    return metrics_when(agent, lambda m: True, 5, "a first tick")


def ticks_scraped(agent):
    """The agent's own tick counter in its last published snapshot (0 at the first tick)."""
    return value(scrape(agent.url), TICKS)


def queue_bytes_on_disk(state):
    folder = os.path.join(state, "remote-write")
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".seg"))


def runs_of_ticks(samples):
    """The tick counter's samples (time order) → one list per agent run: each run counts 0, 1, 2…
    and a new run starts where the counter falls back."""
    runs = []
    for ts, v in samples:
        if not runs or v < runs[-1][-1][1]:
            runs.append([])
        runs[-1].append((ts, v))
    return runs


def against_prometheus(root, driver, figures):
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    t_start = time.time()
    with RestartablePrometheus() as prom:
        args = [*FAST, "--sysfs-root", root, "--remote-write-url", prom.write_url]

        # (a) Samples pushed arrive: with the fixture frozen the counters hold still, so the
        # agent's /metrics and Prometheus's latest sample must agree exactly.
        a = start_agent(*args, state_dir=state)
        with a:
            metrics_when(a, lambda m: rw(m, "samples_sent_total") > 0, 10, "a first push")
            wait_ticks(a, 5)
            driver.proc.send_signal(signal.SIGSTOP)
            try:
                wait_ticks(a, 2)  # one tick began after the freeze
                local = {(l["domain"], l["socket"]): v for l, v in series(scrape(a.url), NODE)}
                assert len(local) == 4, local

                # /metrics writes the shortest text of the exact double (issue 18; before it,
                # prometheus-cpp's 16 digits), the push the double itself: equal to within the
                # rounding an older /metrics had.
                def stored():
                    got = {(r["metric"]["domain"], r["metric"]["socket"]): float(r["value"][1])
                           for r in prom.query(NODE)}
                    same = got.keys() == local.keys() and all(
                        abs(got[k] - local[k]) <= 1e-15 * abs(local[k]) * 10 for k in local)
                    return got if same else None
                got = wait_until(stored, 5, f"Prometheus holding the agent's {NODE} {local}")
                print(f"ok (a): PromQL {NODE} equals the agent's /metrics: "
                      f"{sorted(local.items())} vs {sorted(got.items())}")
            finally:
                driver.proc.send_signal(signal.SIGCONT)
            hosts = {r["metric"].get("instance") for r in prom.query(NODE)}
            assert hosts == {socket.gethostname()}, f"pushed series carry instance {hosts}"
            newest = prom.query(f"timestamp({NODE})")
            age = time.time() - max(float(r["value"][1]) for r in newest)
            assert age < scaled(3), f"newest stored sample is {age:.1f}s old"

            # (b) The receiver goes down; the agent keeps ticking and queues.
            prom.go_down()
            t_down = time.time()
            m = metrics_when(a, lambda m: rw(m, "queue_samples") > 0 and
                             rw(m, "requests_failed_total", reason="connect") > 0, 5,
                             "queueing with connection errors")
            before, disk_before = m, queue_bytes_on_disk(state)
            wait_ticks(a, 5)
            m = scrape(a.url)
            a_ticks = value(m, TICKS)
            queued_a = rw(m, "queue_samples")
            # The segment being written also holds records sent before the outage (a segment
            # goes once all of it is sent), so the file cost is its growth per queued sample.
            figures["disk B/sample (queue_bytes / queue_samples)"] = rw(m, "queue_bytes") / queued_a
            figures["disk B/sample (segment file growth / samples queued)"] = \
                (queue_bytes_on_disk(state) - disk_before) / (queued_a - rw(before, "queue_samples"))
            # (c) SIGTERM during the outage: prompt, and what it could not send stays queued.
            code, took = stop_timed(a)
            assert code == 0 and took < STOP_LIMIT_S, \
                f"SIGTERM during an outage: exit {code} after {took:.2f}s"
            print(f"ok (c): SIGTERM during the outage stopped the agent in {took:.2f}s, "
                  f"{queued_a:.0f} samples queued")

        b = start_agent(*args, state_dir=state)
        with b:
            m = first_snapshot(b)
            assert rw(m, "queue_samples") >= queued_a, \
                f"restart replayed {rw(m, 'queue_samples')} of {queued_a} queued samples"
            wait_ticks(b, 7)
            b_ticks = ticks_scraped(b)
            # Every tick up to b_ticks is on disk (fsync per tick) once two more are done.
            wait_ticks(b, 2, since=int(b_ticks))
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait(scaled(5))
            print(f"ok (c): second run replayed the queue, made > {b_ticks:.0f} ticks, killed -9")

        c = start_agent(*args, state_dir=state)
        with c:
            m = first_snapshot(c)
            assert rw(m, "queue_samples") > queued_a, "the killed run's ticks were not replayed"
            wait_ticks(c, 5)  # ticks queued while still down
            t_up = time.time()
            prom.come_back()
            m = metrics_when(c, lambda m: rw(m, "queue_samples") == 0, 30,
                             "the queue drained after the outage")
            figures["wire B/sample, agent metrics (mostly the catch-up's large requests)"] = \
                rw(m, "sent_bytes_total") / rw(m, "samples_sent_total")
            wait_ticks(c, 5)
            m = first_snapshot(c)
            assert sum(dropped(m).values()) == 0, f"samples dropped: {dropped(m)}"
            assert rw(m, "requests_failed_total", reason="http_4xx") == 0, "Prometheus refused a batch"
            c_ticks = ticks_scraped(c)
            code, took = stop_timed(c)
            assert code == 0 and took < STOP_LIMIT_S, f"SIGTERM: exit {code} after {took:.2f}s"

        # Every tick of the three runs, in time order: the tick counter counts 0, 1, 2... within
        # each run with no value missing, and each run reaches at least its last scraped tick (the
        # SIGTERM runs flush their final ticks; the killed one had its ticks on disk).
        span = int(time.time() - t_start) + 5
        got = prom.query(f"{TICKS}[{span}s]")
        assert len(got) == 1, got
        samples = [(int(round(float(t) * 1000)), float(v)) for t, v in got[0]["values"]]
        runs = runs_of_ticks(samples)
        assert len(runs) == 3, f"expected 3 runs of the agent, found {[(r[0][1], r[-1][1]) for r in runs]}"
        for name, run, at_least in zip(("SIGTERM'd", "killed -9", "last"), runs,
                                       (a_ticks, b_ticks, c_ticks)):
            values = [v for _, v in run]
            assert values == [float(i) for i in range(len(values))], \
                f"{name} run: tick counter has gaps: {values}"
            assert values[-1] >= at_least, f"{name} run: stored up to tick {values[-1]}, agent made {at_least}"
            print(f"ok (b,c): {name} run: ticks 0..{values[-1]:.0f} all stored (agent showed {at_least:.0f})")
        stamps = [t for t, _ in samples]
        assert stamps == sorted(set(stamps)), "timestamps not strictly increasing"
        in_outage = sum(1 for t, _ in samples if t_down * 1000 <= t <= t_up * 1000)
        print(f"ok (b): {in_outage} ticks made during the {t_up - t_down:.1f}s outage are all stored")
        # Half the interval's count (restarts make none); a busy host stretches ticks further.
        assert in_outage >= (t_up - t_down) / INTERVAL * 0.5 / time_scale(), \
            f"only {in_outage} ticks in the outage"
        # Every series of every tick: the node counters have as many samples as there were ticks.
        counts = prom.query(f"count_over_time({NODE}[{span}s])")
        assert len(counts) == 4 and all(float(r["value"][1]) == len(samples) for r in counts), \
            f"{NODE} sample counts {[(r['metric'], r['value'][1]) for r in counts]} vs {len(samples)} ticks"
        print(f"ok (b): each {NODE} series has all {len(samples)} samples")
        # Histogram buckets arrive as the series a scrape makes (same `le` text).
        les = {r["metric"]["le"] for r in prom.query("wattprobe_agent_tick_duration_seconds_bucket")}
    shutil.rmtree(state, ignore_errors=True)
    return les


def scripted_receivers(root, figures):
    base = [*FAST, "--sysfs-root", root]

    # 400: each rejected batch is dropped, never offered again, counted.
    with RemoteWriteReceiver(lambda n, r: (400, {}) if n < 3 else (200, {})) as recv:
        with start_agent(*base, "--remote-write-url", recv.url) as agent:
            wait_until(lambda: len([r for r in recv.seen() if r["status"] == 200]) >= 3, 10,
                       "three accepted requests after the refused ones")
            m = scrape(agent.url)
        reqs = recv.seen()
        rejected = [decode_write_request(r["body"]) for r in reqs[:3]]
        later = [decode_write_request(r["body"]) for r in reqs[3:]]
        n_rejected = sum(len(s) for req in rejected for _, s in req)
        last_rejected = max(t for req in rejected for _, s in req for t, _ in s)
        first_later = min(t for req in later for _, s in req for t, _ in s)
        assert first_later > last_rejected, "a refused batch was offered again"
        assert rw(m, "requests_failed_total", reason="http_4xx") == 3, m
        assert dropped(m)["rejected"] == n_rejected, (dropped(m), n_rejected)
        assert rw(m, "requests_retried_total") == 0
        print(f"ok (d): 400 x3: {n_rejected:.0f} samples dropped once each, counted rejected; "
              f"later requests carry only newer ticks")
        steady = [(len(r["body"]), sum(len(s) for _, s in decode_write_request(r["body"])))
                  for r in reqs[3:]]
        figures["wire B/sample (receiver side, one tick per request)"] = \
            sum(b for b, _ in steady) / sum(n for _, n in steady)

    # 429 with Retry-After: 1: the same samples come again after a second, not after the 50ms
    # backoff, counted as retried.
    with RemoteWriteReceiver(lambda n, r: (429, {"Retry-After": "1"}) if n == 0 else (200, {})) as recv:
        with start_agent(*base, "--remote-write-url", recv.url) as agent:
            wait_until(lambda: len(recv.seen()) >= 2, 10, "a retry after 429")
            reqs = recv.seen()
            gap = reqs[1]["time"] - reqs[0]["time"]
            first = {(tuple(sorted(l.items())), t) for l, s in decode_write_request(reqs[0]["body"]) for t, _ in s}
            second = {(tuple(sorted(l.items())), t) for l, s in decode_write_request(reqs[1]["body"]) for t, _ in s}
            assert first <= second, "the retry does not carry the refused samples"
            assert 0.95 <= gap < scaled(2.5), f"retry came {gap:.2f}s after the 429 with Retry-After: 1"
            m = metrics_when(agent, lambda m: rw(m, "queue_samples") == 0, 5,
                             "queue drained after the retry")
            assert rw(m, "requests_failed_total", reason="http_429") == 1
            assert rw(m, "requests_retried_total") == 1
            assert sum(dropped(m).values()) == 0, dropped(m)
        print(f"ok (d): 429 Retry-After: 1 retried {gap:.2f}s later with the same samples, counted")

    # A receiver that never answers: requests time out, samples stay queued, SIGTERM is prompt,
    # also while a request with a long timeout hangs; the next start delivers them. The first
    # run's options come from a config file, the second's timeout from the command line over it.
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    # Beside the state folder, not in it: the agent hands only a folder of its own files over.
    conf = state + ".conf"
    with RemoteWriteReceiver(lambda n, r: None) as hang:
        with open(conf, "w") as f:
            f.write(f"remote-write-url = {hang.url}\nremote-write-timeout = 300ms\n")
        with start_agent(*base, "--config", conf, state_dir=state) as agent:
            m = metrics_when(agent, lambda m: rw(m, "requests_failed_total", reason="timeout") >= 2,
                             10, "two timed-out requests")
            wait_ticks(agent, 3)
            m = scrape(agent.url)
            queued, made = rw(m, "queue_samples"), [value(m, TICKS)]
            assert rw(m, "samples_sent_total") == 0 and queued > 0, m
            assert rw(m, "requests_retried_total") >= 2
            assert sum(dropped(m).values()) == 0, dropped(m)
            code, took = stop_timed(agent)
            assert code == 0 and took < STOP_LIMIT_S, \
                f"SIGTERM with a hanging receiver: exit {code} after {took:.2f}s"
        print(f"ok (d): hang: {rw(m, 'requests_failed_total', reason='timeout'):.0f} timeouts, "
              f"{queued:.0f} samples kept, SIGTERM stopped it in {took:.2f}s")
        seen_before = len(hang.seen())
        with start_agent(*base, "--config", conf, "--remote-write-timeout", "60s",
                         state_dir=state) as agent:
            wait_until(lambda: len(hang.seen()) > seen_before, 5, "a request hanging")
            wait_ticks(agent, 3)
            made.append(ticks_scraped(agent))
            code, took = stop_timed(agent)
            assert code == 0 and took < STOP_LIMIT_S, \
                f"SIGTERM during a hung 60s request: exit {code} after {took:.2f}s"
        print(f"ok (d): hang: SIGTERM during a hung request (60s timeout) stopped it in {took:.2f}s")
    token = os.path.join(state, "token")
    with open(token, "w") as f:
        f.write("tok-e2e\n")
    with RemoteWriteReceiver(lambda n, r: (200, {})) as good:
        with open(conf, "w") as f:
            f.write(f"remote-write-url = {good.url}\nremote-write-bearer-token-file = {token}\n"
                    "remote-write-header = X-Scope-OrgID=tenant-e2e\n")
        with start_agent(*base, "--config", conf, state_dir=state) as agent:
            metrics_when(agent, lambda m: rw(m, "queue_samples") == 0, 10, "the kept queue sent")
        reqs = good.seen()
        h = reqs[0]["headers"]
        assert (h.get("Content-Encoding"), h.get("Content-Type"), h.get("X-Prometheus-Remote-Write-Version"),
                h.get("Authorization"), h.get("X-Scope-OrgID")) == \
            ("snappy", "application/x-protobuf", "0.1.0", "Bearer tok-e2e", "tenant-e2e"), h
        ticks = sorted((t, v) for r in reqs for l, s in decode_write_request(r["body"])
                       if l["__name__"] == TICKS for t, v in s)
        runs = runs_of_ticks(ticks)
        for run, at_least in zip(runs[:2], made):
            values = [v for _, v in run]
            assert values == [float(i) for i in range(len(values))] and values[-1] >= at_least, \
                f"kept ticks {values}, agent made {at_least}"
        print(f"ok (d): hang: the next start delivered all {len(runs[0])} + {len(runs[1])} kept ticks "
              f"(protocol headers, bearer token and custom header as configured)")
    shutil.rmtree(state, ignore_errors=True)


def usage_errors():
    import subprocess
    for args, needle in (
            (["--remote-write-url", "http://x/", "--remote-write-timeout", "soon"], "--remote-write-timeout"),
            (["--remote-write-url", "http://x/", "--remote-write-ca-file", "/no/such.pem"], "/no/such.pem"),
            (["--remote-write-url", "http://x/", "--remote-write-max-samples-per-request", "0"], '"0"'),
            (["--remote-write-batch-interval", "1s"], "needs --remote-write-url"),
            (["--remote-write-url", "http://x/", "--remote-write-label", "data-centre=a"], "data-centre"),
            (["--remote-write-url", "http://x/", "--remote-write-header", "Content-Type=a"], "Content-Type")):
        p = subprocess.run([BIN, "run", *args], capture_output=True, text=True, timeout=scaled(30))
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, p.returncode, p.stderr)
        print(f"ok: {' '.join(args)} -> {lines[0]}")


def main():
    t0 = time.monotonic()
    usage_errors()
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    figures = {}
    try:
        with start_driver(root, "--scenario", "two_socket_with_dram", "--watts", "package=42,dram=7",
                          "--period-ms", "20") as driver:
            les = against_prometheus(root, driver, figures)
            with start_agent(*FAST[:6], "--sysfs-root", root) as agent:
                wait_ticks(agent, 1)
                scraped = {l["le"] for l, _ in series(scrape(agent.url),
                                                      "wattprobe_agent_tick_duration_seconds_bucket")}
            assert les == scraped, f"pushed le {sorted(les)} vs scraped {sorted(scraped)}"
            print(f"ok: pushed histogram buckets have the scrape's {len(les)} le values")
            scripted_receivers(root, figures)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for k, v in figures.items():
        print(f"figure: {k}: {v:.2f}")
    print(f"took {time.monotonic() - t0:.1f}s")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
