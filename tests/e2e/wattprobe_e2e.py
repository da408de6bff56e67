"""Helpers the end-to-end tests share: run the real binary, drive fixture trees, read /metrics,
run a real Prometheus server. Python standard library only."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BIN = os.environ.get("WATTPROBE_BIN", "build/wattprobe")
TOOLS = os.environ.get("WATTPROBE_TOOLS_DIR", "build/tools")
SKIP = 77


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
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.stdout())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"{self.args[0]}: no {pattern!r} within {timeout}s (exit {self.proc.poll()})\n"
            f"stdout: {self.stdout()}\nstderr: {self.stderr()}")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
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


def start_agent(*extra, state_dir=None):
    state = state_dir or tempfile.mkdtemp(prefix="wattprobe-state-")
    args = [BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state, *extra]
    p = Process(args)
    m = p.wait_for(r"serving metrics at (http://\S+/metrics)")
    p.url = m.group(1)
    return p


def start_driver(root, *extra):
    """Starts the fixture powercap driver on `root`, then links the parts of the real /sys the
    fixture does not fake (kernel BTF, cgroups, CPU topology), so an agent pointed at the tree
    measures fixture energy while accounting real CPU time."""
    args = [os.path.join(TOOLS, "fake_powercap_driver"), "--root", root, *extra]
    p = Process(args)
    p.wait_for(r"ready")
    for rel in ("sys/kernel", "sys/fs", "sys/devices/system"):
        link = os.path.join(root, rel)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/" + rel, link)
    return p


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
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

    def __init__(self, scrape_targets=(), scrape_interval="1s", remote_write_receiver=False):
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
        self.proc = Process(args)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
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
                           text=True, timeout=10)
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
        deadline = time.time() + timeout
        rows = []
        while time.time() < deadline:
            rows = self.screen()
            if check(rows):
                return rows
            time.sleep(0.2)
        raise AssertionError(f"{what} did not appear within {timeout}s; the screen was:\n" +
                             "\n".join(rows))

    def close(self):
        subprocess.run([self.binary, "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)
        try:
            os.unlink(self.config)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
