"""GPU energy from NVML end to end (issue 14): the real binary with `--sources
rapl_powercap,nvml --nvml-library <the fake libnvidia-ml.so.1>` replaying the recorded H200
traces (tests/data/nvml), two live processes in test-made cgroups standing in for the recorded
workers.
- the node's GPU joules are exactly the energy counter's movement the agent was told (the fake
  logs every answer), and each GPU is its own series;
- per tick and in total, idle + workloads + unattributed = measured for the gpu domain, and the
  workers' cgroups get the GPU energy through their pids, labelled with how it was split;
- failure paths: a GPU lost mid-run (the other keeps measuring), a counter reset (no negative
  delta), no energy counter (integrated power, said so), MIG (unattributed, said why), a
  process gone between samples (unattributed), the library missing, no driver."""

import json
import os
import shutil
import subprocess
import tempfile
import time

from wattprobe_e2e import (USER_ARGS, BIN, Cgroups, agent_writable, scrape, series, skip, start_agent,
                           start_driver, value)

FAKE = os.environ.get("WATTPROBE_FAKE_NVML", "build/fake_nvml/libnvidia-ml.so.1")
DATA = os.environ.get("WATTPROBE_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))
PHASED = os.path.join(DATA, "nvml/h200-phased-75-25.jsonl")
RANDOM = os.path.join(DATA, "nvml/h200-random-periods-50-30-20.jsonl")


# Above PID_MAX_LIMIT (4,194,304 on 64-bit Linux): never a live process.
NO_SUCH_PID = 4194305

def fake_env(traces, start=5, pids="", faults="", log=""):
    for k in list(os.environ):
        if k.startswith("WATTPROBE_FAKE_NVML_"):
            del os.environ[k]
    os.environ["WATTPROBE_FAKE_NVML_TRACE"] = ",".join(traces)
    os.environ["WATTPROBE_FAKE_NVML_START"] = str(start)
    os.environ["WATTPROBE_FAKE_NVML_PIDS"] = pids
    os.environ["WATTPROBE_FAKE_NVML_FAULTS"] = faults
    os.environ["WATTPROBE_FAKE_NVML_LOG"] = log


def logged(log):
    """[(device, mJ)] of every energy answer the agent got, in order."""
    out = []
    with open(log) as f:
        for line in f:
            _, dev, mj, _t = line.split()
            out.append((int(dev), int(mj)))
    return out


def counted_joules(answers, device):
    """What the agent must have counted from its answers: positive steps only (a step down is a
    driver reload and counts nothing)."""
    vals = [mj for d, mj in answers if d == device]
    return sum(b - a for a, b in zip(vals, vals[1:]) if b >= a) / 1000.0


def gpu_parts(m, device=None):
    parts = sum(v for _, v in series(m, "wattprobe_workload_energy_joules_total", domain="gpu"))
    parts += sum(v for _, v in series(m, "wattprobe_node_idle_energy_joules_total", domain="gpu"))
    parts += sum(v for _, v in series(m, "wattprobe_node_unattributed_energy_joules_total",
                                      domain="gpu"))
    return parts


def gpu_node(m):
    return sum(v for _, v in series(m, "wattprobe_node_energy_joules_total", domain="gpu"))


def stable_scrape(agent, log):
    """A scrape and the fake's log at the same tick: scrape, read, scrape; equal scrapes mean no
    tick ran in between."""
    for _ in range(20):
        m0 = scrape(agent.url)
        answers = logged(log)
        m1 = scrape(agent.url)
        if gpu_node(m0) == gpu_node(m1):
            return m1, answers
        time.sleep(0.1)
    raise AssertionError("no quiet moment between ticks")


def start_in(cgroup):
    p = subprocess.Popen(["sh", "-c", f"echo $$ > {cgroup}/cgroup.procs; exec sleep 120"])
    time.sleep(0.2)
    return p


def main_case():
    """Two GPUs (the phased and the random trace), powercap beside them, live workers."""
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    log = agent_writable(root + "/nvml.log")
    groups = Cgroups("gpu-a.service", "gpu-b.service")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    procs = []
    try:
        procs = [start_in(groups.paths["gpu-a.service"]), start_in(groups.paths["gpu-b.service"])]
        a, b = procs[0].pid, procs[1].pid
        # Phased trace: 430 = A, 431 = B. Random trace: 433 = A, 434 = B, 435 (C) a pid no process
        # can have: a process gone between samples. (Left as 435, it was now and then a live
        # process of someone else's: pid_max is 32768 on small hosts, and pids wrap.)
        fake_env([PHASED, RANDOM], start=5,
                 pids=f"430={a},431={b},433={a},434={b},435={NO_SUCH_PID}", log=log)
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=30",
                          "--period-ms", "20"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap,nvml",
                         "--nvml-library", FAKE, "--interval", "500ms", "--accounting",
                         "procfs", "--process-metrics-top", "10", "--ledger-period", "1s",
                         state_dir=state) as agent:
            time.sleep(6)
            m, answers = stable_scrape(agent, log)
            top_gpu_column(agent.url)
        # The agent has stopped and written its last period: the ledger holds every tick.
        final = logged(log)
        ledger_report(state, sum(counted_joules(final, d) for d in (0, 1)))
        for dev in (0, 1):
            got = value(m, "wattprobe_node_energy_joules_total", source="nvml", domain="gpu",
                        socket=str(dev))
            want = counted_joules(answers, dev)
            assert want > 500, f"GPU {dev}: the trace should have moved the counter: {want} J"
            assert abs(got - want) < 1e-6, f"GPU {dev}: agent {got} J, counter moved {want} J"
            print(f"ok: GPU {dev}: node gpu energy {got:.3f} J = counter movement {want:.3f} J")
        pkg = value(m, "wattprobe_node_energy_joules_total", source="rapl_powercap",
                    domain="package", socket="0")
        assert pkg > 0, "powercap stopped measuring beside nvml"
        parts, node = gpu_parts(m), gpu_node(m)
        assert abs(parts - node) <= 1e-6 * node, f"gpu parts {parts} J != measured {node} J"
        assert value(m, "wattprobe_agent_conservation_violations_total") == 0
        print(f"ok: gpu idle + workloads + unattributed = {parts:.3f} J = measured {node:.3f} J")
        wa = sum(v for _, v in series(m, "wattprobe_workload_energy_joules_total",
                                      workload="gpu-a.service", domain="gpu"))
        wb = sum(v for _, v in series(m, "wattprobe_workload_energy_joules_total",
                                      workload="gpu-b.service", domain="gpu"))
        assert wa > wb > 0, f"A did most of the work, B some: A {wa} J, B {wb} J"
        # GPU 0 (phased: only A named while B holds a context) is the uncertain remainder; GPU 1
        # (random timing) is sampled once its first ticks, which still see the idle before the
        # work, have passed.
        splits = {(l["device"], l["split"]) for l, _ in series(
            m, "wattprobe_workload_gpu_energy_joules_total", workload="gpu-a.service")}
        assert ("1", "sampled") in splits, splits
        assert {s for d, s in splits} <= {"remainder", "sampled"}, splits
        conf = {l["device"]: l["confidence"] for l, _ in series(m, "wattprobe_gpu_split_info",
                                                               source="nvml")}
        assert conf.get("1") == "confident", conf
        info = series(m, "wattprobe_gpu_info")
        assert len(info) == 2 and all(l["energy"] == "counter" for l, _ in info), info
        # The H200s of the traces were limited to 700 W (their header's power_limit_mw), and
        # NVML's enforced limit is what the family says, per device.
        for dev in (0, 1):
            limit = value(m, "wattprobe_gpu_power_limit_watts", source="nvml", device=str(dev))
            assert limit == 700, f"GPU {dev}: power limit {limit} W, the trace states 700 W"
        print("ok: wattprobe_gpu_power_limit_watts is the traces' 700 W for both GPUs")
        measured = {l["source"]: l["measured"] for l, _ in series(m, "wattprobe_energy_source_info")}
        assert measured == {"rapl_powercap": "true", "nvml": "true"}, measured
        # The fixture tree has no PCI bus: NVML's two GPUs are what embodied carbon counts.
        gpu_kg = value(m, "wattprobe_device_embodied_co2e_grams", component="gpu") / 1000
        assert gpu_kg == 2 * 150, f"embodied carbon counts NVML's 2 GPUs: {gpu_kg} kg"
        d = subprocess.run([BIN, "doctor", "--sysfs-root", root, "--nvml-library", FAKE],
                           capture_output=True, text=True, timeout=60)
        assert "GPUs: 2 (listed by the GPU sources" in d.stdout, d.stdout
        print(f"ok: embodied carbon counts NVML's 2 GPUs ({gpu_kg:.0f} kg), doctor says so")
        unattributed = value(m, "wattprobe_node_unattributed_energy_joules_total", domain="gpu")
        assert unattributed > 0, "C (gone) had a share that must be unattributed"
        top = series(m, "wattprobe_process_energy_joules_total", pid=str(a))
        assert top and top[0][1] > 0.3 * wa, f"process top-N lacks A's GPU energy: {top}"
        print(f"ok: A {wa:.1f} J, B {wb:.1f} J (split {sorted(splits)}), C gone -> unattributed "
              f"{unattributed:.1f} J; process {a} in top-N with {top[0][1]:.1f} J")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        groups.close()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def top_gpu_column(url):
    """`wattprobe top` against the agent, in an 80x24 terminal: a GPU W column, with the
    workers' GPU watts, within the 80 columns."""
    from test_top import Top

    def gpu_cells(top, rows):
        header, table = top.table(rows)
        if "GPU W" not in header:
            return None
        # name kind watts gpu co2e cpu src; an unnamed field would shift the cells.
        cells = {name: c for name, c in table if len(c) == 7}
        if not all(n in cells for n in ("gpu-a.service", "gpu-b.service")):
            return None
        return header, cells

    with Top("--url", url, "--interval", "500ms") as top:
        rows = top.tmux.wait_for(lambda rows: gpu_cells(top, rows) is not None, timeout=20,
                                 what="both GPU workers with a GPU W figure")
        header, cells = gpu_cells(top, rows)
        assert all(len(r) <= 80 for r in rows), rows
        a, b = float(cells["gpu-a.service"][3]), float(cells["gpu-b.service"][3])
        assert a > 0 and b >= 0, (header, cells)
        # The workers hold no CPU: their watts are their GPU's.
        assert abs(float(cells["gpu-a.service"][2]) - a) < 0.01 + 1e-3 * a, cells["gpu-a.service"]
        print(f"ok: top shows GPU W per workload: A {a} W, B {b} W (80 columns)")
        top.tmux.keys("q")
        top.ended_restored(0)


def ledger_report(state, counted):
    """`wattprobe report` over the ledger the GPU run wrote: the GPUs' joules are a field of
    their own, part of each row's energy, and over the run add up to what the counters moved."""
    r = subprocess.run([BIN, "report", "--state-dir", state, "--since", "-1h", "--until", "now",
                        "--format", "json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    groups = {g["group"]: g for g in rep["groups"]}
    for name in ("gpu-a.service", "gpu-b.service"):
        g = groups.get(name)
        assert g and g["gpu_energy_joules"] > 0, f"{name} has no GPU joules: {groups}"
        assert g["gpu_energy_joules"] <= g["energy_joules"] + 1e-9, g
    assert groups["gpu-a.service"]["gpu_energy_joules"] > groups["gpu-b.service"][
        "gpu_energy_joules"], "A did most of the GPU work"
    gpu = rep["totals"]["gpu_energy_joules"]
    assert abs(gpu - counted) <= 1e-6 * counted, f"report GPU {gpu} J, counters moved {counted} J"
    assert rep["totals"]["energy_joules"] > gpu, "package energy is in the total too"
    t = subprocess.run([BIN, "report", "--state-dir", state, "--since", "-1h"],
                       capture_output=True, text=True, timeout=30)
    assert t.returncode == 0 and "GPU J" in t.stdout, t.stdout + t.stderr
    assert all(len(l) < 80 for l in t.stdout.splitlines()), t.stdout
    c = subprocess.run([BIN, "report", "--state-dir", state, "--since", "-1h", "--format", "csv"],
                       capture_output=True, text=True, timeout=30)
    assert c.returncode == 0 and "gpu_energy_joules" in c.stdout.splitlines()[0].split(","), c.stdout
    print(f"ok: ledger and report: GPU {gpu:.3f} J of {rep['totals']['energy_joules']:.3f} J, "
          f"= counter movement {counted:.3f} J; A {groups['gpu-a.service']['gpu_energy_joules']:.1f}"
          f" J, B {groups['gpu-b.service']['gpu_energy_joules']:.1f} J")


def run_nvml(faults, traces=(PHASED, PHASED), seconds=4.5, pids=""):
    root = tempfile.mkdtemp(prefix="wattprobe-nvml-")
    log = agent_writable(root + "/nvml.log")
    fake_env(list(traces), start=5, faults=faults, log=log, pids=pids)
    try:
        with start_agent("--sources", "nvml", "--nvml-library", FAKE, "--interval", "500ms",
                         "--accounting", "procfs") as agent:
            time.sleep(seconds)
            m, answers = stable_scrape(agent, log) if os.path.exists(log) else (scrape(agent.url), [])
            stderr = agent.stderr()
        return m, answers, stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def lost_gpu():
    m, answers, stderr = run_nvml("lost:1@2")
    g0 = value(m, "wattprobe_node_energy_joules_total", domain="gpu", socket="0")
    assert abs(g0 - counted_joules(answers, 0)) < 1e-6
    late = [mj for d, mj in answers if d == 0]
    assert len(late) >= 8, "GPU 0 stopped being read after GPU 1 was lost"
    errors = value(m, "wattprobe_agent_collector_errors_total", collector="nvml", reason="absent")
    assert errors >= 1
    assert value(m, "wattprobe_gpu_info", device="1", state="lost") == 1
    assert "fell off the bus" in stderr, stderr
    assert value(m, "wattprobe_agent_conservation_violations_total") == 0
    print(f"ok: GPU 1 lost at 2 s: GPU 0 kept measuring ({g0:.1f} J), {errors:.0f} errors counted, logged")


def counter_reset():
    m0 = None
    m, answers, _ = run_nvml("reset:0@2")
    g0 = value(m, "wattprobe_node_energy_joules_total", domain="gpu", socket="0")
    vals = [mj for d, mj in answers if d == 0]
    assert any(b < a for a, b in zip(vals, vals[1:])), "the fake did not reset the counter"
    assert abs(g0 - counted_joules(answers, 0)) < 1e-6, (g0, counted_joules(answers, 0))
    assert 0 < g0 < 10_000, f"a reset must not become a wrap: {g0} J"
    assert value(m, "wattprobe_agent_collector_errors_total", collector="nvml",
                 reason="counter_reset") == 1
    del m0
    print(f"ok: counter reset at 2 s: no negative or wrapped delta, total {g0:.1f} J")


def no_counter():
    m, _, _ = run_nvml("energy:not_supported", traces=(PHASED,))
    assert value(m, "wattprobe_gpu_info", device="0", energy="integrated_power") == 1
    g0 = value(m, "wattprobe_node_energy_joules_total", domain="gpu", socket="0")
    # power_mw of the phased S1 stretch is 500-680 W: a few seconds of it.
    assert 1000 < g0 < 4000, g0
    print(f"ok: no energy counter: integrated power {g0:.1f} J, wattprobe_gpu_info energy=integrated_power")


def mig():
    m, _, _ = run_nvml("mig:0", traces=(PHASED,), pids=f"430={os.getpid()}")
    split = series(m, "wattprobe_gpu_split_info", device="0")
    assert split and split[0][0]["split"] == "none" and "MIG" in split[0][0]["why"], split
    assert split[0][0]["confidence"] == "uncertain", split
    assert not series(m, "wattprobe_workload_energy_joules_total", domain="gpu")
    node, parts = gpu_node(m), gpu_parts(m)
    assert node > 0 and abs(node - parts) <= 1e-6 * node
    print("ok: MIG: no per-process split, energy unattributed, split_info says why")


def unavailable():
    fake_env([PHASED], faults="nodriver")
    r = subprocess.run([BIN, "run", "--sources", "nvml", "--nvml-library", FAKE, "--state-dir",
                        tempfile.mkdtemp(), "--listen", "127.0.0.1:0", "--max-ticks", "1", *USER_ARGS],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "Driver Not Loaded" in r.stderr, r.stderr
    d = subprocess.run([BIN, "doctor", "--nvml-library", FAKE], capture_output=True, text=True,
                       timeout=60)
    assert "nvmlInit_v2 failed" in d.stdout and "modprobe nvidia" in d.stdout, d.stdout
    r = subprocess.run([BIN, "run", "--sources", "nvml", "--nvml-library", "/nonexistent/libnvidia-ml.so.1",
                        "--state-dir", tempfile.mkdtemp(), "--listen", "127.0.0.1:0", *USER_ARGS],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot load /nonexistent/libnvidia-ml.so.1" in r.stderr, r.stderr
    print("ok: no driver and no library: nvml unavailable with the reason (run and doctor)")


if __name__ == "__main__":
    if not os.path.exists(FAKE):
        skip(f"fake NVML library not built: {FAKE}")
    if os.geteuid() != 0:
        skip("needs root for test-made cgroups")
    main_case()
    lost_gpu()
    counter_reset()
    no_counter()
    mig()
    unavailable()
    print("1 passed, 0 failed")
