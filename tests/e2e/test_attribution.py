"""Per-workload attribution end to end with the real binary (issue 4):
- ground truth: a powercap driver whose package power follows the real host load
  (20 W + 60 W × busy fraction), CPU burners in two test-made cgroups at 3:1 — the workloads'
  energies stand 3:1 within 2 %, and idle + workloads + unattributed equals the driver's
  energy within 0.5 %;
- a cgroup whose only work is 2,000 short processes gets its CPU share of the dynamic energy
  within 5 %;
- estimated mode on a host without counters: every workload series is there, labelled as an
  estimate;
- the learned idle estimator (no --idle-watts): with utilisation stepping from idle to busy, the
  agent finds the fixture's known 20 W idle power within IDLE_TOLERANCE_W;
- --process-metrics-top: a burner process appears in wattprobe_process_energy_joules_total with
  its comm and workload, holding its workload's energy (it is the cgroup's only process)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from wattprobe_e2e import (TOOLS, Cgroups, near, read_json, scaled, scrape, series, skip,
                           start_agent, start_driver, value, wait_ticks)


# Workload names of this run: the agent reads every cgroup of the host, and another run of these
# tests on the same host (a second checkout, a CI job beside this one) would add to the same name.
TAG = os.getpid()


def workload_energy(metrics, workload, domain="package"):
    return sum(v for l, v in series(metrics, "wattprobe_workload_energy_joules_total",
                                    workload=workload, domain=domain))


def all_parts(metrics, domain="package"):
    parts = sum(v for l, v in series(metrics, "wattprobe_workload_energy_joules_total", domain=domain))
    parts += sum(v for l, v in series(metrics, "wattprobe_node_idle_energy_joules_total", domain=domain))
    parts += sum(v for l, v in series(metrics, "wattprobe_node_unattributed_energy_joules_total",
                                      domain=domain))
    return parts


def frozen(driver, agent, report):
    driver.proc.send_signal(signal.SIGSTOP)
    # Two ticks counted from here: at least one began after the counter froze, so the agent's
    # figures hold every joule the driver's report does.
    wait_ticks(agent, 2)
    m, j = scrape(agent.url), read_json(report)
    driver.proc.send_signal(signal.SIGCONT)
    return m, j


def ground_truth(mode="bpf"):
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    A, B = f"burner-a-{TAG}.service", f"burner-b-{TAG}.service"
    report = root + "/driver.json"
    groups = Cgroups(A, B)
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20",
                          "--report", report) as driver, \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                         "1s", "--accounting", mode, "--idle-watts", "package=20") as agent:
            # The fixture's idle power is known (20 W), so this checks the split itself; the
            # learned idle estimator is checked on its own in tests/agent/tick/attribution_test.cc.
            m0, j0 = frozen(driver, agent, report)
            # The resumed driver writes the frozen stretch's energy in one step; let that land
            # in idle ticks, not in the tick where the first burner starts.
            wait_ticks(agent, 2)
            cpu0 = {n: groups.usage_seconds(n) for n in groups.paths}
            burners = [subprocess.Popen([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", r,
                                         "--seconds", "5", "--cgroup", groups.paths[n]])
                       for n, r in ((A, "0.75"), (B, "0.25"))]
            for b in burners:
                assert b.wait(scaled(30)) == 0, "cpu_burner failed"
            # The burners' last CPU time must meet energy in ticks before the freeze: a tick over
            # the frozen counter would give it none.
            wait_ticks(agent, 2)
            m1, j1 = frozen(driver, agent, report)
        a = workload_energy(m1, A) - workload_energy(m0, A)
        b = workload_energy(m1, B) - workload_energy(m0, B)
        assert a > 0 and b > 0, (
            f"burner workloads got no energy: a={a} b={b}; kernel CPU a="
            f"{groups.usage_seconds(A) - cpu0[A]:.3f}s b={groups.usage_seconds(B) - cpu0[B]:.3f}s; "
            f"agent's CPU series of A: {series(m1, 'wattprobe_workload_cpu_seconds_total', workload=A)}; "
            f"energy series of A: {series(m1, 'wattprobe_workload_energy_joules_total', workload=A)}; "
            f"node energy +{all_parts(m1) - all_parts(m0):.3f} J, idle +"
            f"{sum(v for _, v in series(m1, 'wattprobe_node_idle_energy_joules_total')) - sum(v for _, v in series(m0, 'wattprobe_node_idle_energy_joules_total')):.3f} J; "
            f"sources: {series(m1, 'wattprobe_energy_source_info')}; "
            f"stalls: {series(m1, 'wattprobe_agent_source_stalls_total')}; the driver's own "
            f"package counter +{j1['joules']['intel-rapl:0'] - j0['joules']['intel-rapl:0']:.3f} "
            f"J; the agent's log: {agent.stderr()[-1500:]}")
        # The burners aim at 3:1 in CPU time; on a loaded host they get less than they ask, so
        # the truth the energies must match is the CPU the kernel itself charged each cgroup.
        kernel_ratio = ((groups.usage_seconds(A) - cpu0[A]) /
                        (groups.usage_seconds(B) - cpu0[B]))
        print(f"burners reached {kernel_ratio:.3f}:1 in kernel-charged CPU time")
        cpu_a = sum(v for _, v in series(m1, "wattprobe_workload_cpu_seconds_total", workload=A))
        cpu_b = sum(v for _, v in series(m1, "wattprobe_workload_cpu_seconds_total", workload=B))
        cpu0_a = sum(v for _, v in series(m0, "wattprobe_workload_cpu_seconds_total", workload=A))
        cpu0_b = sum(v for _, v in series(m0, "wattprobe_workload_cpu_seconds_total", workload=B))
        print(f"agent: cpu a={cpu_a:.3f}s b={cpu_b:.3f}s, energy a={a:.3f}J b={b:.3f}J; CPU ratio "
              f"{(cpu_a - cpu0_a) / (cpu_b - cpu0_b):.4f} vs the kernel's {kernel_ratio:.4f}")
        driver_joules = j1["joules"]["intel-rapl:0"] - j0["joules"]["intel-rapl:0"]
        parts = all_parts(m1) - all_parts(m0)
        # One line for the validation figures (mean and worst over repeated runs).
        print(f"ground truth ({mode}): energy ratio {a / b:.4f}, kernel CPU ratio {kernel_ratio:.4f}, "
              f"error {100 * (a / b / kernel_ratio - 1):+.3f} %; vs 3:1 "
              f"{100 * (a / b / 3 - 1):+.3f} %; parts vs driver "
              f"{100 * (parts / driver_joules - 1):+.4f} %")
        near(a / b, kernel_ratio, 0.02, "energy ratio of the burner workloads vs their CPU ratio")
        if abs(kernel_ratio - 3.0) > 0.06:
            print(f"note: the host was too busy for 3:1 ({kernel_ratio:.3f}:1)")
        else:
            near(a / b, 3.0, 0.02, "energy ratio of the 3:1 burner workloads")
        near(parts, driver_joules, 0.005, "idle + workloads + unattributed vs driver energy")
        measured = (value(m1, "wattprobe_node_energy_joules_total", domain="package", socket="0")
                    - value(m0, "wattprobe_node_energy_joules_total", domain="package", socket="0"))
        near(parts, measured, 1e-9, "conservation against the agent's own measured energy")
        violations = value(m1, "wattprobe_agent_conservation_violations_total")
        assert violations == 0, f"{violations} conservation violations"
    finally:
        groups.close()
        shutil.rmtree(root, ignore_errors=True)


def short_lived(mode="bpf"):
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    S = f"spawner-{TAG}.service"
    groups = Cgroups(S)
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                         "1s", "--accounting", mode, "--idle-watts", "package=20") as agent:
            m0 = scrape(agent.url)
            subprocess.run([os.path.join(TOOLS, "cpu_burner"), "--spawn", "2000", "--each-ms", "2",
                            "--cgroup", groups.paths[S]], check=True, timeout=scaled(120))
            # The spawner's last CPU reaches /metrics only at the next 1 s tick; wait until two
            # ticks in a row add nothing, so the comparison with cpu.stat covers the whole run.
            m1, last = scrape(agent.url), None
            deadline = time.time() + scaled(10)
            while time.time() < deadline:
                wait_ticks(agent, 1)
                m1 = scrape(agent.url)
                now = sum(v for _, v in series(m1, "wattprobe_workload_cpu_seconds_total",
                                               workload=S))
                if now == last:
                    break
                last = now

        def delta(name, **kw):
            return (sum(v for _, v in series(m1, name, **kw)) -
                    sum(v for _, v in series(m0, name, **kw)))

        cpu_w = delta("wattprobe_workload_cpu_seconds_total", workload=S)
        kernel_cpu = groups.usage_seconds(S)
        print(f"short-lived ({mode}): agent {cpu_w:.3f} CPU s, kernel cpu.stat {kernel_cpu:.3f} s")
        assert cpu_w >= 0.95 * kernel_cpu, "short-lived CPU time went missing"
        cpu_all = delta("wattprobe_workload_cpu_seconds_total")
        dynamic = (delta("wattprobe_workload_energy_joules_total", domain="package") +
                   delta("wattprobe_node_unattributed_energy_joules_total", domain="package"))
        got = delta("wattprobe_workload_energy_joules_total", workload=S,
                    domain="package")
        near(got, dynamic * cpu_w / cpu_all, 0.05, "short-lived workload energy vs CPU share × dynamic")
    finally:
        groups.close()
        shutil.rmtree(root, ignore_errors=True)


def estimated_mode():
    """This VM has no RAPL: with --sources auto the agent estimates, and says so everywhere."""
    if os.path.exists("/sys/class/powercap/intel-rapl:0"):
        print("note: this host has RAPL; estimated mode is checked on hosts without counters")
        return
    groups = Cgroups("estimate.service")
    try:
        with start_agent("--interval", "200ms", "--accounting", "auto") as agent:
            burner = subprocess.Popen([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", "0.5",
                                       "--seconds", "2", "--cgroup", groups.paths["estimate.service"]])
            assert burner.wait(scaled(30)) == 0
            wait_ticks(agent, 2)
            m = scrape(agent.url)
        info = series(m, "wattprobe_energy_source_info")
        assert info and all(l["measured"] == "false" and l["source"] == "model" for l, _ in info), info
        wl = series(m, "wattprobe_workload_energy_joules_total", workload="estimate.service")
        assert wl, "the burner's workload has no energy series"
        for l, v in series(m, "wattprobe_workload_energy_joules_total"):
            assert l["source"] == "model" and l["measured"] == "false", l
        assert sum(v for _, v in wl) > 0
        print(f"ok: estimated mode, {len(series(m, 'wattprobe_workload_energy_joules_total'))} "
              "workload series, all source=model measured=false")
    finally:
        groups.close()


# The learned idle is the intercept of a Theil-Sen line of power on utilisation
# (docs/methodology.md, "The idle estimator"). The fixture draws exactly 20 W + 60 W x busy, with
# busy the host's capacity less /proc/stat's idle time every 20 ms; the agent's per-tick pairs
# scatter more (its utilisation and energy windows are not the fixture's, and eBPF counts an idle
# stretch only when the CPU leaves idle). The least-squares line used before found 15.4-23.6 W
# over ~20 ticks on a shared 2-CPU host (8 runs); the medians found 20.19 W here (validate
# --idle-truth checks 5 % in tests/e2e/test_validate.py). 6 W here still tells
# a working estimator from a broken one: no estimate at all reads 0 W, and one that fell back to
# the low-utilisation mean is asserted against by its method label.
IDLE_TOLERANCE_W = 6.0


def host_busy_fraction(seconds):
    """The host's busy share of all CPUs over `seconds`, from /proc/stat."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def learned_idle():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    groups = Cgroups("stepper.service")
    burner = os.path.join(TOOLS, "cpu_burner")
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                         "1s", "--accounting", "bpf") as agent:
            # Utilisation must vary for the regression: step every CPU through 0-90 % busy.
            quiet_busy = None
            for ratio in ("0", "0.9", "0.3", "0.6", "0.1"):
                if ratio == "0":
                    quiet_busy = host_busy_fraction(4)
                    continue
                steps = [subprocess.Popen([burner, "--busy-ratio", ratio, "--seconds", "4",
                                           "--cgroup", groups.paths["stepper.service"]])
                         for _ in range(os.cpu_count() or 1)]
                for b in steps:
                    assert b.wait(scaled(30)) == 0, "cpu_burner failed"
            wait_ticks(agent, 2)
            m = scrape(agent.url)
        found = series(m, "wattprobe_node_idle_power_watts", domain="package")
        assert len(found) == 1, found
        if quiet_busy > 0.3:
            # Other work kept the host busy while the test idled, so no tick was near idle and
            # the intercept cannot be learned from this host's ticks: not a verdict either way.
            print(f"SKIPPED (learned idle only): the host was {quiet_busy:.0%} busy while the "
                  "test idled; the estimator needs low-utilisation ticks")
            return
        labels, watts = found[0]
        print(f"learned idle: {watts:.3f} W by {labels['method']} (fixture: 20 W; "
              f"error {watts - 20:+.3f} W)")
        assert labels["method"] == "regression", f"idle not found by regression: {labels}"
        near(watts, 20.0, IDLE_TOLERANCE_W / 20.0, "learned idle power vs the fixture's 20 W")
    finally:
        groups.close()
        shutil.rmtree(root, ignore_errors=True)


# On a host oversubscribed by other work (six busy loops and compilers on two CPUs) a dozen
# processes gathered more energy than a burner given 2 s of one CPU, which got 0.3 CPU-s of
# them at nice -10: the top 5 then missed it. Twenty still bounds the family.
TOP_PROCESSES = 20


def process_family():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    groups = Cgroups("burner-p.service")
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                         "500ms", "--accounting", "bpf", "--idle-watts", "package=20",
                         "--process-metrics-top", str(TOP_PROCESSES)) as agent:
            # A whole CPU at nice -10, so the burner's energy stands out on a busy host too.
            burner = subprocess.Popen([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", "1",
                                       "--seconds", "2", "--cgroup", groups.paths["burner-p.service"]],
                                      preexec_fn=lambda: os.nice(-10))
            assert burner.wait(scaled(30)) == 0, "cpu_burner failed"
            wait_ticks(agent, 2)
            m = scrape(agent.url)
        family = series(m, "wattprobe_process_energy_joules_total")
        assert 0 < len(family) <= TOP_PROCESSES, \
            f"expected 1..{TOP_PROCESSES} process series, got {len(family)}"
        for labels, _ in family:
            assert set(labels) == {"pid", "comm", "workload"}, labels
        mine = [(l, v) for l, v in family if l["pid"] == str(burner.pid)]
        assert mine, f"burner pid {burner.pid} is not among the top processes: {family}"
        labels, joules = mine[0]
        assert labels["comm"] == "cpu_burner", labels
        assert labels["workload"] == "burner-p.service", labels
        workload = sum(workload_energy(m, "burner-p.service", d) for d in ("package", "dram"))
        near(joules, workload, 0.02, "the burner process's energy vs its workload's")
    finally:
        groups.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        skip("needs root: creates cgroups and loads eBPF")
    ground_truth()
    short_lived()
    estimated_mode()
    process_family()
    learned_idle()
    print("1 passed, 0 failed")
