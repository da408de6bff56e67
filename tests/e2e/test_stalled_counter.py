"""A counter that does not advance is never reported as measured energy (issue 12, part 2), through
the real binary on a fixture powercap tree:
- a tree whose counters stand still from the start: `doctor` calls rapl_powercap STALLED, gives
  the likely cause and exits 1 (nothing measured is left); `run --sources rapl_powercap` refuses
  to start; `run` with automatic sources takes the `model` estimate and /metrics says so;
- a tree where only the core counter stands still: doctor names it and exits 0, and /metrics
  marks that domain stalled while the package is measured;
- a package counter that stops while the CPUs are busy (a burner keeps one busy) and moves again:
  wattprobe_agent_source_stalls_total counts it, its wattprobe_energy_source_info drops to 0
  with state="stalled", the package comes from the estimate (measured="false"), conservation
  holds, the log says it once; then it recovers, logged once, and is measured again."""

import os
import shutil
import subprocess
import tempfile
import time

from wattprobe_e2e import (USER_ARGS, BIN, TOOLS, near, scaled, scrape, series, start_agent,
                           start_driver, value, wait_ticks, wait_until)

# The agent calls a counter stalled after 3 busy ticks covering at least 5 s (README "Stalled
# counters"): with 200 ms ticks, 5 s.
INTERVAL = "200ms"
STALL_AFTER_S = 5.0


def info(metrics, source, domain):
    found = series(metrics, "wattprobe_energy_source_info", source=source, domain=domain)
    assert len(found) == 1, f"expected one info series for {source}/{domain}: {found}"
    return found[0]


def no_measured_claim(metrics, source, domain):
    """No series says a stalled counter is measured and in use."""
    for labels, v in series(metrics, "wattprobe_energy_source_info", source=source, domain=domain):
        assert not (labels["measured"] == "true" and v == 1), labels


def package_parts(metrics):
    parts = sum(v for _, v in series(metrics, "wattprobe_workload_energy_joules_total",
                                     domain="package"))
    parts += sum(v for _, v in series(metrics, "wattprobe_node_idle_energy_joules_total",
                                      domain="package"))
    parts += sum(v for _, v in series(metrics, "wattprobe_node_unattributed_energy_joules_total",
                                      domain="package"))
    return parts


def check_conservation(metrics, what):
    assert value(metrics, "wattprobe_agent_conservation_violations_total") == 0, what
    node = sum(v for _, v in series(metrics, "wattprobe_node_energy_joules_total", domain="package"))
    parts = package_parts(metrics)
    assert abs(parts - node) <= 1e-6 * max(node, 1.0), \
        f"{what}: idle + workloads + unattributed = {parts} J, node package energy {node} J"
    print(f"ok: {what}: package parts {parts:.6f} J = node {node:.6f} J (every source)")


def stuck_from_start():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=0",
                          "--period-ms", "20"):
            doctor = subprocess.run([BIN, "doctor", "--sysfs-root", root], capture_output=True,
                                    text=True, timeout=scaled(60))
            print(doctor.stdout.split("\nCPU accounting")[0])
            assert doctor.returncode == 1, f"doctor exit {doctor.returncode}: {doctor.stderr}"
            out = doctor.stdout
            assert "rapl_powercap: STALLED, not available" in out, out
            assert "package socket 0 (intel-rapl:0) stayed at" in out, out
            assert "virtualised PMU" in out and "without passthrough" in out, out
            assert "to fix: " in out, out
            assert "run would use: model" in out, out
            print("ok: doctor calls the still counters stalled, with the cause, and exits 1")

            state = tempfile.mkdtemp(prefix="wattprobe-state-")
            refused = subprocess.run([BIN, "run", "--sysfs-root", root, "--sources",
                                      "rapl_powercap", "--listen", "127.0.0.1:0", "--state-dir",
                                      state, *USER_ARGS], capture_output=True, text=True,
                                      timeout=scaled(60))
            shutil.rmtree(state, ignore_errors=True)
            assert refused.returncode == 1, refused
            assert "source rapl_powercap is not available: stalled" in refused.stderr, \
                refused.stderr
            print("ok: run --sources rapl_powercap refuses a stalled source")

            with start_agent("--sysfs-root", root, "--interval", INTERVAL,
                             "--accounting", "procfs") as agent:
                wait_ticks(agent, 3)
                m = scrape(agent.url)
                assert not series(m, "wattprobe_energy_source_info", source="rapl_powercap"), \
                    "a stalled source at start must not be used"
                labels, v = info(m, "model", "package")
                assert labels["measured"] == "false" and labels["state"] == "ok" and v == 1, labels
                for labels, _ in series(m, "wattprobe_node_energy_joules_total"):
                    assert labels["source"] == "model", labels
                assert value(m, "wattprobe_node_energy_joules_total", source="model",
                             domain="package") > 0
                assert "source rapl_powercap is not used: stalled" in agent.stderr(), \
                    agent.stderr()
                assert "ESTIMATE" in agent.stderr()
                print("ok: run takes the model estimate, labelled measured=\"false\"")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def core_stuck_from_start():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=25,uncore=1",
                          "--period-ms", "20"):
            doctor = subprocess.run([BIN, "doctor", "--sysfs-root", root], capture_output=True,
                                    text=True, timeout=scaled(60))
            assert doctor.returncode == 0, f"doctor exit {doctor.returncode}: {doctor.stdout}"
            assert "rapl_powercap: available" in doctor.stdout, doctor.stdout
            assert "stalled counters" in doctor.stdout and \
                "core socket 0 (intel-rapl:0:0) stayed at" in doctor.stdout, doctor.stdout
            print("ok: doctor names the one stalled counter and exits 0")
            with start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                             INTERVAL, "--accounting", "procfs") as agent:
                wait_ticks(agent, 3)
                m = scrape(agent.url)
                labels, v = info(m, "rapl_powercap", "core")
                assert labels["state"] == "stalled" and v == 0, labels
                no_measured_claim(m, "rapl_powercap", "core")
                assert value(m, "wattprobe_agent_source_stalls_total", source="rapl_powercap",
                             domain="core") == 1
                labels, v = info(m, "rapl_powercap", "package")
                assert labels["state"] == "ok" and v == 1, labels
                assert not series(m, "wattprobe_node_power_watts", domain="core"), \
                    "a counter stalled from the start gives no series"
                print("ok: /metrics marks core stalled and keeps measuring the package")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stalls_then_recovers():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    stall = os.path.join(root, "stall")
    burner = None
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=30,core=10,uncore=2",
                          "--period-ms", "20", "--stall-file", stall), \
             start_agent("--sysfs-root", root, "--interval", INTERVAL,
                         "--accounting", "procfs") as agent:
            wait_ticks(agent, 2)
            m = scrape(agent.url)
            labels, v = info(m, "rapl_powercap", "package")
            assert labels["state"] == "ok" and labels["measured"] == "true" and v == 1, labels
            assert value(m, "wattprobe_agent_source_stalls_total", source="rapl_powercap",
                         domain="package") == 0
            assert not series(m, "wattprobe_energy_source_info", source="model"), \
                "the estimate must not be in use while the counter moves"

            # Busy CPUs are the evidence: a burner keeps one CPU busy while the package counter
            # stands still.
            # Killed below; long enough to outlast the test on a slow host.
            burner = subprocess.Popen([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", "1",
                                       "--seconds", "300"])
            with open(stall, "w") as f:
                f.write("intel-rapl:0\n")
            stopped = time.monotonic()

            def stalled():
                m = scrape(agent.url)
                n = value(m, "wattprobe_agent_source_stalls_total", source="rapl_powercap",
                          domain="package")
                return m if n == 1 else None

            m = wait_until(stalled, 30, "the package counter called stalled")
            took = time.monotonic() - stopped
            print(f"ok: stalled after {took:.1f} s of a still counter under load")
            assert took >= STALL_AFTER_S - 0.5, f"called stalled after only {took:.1f} s"
            wait_ticks(agent, 3)  # a few ticks from the stand-in
            m1 = scrape(agent.url)
            for mm in (m, m1):
                labels, v = info(mm, "rapl_powercap", "package")
                assert labels["state"] == "stalled" and v == 0, labels
                no_measured_claim(mm, "rapl_powercap", "package")
                labels, v = info(mm, "model", "package")
                assert labels["measured"] == "false" and labels["state"] == "ok" and v == 1, labels
                labels, v = info(mm, "rapl_powercap", "core")
                assert labels["state"] == "ok" and v == 1, labels
            assert value(m1, "wattprobe_node_power_watts", source="rapl_powercap",
                         domain="package") == 0
            assert value(m1, "wattprobe_node_power_watts", source="model", domain="package") > 0
            grew = (value(m1, "wattprobe_node_energy_joules_total", source="model",
                          domain="package") -
                    value(m, "wattprobe_node_energy_joules_total", source="model",
                          domain="package"))
            assert grew > 0, "the estimate must carry the package while the counter is stalled"
            check_conservation(m1, "while stalled")

            os.unlink(stall)

            def recovered():
                m = scrape(agent.url)
                labels, v = info(m, "rapl_powercap", "package")
                return m if labels["state"] == "ok" and v == 1 else None

            wait_until(recovered, 10, "the package counter recovered")
            wait_ticks(agent, 2)
            gauges = []
            for _ in range(9):
                wait_ticks(agent, 1)
                gauges.append(scrape(agent.url))
            readings = sorted(value(g, "wattprobe_node_power_watts", source="rapl_powercap",
                                    domain="package") for g in gauges)
            print(f"recovered package gauges: {[round(r, 3) for r in readings]}")
            near(readings[len(readings) // 2], 30.0, 0.02, "recovered package watts (median)")
            m2 = gauges[-1]
            labels, v = info(m2, "model", "package")
            assert labels["state"] == "standby" and v == 0, labels
            assert value(m2, "wattprobe_node_power_watts", source="model", domain="package") == 0
            assert value(m2, "wattprobe_agent_source_stalls_total", source="rapl_powercap",
                         domain="package") == 1
            check_conservation(m2, "after recovery")
            burner.kill()
            burner.wait()
            burner = None
            agent.stop()
            log = agent.stderr()
        stalled_lines = [l for l in log.splitlines() if "(intel-rapl:0) stalled" in l]
        recovered_lines = [l for l in log.splitlines() if "(intel-rapl:0) recovered" in l]
        assert len(stalled_lines) == 1, log
        assert "now comes from model" in stalled_lines[0], stalled_lines
        assert len(recovered_lines) == 1, log
        print(f"ok: logged once each:\n  {stalled_lines[0]}\n  {recovered_lines[0]}")
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    stuck_from_start()
    core_stuck_from_start()
    stalls_then_recovers()
    print("3 passed, 0 failed")
