"""Helpers the end-to-end tests share: run the real binary, drive fixture trees, read /metrics,
run a real Prometheus server. Python standard library only."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

# Started as root, the agent runs as `wattprobe` or `nobody` after start-up (README "Security"),
# and keeps reading the fixture trees the tests make, as it reads the host's world-readable /sys
# and /proc. So the folders tests make are passable by any user, 0755 like /sys; each test's
# files keep the modes it gives them. The state folders inside stay the agent's (0700).
_mkdtemp = tempfile.mkdtemp


def _mkdtemp_passable(*args, **kwargs):
    path = _mkdtemp(*args, **kwargs)
    os.chmod(path, 0o755)
    return path


tempfile.mkdtemp = _mkdtemp_passable


def agent_writable(path):
    """Creates `path` empty and writable by any user: a file the agent itself appends to (a fake
    library's log), which it does after dropping from root to an unprivileged user."""
    with open(path, "a"):
        pass
    os.chmod(path, 0o666)
    return path


BIN = os.environ.get("WATTPROBE_BIN", "build/wattprobe")
TOOLS = os.environ.get("WATTPROBE_TOOLS_DIR", "build/tools")
SKIP = 77


# Every deadline the helpers keep is multiplied by one factor, so a slow or busy machine waits
# longer rather than failing: WATTPROBE_TEST_TIME_SCALE, raised on its own while the 1-minute load
# average exceeds the CPU count (six busy loops on two CPUs make it about 4). Capped, so a hung
# agent still fails a test within ctest's limit. Waits end as soon as what they wait for is there,
# so a larger factor costs time only when something is wrong.
_SCALE_ENV = float(os.environ.get("WATTPROBE_TEST_TIME_SCALE", "1") or "1")
_SCALE_CAP = 8.0


def time_scale():
    """The deadline factor now: the environment's, or the load per CPU if that is higher."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = 0.0
    return max(_SCALE_ENV, min(load, _SCALE_CAP))


TIME_SCALE = time_scale()


def scaled(seconds):
    """A deadline of `seconds` on a quiet machine, scaled for this one."""
    return seconds * time_scale()


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose stdout lines are readable while it runs."""

    def __init__(self, args, **kw):
        self.args = args
        self.out_path = tempfile.mktemp(prefix="wattprobe-e2e-out-")
        self.err_path = tempfile.mktemp(prefix="wattprobe-e2e-err-")
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=self._err, **kw)

    def stdout(self):
        with open(self.out_path) as f:
            return f.read()

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def wait_for(self, pattern, timeout=20):
        timeout = scaled(timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.stdout())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"{self.args[0]}: no {pattern!r} within {timeout:.0f}s (exit {self.proc.poll()})\n"
            f"stdout: {self.stdout()}\nstderr: {self.stderr()}")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            sys.stderr.write(f"--- {os.path.basename(self.args[0])} stderr ---\n{self.stderr()}\n")
        for p in (self.out_path, self.err_path):
            try:
                os.unlink(p)
            except OSError:
                pass


def _user_args():
    """Started as root with no `wattprobe` account (a source build's host), the agent refuses to
    keep its state as the shared `nobody` unless told to (issue 25): the tests say so, as a user
    would, with --user nobody. Where the account exists the default applies."""
    import pwd
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("wattprobe")
        return []
    except KeyError:
        return ["--user", "nobody"]


USER_ARGS = _user_args()


def with_user(args):
    """`args` of `wattprobe run`, with USER_ARGS unless they name a --user already."""
    if any(a == "--user" or a.startswith("--user=") for a in args):
        return list(args)
    return list(args) + USER_ARGS


def _interval_seconds(args):
    """The agent's --interval among its arguments (1 s, its default, when absent)."""
    for i, a in enumerate(args):
        text = a[len("--interval="):] if a.startswith("--interval=") else (
            args[i + 1] if a == "--interval" and i + 1 < len(args) else None)
        if text is None:
            continue
        m = re.fullmatch(r"([0-9.]+)(ms|s|m)?", text)
        if m:
            return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]
    return 1.0


_UNVERIFIED = ssl.create_default_context()
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


def healthz(url, timeout=5):
    """(status, text) of the agent's /healthz beside `url` (its /metrics URL). /healthz needs no
    credentials; a test's self-signed certificate is not checked."""
    target = re.sub(r"/metrics$", "", url) + "/healthz"
    context = _UNVERIFIED if target.startswith("https:") else None
    try:
        with urllib.request.urlopen(target, timeout=scaled(timeout), context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_first_tick(agent, timeout=30):
    """Waits until the agent has published its first tick: /healthz stops answering "no tick
    yet" (after it, a 503 "no tick for" on a starved machine is still a tick done). Returns early
    if the agent exits; the caller's test then sees why."""
    timeout = scaled(timeout + 3 * agent.interval)
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if agent.proc.poll() is not None:
            return
        try:
            status, text = healthz(agent.url)
            last = (status, text.strip())
            if status == 200 or "no tick yet" not in text:
                return
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"the agent published no tick within {timeout:.0f}s (/healthz: {last})\n"
                         f"stderr: {agent.stderr()}")


def start_agent(*extra, state_dir=None, first_tick=True):
    """`wattprobe run` on a free port with EXTRA arguments; returns the Process, with .url (its
    /metrics), .interval (seconds) and .state_dir. Returns after the first tick is published, so
    the figures a tick makes are there; first_tick=False returns as soon as it serves, for tests
    of what the agent answers before its first tick."""
    state = state_dir or tempfile.mkdtemp(prefix="wattprobe-state-")
    args = [BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state, *with_user(extra)]
    p = Process(args)
    m = p.wait_for(r"serving metrics at (https?://\S+/metrics)")
    p.url = m.group(1)
    p.interval = _interval_seconds(args)
    p.state_dir = state
    if first_tick:
        wait_first_tick(p)
    return p


def start_driver(root, *extra):
    """Starts the fixture powercap driver on `root`, then links the parts of the real /sys the
    fixture does not fake (kernel BTF, cgroups, CPU topology), so an agent pointed at the tree
    measures fixture energy while accounting real CPU time."""
    args = [os.path.join(TOOLS, "fake_powercap_driver"), "--root", root, *extra]
    p = Process(args)
    # Real RAPL counters are advanced by the hardware, never late. The driver stands in for
    # them, so on a busy host it runs before the busy processes (real-time, lowest priority: it
    # wakes every period for a few microseconds of work). Without that, its writes landed 10-50 ms
    # late under six busy loops, and a 200 ms tick's watts read 5-10 % off. Where real-time
    # scheduling is not allowed (no CAP_SYS_NICE) it runs as before.
    try:
        os.sched_setscheduler(p.proc.pid, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        pass
    p.wait_for(r"ready")
    for rel in ("sys/kernel", "sys/fs", "sys/devices/system"):
        link = os.path.join(root, rel)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/" + rel, link)
    return p


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=scaled(timeout)) as r:
        return r.read().decode()


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {labels}, value)] from the text exposition format."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise AssertionError(f"unparseable exposition line: {line!r}")
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def series(metrics, name, **want):
    return [(l, v) for (n, l, v) in metrics if n == name and all(l.get(k) == w for k, w in want.items())]


def value(metrics, name, **want):
    found = series(metrics, name, **want)
    if len(found) != 1:
        raise AssertionError(f"expected one {name}{want}, found {found}")
    return found[0][1]


def scrape(url):
    return parse_metrics(fetch(url))


TICK_COUNT = "wattprobe_agent_tick_duration_seconds_count"


def agent_ticks(url, fetch=fetch):
    """How many ticks the agent at `url` (its /metrics) has counted: the _count of its own tick
    histogram, read through `fetch` (a test's fetch with credentials or its CA for TLS). 0 when
    the family is not there yet."""
    for line in fetch(url).splitlines():
        if line.startswith(TICK_COUNT + " ") or line.startswith(TICK_COUNT + "{"):
            return int(float(line.rsplit(None, 1)[1]))
    return 0


def tick_count(metrics):
    """The tick count in parsed metrics (what scrape returns); 0 when the family is not there."""
    return int(sum(v for n, _, v in metrics if n == TICK_COUNT))


def wait_ticks(agent, n=1, since=None, timeout=None, fetch=fetch):
    """Waits until the agent's tick count has grown by `n` since `since` (a count agent_ticks
    returned) or since now; returns the count. `agent` is a Process from start_agent or a /metrics
    URL. A tick counted after now began after now only when n >= 2: wait for 2 when the figures
    must cover what the test did before the call (a burn, a changed fixture). Fetch errors are
    retried until the deadline: an agent under load may answer slowly."""
    url = agent if isinstance(agent, str) else agent.url
    interval = 1.0 if isinstance(agent, str) else getattr(agent, "interval", 1.0)
    if since is None:
        since = _retry_until(lambda: agent_ticks(url, fetch=fetch), scaled(30), url)
    want = since + n
    if timeout is None:
        timeout = 20 + 3 * n * interval
    timeout = scaled(timeout)
    deadline = time.time() + timeout
    got, error = since, None
    while time.time() < deadline:
        if not isinstance(agent, str) and agent.proc.poll() is not None:
            raise AssertionError(f"the agent exited {agent.proc.returncode} while the test waited "
                                 f"for tick {want}\nstderr: {agent.stderr()}")
        try:
            got = agent_ticks(url, fetch=fetch)
            if got >= want:
                return got
        except OSError as e:
            error = e
        time.sleep(0.05)
    raise AssertionError(f"{url}: tick count {got}, not {want} within {timeout:.0f}s"
                         + (f" (last error: {error})" if error else ""))


def _retry_until(read, timeout, what):
    deadline = time.time() + timeout
    while True:
        try:
            return read()
        except OSError:
            if time.time() >= deadline:
                raise
            time.sleep(0.1)


def wait_checkpoint(agent, state_dir=None, timeout=20):
    """Waits for a checkpoint written after the agent's ticks from now: two ticks (one began
    after the call), then a checkpoint file newer than the one there after them. Needs the
    agent's --checkpoint-interval to be short next to `timeout`."""
    path = os.path.join(state_dir or agent.state_dir, "checkpoint.pb")

    def stamp():
        try:
            st = os.stat(path)
            return st.st_ino, st.st_mtime_ns, st.st_size
        except OSError:
            return None

    wait_ticks(agent, 2)
    old = stamp()
    wait_until(lambda: stamp() not in (None, old), timeout, f"a new checkpoint in {path}")


def wait_metrics(url, check, what, timeout=30, fetch=fetch):
    """Scrapes `url` until check(parsed metrics) is true; returns what check returned. For a
    figure a tick makes: wait on the figure itself rather than on a clock."""
    timeout = scaled(timeout)
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            got = check(parse_metrics(fetch(url)))
            if got:
                return got
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f}s: {what}" + (f" (last error: {last})" if last else ""))


def read_json(path, retries=50):
    for _ in range(retries):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"cannot read {path}")


def near(actual, expected, rel, what):
    if expected == 0:
        ok = abs(actual) <= rel
    else:
        ok = abs(actual - expected) <= rel * abs(expected)
    if not ok:
        raise AssertionError(f"{what}: {actual} is not within {rel*100:.2f}% of {expected}")
    print(f"ok: {what}: {actual:.6g} vs {expected:.6g}")


class PrometheusServer:
    """A real Prometheus (Debian package) on 127.0.0.1 with a temporary config and storage."""

    def __init__(self, scrape_targets=(), scrape_interval="1s", remote_write_receiver=False,
                 extra_args=(), before_start=None):
        """extra_args: more server flags (a retention); before_start(data_dir): fills the storage
        before the server opens it (blocks from `promtool tsdb create-blocks-from`)."""
        self.binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not os.path.exists(self.binary):
            skip("the prometheus server is not installed (Debian package prometheus)")
        self.dir = tempfile.mkdtemp(prefix="wattprobe-prom-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n")
            if scrape_targets:
                f.write("scrape_configs:\n  - job_name: wattprobe\n    static_configs:\n")
                f.write(f"      - targets: [{', '.join(repr(t) for t in scrape_targets)}]\n")
        args = [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir}/data",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        if remote_write_receiver:
            args.append("--web.enable-remote-write-receiver")
        args.extend(extra_args)
        if before_start:
            before_start(f"{self.dir}/data")
        self.proc = Process(args)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + scaled(30)
        while time.time() < deadline:
            try:
                if "Ready" in fetch(self.url + "/-/ready", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"prometheus did not start: {self.proc.stderr()}")

    def query(self, promql):
        q = urllib.parse.urlencode({"query": promql})
        body = json.loads(fetch(f"{self.url}/api/v1/query?{q}"))
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]

    def close(self):
        self.proc.stop()
        self.proc.__exit__(None, None, None)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ledger_lines(state_dir):
    """Every line of the agent's ledger under state_dir, parsed: [(file, line number, dict)], in
    day order. A line that is not JSON fails the caller's test."""
    folder = os.path.join(state_dir, "ledger")
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(folder, name)) as f:
            for number, text in enumerate(f, 1):
                out.append((name, number, json.loads(text)))
    return out


def run_report(*args, timeout=60):
    """`wattprobe report ARGS`: the finished process, stdout and stderr as text."""
    return subprocess.run([BIN, "report", *args], capture_output=True, text=True, timeout=timeout)


# --- remote-write: a decoder for what the agent pushes, a scriptable receiver, a Prometheus
# --- that can go down and come back (issue 6)

def snappy_decompress(data):
    """Snappy block format (what remote-write bodies use), pure Python: a varint length, then
    literals and back-references."""
    def varint(buf, i):
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result, i
            shift += 7
    length, i = varint(data, 0)
    out = bytearray()
    while i < len(data):
        tag = data[i]
        i += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[i:i + extra], "little")
                i += extra
            n += 1
            out += data[i:i + n]
            i += n
            continue
        if kind == 1:
            n = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[i]
            i += 1
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[i:i + 2], "little")
            i += 2
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[i:i + 4], "little")
            i += 4
        if offset == 0 or offset > len(out):
            raise AssertionError(f"snappy: bad back-reference offset {offset}")
        for _ in range(n):  # may overlap its own output
            out.append(out[-offset])
    if len(out) != length:
        raise AssertionError(f"snappy: {len(out)} bytes decoded, header says {length}")
    return bytes(out)


def _protobuf_fields(buf):
    i = 0
    while i < len(buf):
        key, i = _pb_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _pb_varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _pb_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise AssertionError(f"protobuf: wire type {wire} of field {field}")
        yield field, wire, v


def _pb_varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def decode_write_request(body):
    """A snappy-compressed remote-write 1.0 WriteRequest → [({label: value}, [(ts_ms, value)])],
    labels including __name__."""
    import struct
    out = []
    for field, _, ts in _protobuf_fields(snappy_decompress(body)):
        if field != 1:
            continue
        labels, samples = {}, []
        for f, _, v in _protobuf_fields(ts):
            if f == 1:
                kv = {lf: lv.decode() for lf, _, lv in _protobuf_fields(v)}
                labels[kv.get(1, "")] = kv.get(2, "")
            elif f == 2:
                value, stamp = 0.0, 0
                for sf, _, sv in _protobuf_fields(v):
                    if sf == 1:
                        value = struct.unpack("<d", sv)[0]
                    elif sf == 2:
                        stamp = sv - (1 << 64) if sv >= 1 << 63 else sv
                samples.append((stamp, value))
        out.append((labels, samples))
    return out


class RemoteWriteReceiver:
    """A remote-write endpoint on 127.0.0.1 that answers as the test says. `answer(n, request)`
    (n counts requests from 0) returns (status, {header: value}) or None to hang: read the
    request and never answer until close(). Every request is kept: time (monotonic), headers,
    body, status (None while hung)."""

    def __init__(self, answer):
        import http.server
        import threading
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = {"time": time.monotonic(), "headers": dict(self.headers), "body": body,
                       "status": None}
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(req)
                reply = answer(n, req)
                if reply is None:
                    receiver.release.wait()
                    self.close_connection = True
                    return
                status, headers = reply
                req["status"] = status
                text = b"" if status < 300 else f"answer {status}".encode()
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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def seen(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RestartablePrometheus(PrometheusServer):
    """A PrometheusServer with its remote-write receiver on that can go down and come back on
    the same port with the same TSDB, as a receiver's outage does."""

    def __init__(self):
        super().__init__(remote_write_receiver=True)
        self.write_url = self.url + "/api/v1/write"

    def go_down(self):
        self.proc.stop()

    def come_back(self, timeout=30):
        args = self.proc.args
        self.proc.__exit__(None, None, None)
        self.proc = Process(args)
        deadline = time.time() + scaled(timeout)
        while time.time() < deadline:
            try:
                if "Ready" in fetch(self.url + "/-/ready", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"prometheus did not come back: {self.proc.stderr()}")


def wait_until(predicate, timeout, what):
    timeout = scaled(timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def cgroup2_root():
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            return root
    return None


class Cgroups:
    """Test-made cgroups (v2) under a temporary parent, so a test's burners are workloads of
    names it knows. Needs root; skips without a cgroup v2 hierarchy."""

    def __init__(self, *names):
        root = cgroup2_root()
        if root is None:
            skip("no cgroup v2 hierarchy on this host")
        self.base = tempfile.mkdtemp(prefix="wattprobe-e2e-", dir=root)
        self.paths = {}
        for n in names:
            p = os.path.join(self.base, n)
            os.mkdir(p)
            self.paths[n] = p

    def usage_seconds(self, name):
        """The kernel's own count of the cgroup's CPU time (cpu.stat usage_usec), in seconds."""
        with open(os.path.join(self.paths[name], "cpu.stat")) as f:
            for line in f:
                k, v = line.split()
                if k == "usage_usec":
                    return int(v) / 1e6
        raise AssertionError("no usage_usec")

    def close(self):
        for p in list(self.paths.values()) + [self.base]:
            for _ in range(50):
                try:
                    os.rmdir(p)
                    break
                except OSError:
                    time.sleep(0.1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Tmux:
    """One command in a pane of a private tmux server (Debian package tmux), sized like a
    terminal, to drive a full-screen program the way a user at a terminal does. The pane stays
    after the command ends (remain-on-exit), so its screen can still be read; tmux hides a dead
    pane's cursor, so a test that checks the cursor a program leaves behind keeps the pane alive
    (e.g. a shell that sleeps after the program)."""

    _count = 0

    def __init__(self, command, width=80, height=24):
        self.binary = shutil.which("tmux")
        if self.binary is None:
            skip("tmux is not installed (Debian package tmux)")
        Tmux._count += 1
        self.socket = f"wattprobe-e2e-{os.getpid()}-{Tmux._count}"
        self.config = tempfile.mktemp(prefix="wattprobe-e2e-tmux-")
        with open(self.config, "w") as f:
            # Set before the pane starts: a command that ends at once still leaves its pane.
            f.write("set-option -g remain-on-exit on\n")
        self._run("-f", self.config, "new-session", "-d", "-s", "e2e", "-x", str(width),
                  "-y", str(height), command)

    def _run(self, *args):
        r = subprocess.run([self.binary, "-L", self.socket, *args], capture_output=True,
                           text=True, timeout=scaled(10))
        if r.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def screen(self):
        """The visible screen, one string per row."""
        out = self._run("capture-pane", "-p", "-t", "e2e")
        return (out[:-1] if out.endswith("\n") else out).split("\n")

    def keys(self, *keys):
        self._run("send-keys", "-t", "e2e", *keys)

    def show(self, fmt):
        """A tmux format of the pane, e.g. #{alternate_on}, #{cursor_flag}, #{pane_dead_status}."""
        return self._run("display-message", "-p", "-t", "e2e", fmt).strip()

    def resize(self, width, height):
        self._run("resize-window", "-t", "e2e", "-x", str(width), "-y", str(height))

    def wait_for(self, check, timeout=15, what="the screen"):
        """Polls the screen until check(rows) is true; returns the rows."""
        timeout = scaled(timeout)
        deadline = time.time() + timeout
        rows = []
        while time.time() < deadline:
            rows = self.screen()
            if check(rows):
                return rows
            time.sleep(0.2)
        raise AssertionError(f"{what} did not appear within {timeout:.0f}s; the screen was:\n" +
                             "\n".join(rows))

    def close(self):
        subprocess.run([self.binary, "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=scaled(10))
        try:
            os.unlink(self.config)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
