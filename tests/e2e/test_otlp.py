"""OTLP through the real binary (issue 19). A receiver on 127.0.0.1 decodes every request
strictly (gzip, then the OTLP protobuf by its published field numbers, refusing any field it does
not know) and checks the types, temporality, attributes, resource and start times. The receiver
answers 503 for a stretch while the agent is stopped with SIGTERM and killed with -9 and started
again; once it answers 200 every tick of every run has arrived, in order, none missing, and a
total restored from the checkpoint keeps its start time. Scripted answers: 400 drops the batch
once and counts it, a partial success is counted, 429 is retried. Usage errors name the option.
Prints the bytes per data point on the wire."""

import gzip
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time

from wattprobe_e2e import (BIN, RemoteWriteReceiver, _pb_varint, decode_write_request, scaled,
                           scrape, series, start_agent, start_driver, value, wait_ticks,
                           wait_until)

TICKS = "wattprobe_agent_tick_duration_seconds"
NODE = "wattprobe_node_energy_joules_total"
FAST = ["--interval", "200ms", "--accounting", "procfs", "--sources", "rapl_powercap",
        "--otlp-backoff-min", "50ms", "--otlp-backoff-max", "400ms", "--otlp-timeout", "2s"]


def fields(buf, allowed):
    """(field, wire, value) of a protobuf message, refusing a field or wire type not in
    `allowed` ({field: wire}): a strict receiver's reading."""
    i = 0
    while i < len(buf):
        k, i = _pb_varint(buf, i)
        f, w = k >> 3, k & 7
        assert allowed.get(f) == w, f"field {f} wire type {w} is not in the specification's {allowed}"
        if w == 0:
            v, i = _pb_varint(buf, i)
        elif w == 1:
            v, i = buf[i:i + 8], i + 8
        elif w == 2:
            n, i = _pb_varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise AssertionError(f"wire type {w}")
        assert i <= len(buf), "truncated message"
        yield f, v


# opentelemetry-proto v1 field numbers and wire types (0 varint, 1 fixed64, 2 length-delimited).
REQUEST = {1: 2}
RESOURCE_METRICS = {1: 2, 2: 2, 3: 2}
RESOURCE = {1: 2, 2: 0}
SCOPE_METRICS = {1: 2, 2: 2, 3: 2}
SCOPE = {1: 2, 2: 2, 3: 2, 4: 0}
KEY_VALUE = {1: 2, 2: 2}
ANY_VALUE = {1: 2, 2: 0, 3: 0, 4: 1}
METRIC = {1: 2, 2: 2, 3: 2, 5: 2, 7: 2, 9: 2}
GAUGE = {1: 2}
SUM = {1: 2, 2: 0, 3: 0}
HISTOGRAM = {1: 2, 2: 0}
NUMBER_POINT = {2: 1, 3: 1, 4: 1, 6: 1, 7: 2, 8: 0}
HISTOGRAM_POINT = {2: 1, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2, 9: 2, 10: 0, 11: 1, 12: 1}
RESPONSE = {1: 2}
PARTIAL = {1: 0, 2: 2}


def u64(b):
    return struct.unpack("<Q", b)[0]


def attributes(items):
    out = {}
    for kv in items:
        k, v = "", None
        for f, x in fields(kv, KEY_VALUE):
            if f == 1:
                k = x.decode()
            else:
                for af, ax in fields(x, ANY_VALUE):
                    assert af == 1, f"attribute {k} is not a string"
                    v = ax.decode()
        assert k and k not in out, f"attribute key {k!r} empty or twice"
        assert v, f"attribute {k} has no value"
        out[k] = v
    return out


def decode(body):
    """One gzip'd ExportMetricsServiceRequest → (resource attributes, [points]); each point a dict
    with metric, kind (sum/gauge/histogram), unit, attributes, start, time (ns), value (the count
    for a histogram). Asserts the shape a Collector expects."""
    raw = gzip.decompress(body)
    points, resource = [], None
    for _, rm in fields(raw, REQUEST):
        for f, x in fields(rm, RESOURCE_METRICS):
            if f == 1:
                resource = attributes(v for rf, v in fields(x, RESOURCE) if rf == 1)
            elif f == 2:
                for sf, sx in fields(x, SCOPE_METRICS):
                    if sf != 2:
                        continue
                    name = unit = None
                    for mf, mx in fields(sx, METRIC):
                        if mf == 1:
                            name = mx.decode()
                        elif mf == 3:
                            unit = mx.decode()
                        elif mf in (5, 7):
                            kind = "gauge" if mf == 5 else "sum"
                            temporality = monotonic = 0
                            pts = []
                            for df, dx in fields(mx, GAUGE if mf == 5 else SUM):
                                if df == 1:
                                    p = {"metric": name, "kind": kind, "unit": unit, "start": 0,
                                         "attributes": {}}
                                    attrs = []
                                    for pf, px in fields(dx, NUMBER_POINT):
                                        if pf == 2:
                                            p["start"] = u64(px)
                                        elif pf == 3:
                                            p["time"] = u64(px)
                                        elif pf == 4:
                                            p["value"] = struct.unpack("<d", px)[0]
                                        elif pf == 7:
                                            attrs.append(px)
                                    p["attributes"] = attributes(attrs)
                                    assert "value" in p and p.get("time"), p
                                    pts.append(p)
                                elif df == 2:
                                    temporality = dx
                                elif df == 3:
                                    monotonic = dx
                            if kind == "sum":
                                assert temporality == 2 and monotonic == 1, \
                                    f"{name}: temporality {temporality}, monotonic {monotonic}"
                                assert name.endswith("_total") or name.startswith("hw."), name
                                for p in pts:
                                    assert 0 < p["start"] <= p["time"], f"{name}: start {p}"
                            else:
                                assert not name.endswith("_total"), f"{name} is a Gauge"
                                assert all(p["start"] == 0 for p in pts), name
                            points += pts
                        elif mf == 9:
                            temporality = 0
                            for df, dx in fields(mx, HISTOGRAM):
                                if df == 2:
                                    temporality = dx
                                    continue
                                p = {"metric": name, "kind": "histogram", "unit": unit,
                                     "attributes": {}, "start": 0, "value": 0.0}  # proto3 omits a 0 count
                                counts, nbounds = [], 0
                                for pf, px in fields(dx, HISTOGRAM_POINT):
                                    if pf == 2:
                                        p["start"] = u64(px)
                                    elif pf == 3:
                                        p["time"] = u64(px)
                                    elif pf == 4:
                                        p["value"] = float(u64(px))
                                    elif pf == 6:
                                        counts = [u64(px[j:j + 8]) for j in range(0, len(px), 8)]
                                    elif pf == 7:
                                        nbounds = len(px) // 8
                                assert len(counts) == nbounds + 1 and sum(counts) == p["value"], p
                                assert 0 < p["start"] <= p["time"], p
                                points.append(p)
                            assert temporality == 2, f"{name}: histogram temporality {temporality}"
                    assert unit in ("J", "W", "g", "s", "1", "By", "g/kW.h"), (name, unit)
    assert resource is not None, "no resource"
    return resource, points


class OtlpReceiver:
    """An OTLP/HTTP receiver on 127.0.0.1. `answer(n, request)` → (status, {header: value}, body)
    or None to hang. Every request is kept, decoded when it was answered with a 2xx."""

    def __init__(self, answer):
        import http.server
        self.requests, self.lock = [], threading.Lock()
        self.answer = answer
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = {"path": self.path, "headers": dict(self.headers), "body": body}
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(req)
                status, headers, text = receiver.answer(n, req)
                req["status"] = status
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self):
        with self.lock:
            return list(self.requests)

    def accepted(self):
        return [r for r in self.seen() if r.get("status") == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ok(n, r):
    return 200, {}, b""


def otlp(m, name, **labels):
    return value(m, "wattprobe_agent_otlp_" + name, **labels)


def dropped(m):
    return {l["reason"]: v for l, v in series(m, "wattprobe_agent_otlp_samples_dropped_total")}


def metrics_when(agent, predicate, timeout, what):
    def check():
        try:
            m = scrape(agent.url)
        except OSError:
            return None  # a slow answer on a busy host: ask again
        return m if series(m, TICKS + "_count") and predicate(m) else None
    return wait_until(check, timeout, what)


def usage_errors(state):
    bad_secret = os.path.join(state, "secret")
    with open(bad_secret, "w") as f:
        f.write("a\r\nInjected: 1\n")
    for args, needle in (
            (["--otlp-endpoint", "http://x:4318", "--otlp-compression", "br"], "--otlp-compression"),
            (["--otlp-endpoint", "http://x:4318", "--otlp-timeout", "soon"], "--otlp-timeout"),
            (["--otlp-endpoint", "http://x:4318", "--otlp-ca-file", "/no/such.pem"], "/no/such.pem"),
            (["--otlp-endpoint", "ftp://x"], "otlp-endpoint"),
            (["--otlp-endpoint", "http://x:4318", "--otlp-header", "Content-Type=a"], "Content-Type"),
            (["--otlp-endpoint", "http://x:4318", "--otlp-header-file", f"Api-Key={bad_secret}"],
             "Api-Key"),
            (["--otlp-endpoint", "http://x:4318", "--otlp-resource-attribute", "novalue"],
             "--otlp-resource-attribute"),
            (["--otlp-backoff-min", "1s"], "needs --otlp-endpoint")):
        p = subprocess.run([BIN, "run", "--state-dir", state, *args], capture_output=True, text=True,
                           timeout=30)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, p.returncode, p.stderr)
        assert "Injected" not in p.stderr, "a secret's text reached the message"
        print(f"ok: {' '.join(args)} -> {lines[0]}")


def tick_runs(receiver):
    """The tick histogram's counts of every accepted request, in time order, split into runs (the
    count starts again at each start of the agent), and every point."""
    pts = [p for r in receiver.accepted() for p in decode(r["body"])[1]]
    ticks = sorted((p["time"], p["value"]) for p in pts if p["metric"] == TICKS)
    runs = []
    for t, v in ticks:
        if not runs or v < runs[-1][-1][1]:
            runs.append([])
        runs[-1].append((t, v))
    return runs, pts


def outage_and_restarts(root, figures):
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    down = threading.Event()
    down.set()
    machine_id = ""
    if os.path.exists("/etc/machine-id"):
        with open("/etc/machine-id") as f:
            machine_id = f.read().strip()

    def answer(n, r):
        return (503, {}, b"down") if down.is_set() else (200, {}, b"")

    with OtlpReceiver(answer) as recv:
        args = [*FAST, "--sysfs-root", root, "--otlp-endpoint", recv.url,
                "--otlp-resource-attribute", "deployment.environment=e2e",
                "--otlp-header", "X-Scope-OrgID=tenant-e2e"]
        # Run 1: the receiver is down from the start; SIGTERM with ticks queued.
        with start_agent(*args, state_dir=state) as a:
            m = metrics_when(a, lambda m: otlp(m, "requests_failed_total", reason="http_5xx") >= 2
                             and otlp(m, "queue_samples") > 0, 10, "queueing while the receiver says 503")
            wait_ticks(a, 3)  # a few more ticks queued
            a_ticks = value(scrape(a.url), TICKS + "_count")
            assert sum(dropped(m).values()) == 0, dropped(m)
            a.proc.send_signal(signal.SIGTERM)
            assert a.proc.wait(scaled(10)) == 0
        print(f"ok: run 1 queued through 503s, SIGTERM'd after {a_ticks:.0f} ticks")
        # Run 2: still down; killed -9.
        b = start_agent(*args, state_dir=state)
        with b:
            m = metrics_when(b, lambda m: otlp(m, "queue_samples") > 0, 10, "the queue replayed")
            wait_ticks(b, 5)
            b_ticks = value(scrape(b.url), TICKS + "_count")
            # Every tick up to b_ticks is on disk (fsync per tick) once two more are done.
            wait_ticks(b, 2, since=int(b_ticks))
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait(scaled(5))
        print(f"ok: run 2 made > {b_ticks:.0f} ticks, killed -9")
        # Run 3: the receiver comes back.
        with start_agent(*args, state_dir=state) as c:
            first_snapshot = metrics_when(c, lambda m: True, 5, "a first tick")
            wait_ticks(c, 3)  # a few ticks queued while still down
            down.clear()
            m = metrics_when(c, lambda m: otlp(m, "queue_samples") == 0 and otlp(m, "samples_sent_total") > 0,
                             30, "the queue drained after the outage")
            wait_ticks(c, 3)
            c_ticks = value(scrape(c.url), TICKS + "_count")
            m = scrape(c.url)
            assert sum(dropped(m).values()) == 0, dropped(m)
            figures["wire B/point, agent metrics (mostly catch-up requests)"] = \
                otlp(m, "sent_bytes_total") / otlp(m, "samples_sent_total")
            c.proc.send_signal(signal.SIGTERM)
            assert c.proc.wait(scaled(10)) == 0

        accepted = recv.accepted()
        for r in accepted:
            assert r["path"] == "/v1/metrics", r["path"]
            h = {k.lower(): v for k, v in r["headers"].items()}
            assert (h.get("content-type"), h.get("content-encoding"), h.get("x-scope-orgid")) == \
                ("application/x-protobuf", "gzip", "tenant-e2e"), h
        resource, _ = decode(accepted[0]["body"])
        assert resource["service.name"] == "wattprobe" and resource["service.version"], resource
        assert resource["host.name"] and resource["deployment.environment"] == "e2e", resource
        if machine_id:
            assert resource["host.id"] == machine_id, (resource, machine_id)
        print(f"ok: resource {resource}")

        runs, pts = tick_runs(recv)
        assert len(runs) == 3, f"expected 3 runs, found {[(r[0][1], r[-1][1]) for r in runs]}"
        for name, run, at_least in zip(("SIGTERM'd", "killed -9", "last"), runs, (a_ticks, b_ticks, c_ticks)):
            values = [v for _, v in run]
            assert values == [float(i) for i in range(len(values))], f"{name} run: gaps {values}"
            assert values[-1] >= at_least, f"{name} run: up to tick {values[-1]}, agent made {at_least}"
            print(f"ok: {name} run: ticks 0..{values[-1]:.0f} all delivered (agent showed {at_least:.0f})")
        stamps = [t for run in runs for t, _ in run]
        assert stamps == sorted(set(stamps)), "a tick delivered twice or out of order"

        # Types, units, attributes; start times: a node total keeps the first run's start through
        # both restarts (SIGTERM and kill -9), since the checkpoint carries it.
        node = [p for p in pts if p["metric"] == NODE]
        assert node and all(p["kind"] == "sum" and p["unit"] == "J" for p in node)
        assert {tuple(sorted(p["attributes"])) for p in node} == {("domain", "socket", "source")}, \
            {tuple(sorted(p["attributes"])) for p in node}
        starts = {}
        for p in node:
            starts.setdefault(tuple(sorted(p["attributes"].items())), set()).add(p["start"])
        assert all(len(s) == 1 for s in starts.values()), f"a restored total changed its start: {starts}"
        first_tick = runs[0][0][0]
        assert all(0 < min(s) <= first_tick for s in starts.values()), (starts, first_tick)
        power = [p for p in pts if p["metric"] == "wattprobe_node_power_watts"]
        assert power and all(p["kind"] == "gauge" and p["unit"] == "W" for p in power)
        hw = {p["metric"] for p in pts if p["metric"].startswith("hw.")}
        assert {"hw.energy", "hw.power", "hw.host.energy", "hw.host.power"} <= hw, hw
        # Without psys or a wall meter the host is still sent, once, as the agent's E_host.
        ids = {p["attributes"].get("hw.id") for p in pts if p["metric"].startswith("hw.host.")}
        assert ids == {"host"}, ids
        # The agent's own counters restart with it: each run has its own start.
        own = {p["start"] for p in pts if p["metric"] == TICKS}
        assert len(own) == 3, f"tick histogram start times {own}"
        print(f"ok: {len(pts)} points decoded strictly; {len(starts)} node totals kept one start each "
              f"across SIGTERM and kill -9; {sorted(hw)} emitted")
        steady = [r for r in accepted[-5:]]
        figures["wire B/point, receiver side (one tick per request, gzip)"] = \
            sum(len(r["body"]) for r in steady) / sum(len(decode(r["body"])[1]) for r in steady)
    shutil.rmtree(state, ignore_errors=True)


def scripted(root):
    base = [*FAST, "--sysfs-root", root]
    # 400: the batch is dropped once, counted.
    with OtlpReceiver(lambda n, r: (400, {}, b"bad") if n < 2 else ok(n, r)) as recv:
        with start_agent(*base, "--otlp-endpoint", recv.url) as agent:
            m = metrics_when(agent, lambda m: otlp(m, "samples_sent_total") > 0, 10, "accepted after 400s")
        assert otlp(m, "requests_failed_total", reason="http_4xx") == 2, m
        refused = sum(len(decode(r["body"])[1]) for r in recv.seen()[:2])
        assert dropped(m)["rejected"] == refused and otlp(m, "requests_retried_total") == 0, dropped(m)
        print(f"ok: 400 x2: {refused} points dropped once, counted rejected")
    # A partial success: counted, the batch leaves.
    partial = bytes([0x0a, 0x06, 0x08, 0x03, 0x12, 0x02]) + b"no"  # {partial_success{3, "no"}}
    with OtlpReceiver(lambda n, r: (200, {"Content-Type": "application/x-protobuf"}, partial)) as recv:
        with start_agent(*base, "--otlp-endpoint", recv.url, "--otlp-compression", "gzip") as agent:
            m = metrics_when(agent, lambda m: dropped(m).get("partial", 0) >= 6, 10, "partial successes")
        print(f"ok: partial success counted: {dropped(m)['partial']:.0f} points in "
              f"{len(recv.seen())} requests")
    # 429 with Retry-After: retried, counted.
    with OtlpReceiver(lambda n, r: (429, {"Retry-After": "0"}, b"") if n == 0 else ok(n, r)) as recv:
        with start_agent(*base, "--otlp-endpoint", recv.url) as agent:
            m = metrics_when(agent, lambda m: otlp(m, "samples_sent_total") > 0 and
                             otlp(m, "queue_samples") == 0, 10, "delivered after a 429")
        assert otlp(m, "requests_failed_total", reason="http_429") == 1
        assert otlp(m, "requests_retried_total") == 1
        print("ok: 429 retried once, counted")


def beside_remote_write(root, figures):
    """One agent pushing the same ticks both ways, one tick per request: bytes on the wire per
    sample (a data point for OTLP; remote-write's histogram is 3 + buckets samples) and per tick."""
    with OtlpReceiver(ok) as o, RemoteWriteReceiver(lambda n, r: (200, {})) as rw:
        with start_agent(*FAST, "--sysfs-root", root, "--otlp-endpoint", o.url,
                         "--remote-write-url", rw.url, "--remote-write-batch-interval", "100ms") as agent:
            wait_until(lambda: len(o.accepted()) >= 12 and len(rw.seen()) >= 12, 20,
                       "a dozen requests each way")
        # The steady state: past the first requests, which carry the start-up ticks together.
        otlp_reqs = o.accepted()[5:12]
        rw_reqs = [r for r in rw.seen() if r["status"] == 200][5:12]
        o_bytes = sum(len(r["body"]) for r in otlp_reqs)
        o_points = sum(len(decode(r["body"])[1]) for r in otlp_reqs)
        o_ticks = sum(len({p["time"] for p in decode(r["body"])[1]}) for r in otlp_reqs)
        r_bytes = sum(len(r["body"]) for r in rw_reqs)
        decoded = [decode_write_request(r["body"]) for r in rw_reqs]
        r_samples = sum(len(s) for d in decoded for _, s in d)
        r_ticks = sum(len({t for _, s in d for t, _ in s}) for d in decoded)
    figures["OTLP gzip, B/data point, one tick per request"] = o_bytes / o_points
    figures["OTLP gzip, B/tick"] = o_bytes / o_ticks
    figures["remote-write snappy, B/sample, one tick per request"] = r_bytes / r_samples
    figures["remote-write snappy, B/tick"] = r_bytes / r_ticks
    print(f"ok: same ticks both ways: OTLP {o_points / o_ticks:.0f} points/tick, remote-write "
          f"{r_samples / r_ticks:.0f} samples/tick")


def warnings(root):
    with OtlpReceiver(ok) as recv:
        p = start_agent("--interval", "200ms", "--accounting", "procfs", "--sources", "rapl_powercap",
                        "--sysfs-root", root, "--otlp-endpoint", recv.url,
                        "--otlp-header", "Authorization=Bearer on-the-command-line")
        with p:
            err = p.stderr() + p.stdout()
    lines = [l for l in err.splitlines() if "warning:" in l]
    assert any("--otlp-header Authorization" in l for l in lines), err
    assert "on-the-command-line" not in err, "the secret was logged"
    print("ok: a credential header on the command line is warned about, its value not logged")


def main():
    t0 = time.monotonic()
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    usage_errors(state)
    shutil.rmtree(state, ignore_errors=True)
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    figures = {}
    try:
        with start_driver(root, "--scenario", "two_socket_with_dram", "--watts", "package=42,dram=7",
                          "--period-ms", "20"):
            warnings(root)
            outage_and_restarts(root, figures)
            scripted(root)
            beside_remote_write(root, figures)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for k, v in figures.items():
        print(f"figure: {k}: {v:.2f}")
    print(f"took {time.monotonic() - t0:.1f}s")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
