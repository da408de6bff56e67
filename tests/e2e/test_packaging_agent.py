"""The running agent as packaged: started as root, once /metrics answers it has dropped every
capability its sources do not need (its /proc/PID/status), still measures, and every metric the
Grafana dashboard queries is one it exports (checked against a real scrape)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wattprobe_e2e import scaled, wait_ticks  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("WATTPROBE_BIN", "build/wattprobe")
DASHBOARD = os.path.join(SOURCE, "packaging", "grafana", "wattprobe-dashboard.json")
CAP_PERFMON, CAP_BPF = 38, 39
# --sources model needs no capability; BPF accounting keeps these two (agent/privileges.cc).
ALLOWED = (1 << CAP_BPF) | (1 << CAP_PERFMON)

failures = []


def user_args():
    """As packaged, the `wattprobe` account exists; on a host without it (a source build) the
    agent refuses the shared `nobody` unless told, so the test says --user=nobody there."""
    import pwd
    try:
        pwd.getpwnam("wattprobe")
        return []
    except KeyError:
        return ["--user=nobody"]


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=scaled(5)) as r:
        return r.read().decode()


def exported_names(text):
    """Sample names and the families named by # HELP/# TYPE (a family with no series yet still
    says it exists); histogram and summary parts count as their family."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"# (?:HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m:
            names.add(m.group(1))
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    for name in list(names):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                names.add(name[: -len(suffix)])
    return names


DEVICE_HEALTH = ("wattprobe_device_battery_", "wattprobe_device_thermal_throttle_",
                 "wattprobe_device_temperature_", "wattprobe_device_storage_",
                 # How a GPU's energy was split: only where a source reads a GPU
                 # (test_gpu_nvml and test_gpu_drm check it on the fake NVML and amdgpu).
                 "wattprobe_gpu_split_info")


def node_joules(text):
    return sum(float(m.group(1)) for m in re.finditer(
        r"^wattprobe_node_energy_joules_total\{[^}]*\} ([0-9.eE+-]+)", text, re.M))


def capability_sets(pid):
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", status, re.M)}, \
        re.search(r"^NoNewPrivs:\s+(\d)", status, re.M)


def main():
    if os.geteuid() != 0:
        print("SKIPPED: the agent must start as root to show that it drops capabilities")
        return 77
    if not os.access(BIN, os.X_OK):
        print(f"FAIL: {BIN} is not built")
        return 1
    port = free_port()
    with tempfile.TemporaryDirectory() as state, tempfile.TemporaryFile("w+") as log:
        agent = subprocess.Popen(
            [BIN, "run", f"--listen=127.0.0.1:{port}", "--interval=500ms", "--sources=model",
             f"--state-dir={state}", "--grid-intensity=400", "--grid-zone=DE",
             "--embodied-kg=1000", "--install-date=2024-01-01", "--lifetime-years=4",
             *user_args()],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            first, limit = None, scaled(30)
            deadline = time.time() + limit
            while first is None and time.time() < deadline and agent.poll() is None:
                try:
                    first = scrape(port)
                except OSError:
                    time.sleep(0.2)
            if not check(first is not None, f"/metrics answers within {limit:.0f} s"):
                return report(log)

            sets, nnp = capability_sets(agent.pid)
            print("agent capabilities: " + ", ".join(f"{k}={v:016x}" for k, v in sets.items()))
            for key in ("CapEff", "CapPrm", "CapBnd"):
                extra = sets.get(key, -1) & ~ALLOWED
                check(sets.get(key) is not None and extra == 0,
                      f"{key} holds only what the sources need (cap_bpf, cap_perfmon); "
                      f"extra bits {extra:#x}")
            check(sets.get("CapAmb") == 0, "no ambient capabilities")
            check(nnp and nnp.group(1) == "1", "no_new_privs is set")

            # Ticks after the first scrape (the first may come before the first tick).
            wait_ticks(f"http://127.0.0.1:{port}/metrics", 3, timeout=20)
            second = scrape(port)
            check(node_joules(second) > node_joules(first),
                  f"still measures: node energy grew ({node_joules(first)} -> "
                  f"{node_joules(second)} J)")

            with open(DASHBOARD) as f:
                dashboard = json.load(f)
            queried = set()
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    queried |= set(re.findall(r"\bwattprobe_[a-z0-9_]+", target["expr"]))
            missing = queried - exported_names(second)
            # Device health exists only where the host has the device (a battery, throttle
            # counters, temperature sensors, an NVMe drive, a GPU); test_lifecycle,
            # test_metrics_doc and the GPU tests check those families on their fixtures.
            absent_here = {n for n in missing if n.startswith(DEVICE_HEALTH)}
            if absent_here:
                print(f"not on this host (checked on the device fixture): {sorted(absent_here)}")
            # The per-unit families need a [unit.NAME] and a service counting units:
            # test_units and test_metrics_doc check them.
            per_unit = {n for n in missing if "_unit_" in n or "_units_" in n}
            if per_unit:
                print(f"need a [unit.NAME] (checked by test_units): {sorted(per_unit)}")
            missing -= absent_here | per_unit
            check(not missing, f"the dashboard queries metrics /metrics does not export: "
                               f"{sorted(missing)}")
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        return report(log)


def report(log):
    if failures:
        log.seek(0)
        print("agent output:\n" + log.read()[-4000:])
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print("OK: capabilities dropped, still measuring, dashboard metrics exported")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
