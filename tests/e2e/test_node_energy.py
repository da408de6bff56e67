"""The real binary on a fixture powercap tree that a driver advances at a known power: /metrics
shows those watts within 1 % and the counters grow by exactly the driver's joules, also when the
driver wraps energy_uj several times (issue 2)."""

import shutil
import signal
import tempfile
import time

from wattprobe_e2e import (near, read_json, scrape, series, start_agent, start_driver, value,
                           wait_ticks)


def frozen_read(driver, agent, report):
    """/metrics and the driver's report at one counter state: the driver stopped, then two ticks
    (one began after the stop) over the frozen tree. The caller resumes the driver."""
    driver.proc.send_signal(signal.SIGSTOP)
    wait_ticks(agent, 2)
    return scrape(agent.url), read_json(report)


def run_case(scenario, watts, expect, max_range=None):
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    report = root + "/driver.json"
    extra = ["--scenario", scenario, "--watts", watts, "--period-ms", "20", "--report", report]
    if max_range:
        extra += ["--max-range-uj", str(max_range)]
    try:
        with start_driver(root, *extra) as driver, \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap",
                         "--interval", "200ms", "--accounting", "procfs") as agent:
            # Both sides of each energy comparison are read with the driver stopped, so a busy
            # host that delays a tick does not put its lag between them.
            m0, j0 = frozen_read(driver, agent, report)
            driver.proc.send_signal(signal.SIGCONT)
            # The resumed driver wrote the frozen stretch in one step: gauges from ticks after it.
            wait_ticks(agent, 2)
            # The gauge is one tick's mean power. A read that lands late on a loaded host moves
            # one tick's reading, not the next ones: the median of several ticks is what a user
            # reading the gauge sees, and it must be within 1 %.
            gauges = []
            for _ in range(9):
                wait_ticks(agent, 1)
                gauges.append(scrape(agent.url))
            m1, j1 = frozen_read(driver, agent, report)
            driver.proc.send_signal(signal.SIGCONT)
            for (domain, socket, zone, w) in expect:
                readings = sorted(value(g, "wattprobe_node_power_watts", source="rapl_powercap",
                                        domain=domain, socket=socket) for g in gauges)
                print(f"{scenario} {domain}/{socket} gauges: {[round(r, 3) for r in readings]}")
                near(readings[len(readings) // 2], w, 0.01,
                     f"{scenario} {domain} socket {socket} watts (median of {len(readings)} ticks)")
                e0 = value(m0, "wattprobe_node_energy_joules_total", domain=domain, socket=socket)
                e1 = value(m1, "wattprobe_node_energy_joules_total", domain=domain, socket=socket)
                added = j1["joules"][zone] - j0["joules"][zone]
                # Read at one frozen state; the report may lag the tree by a driver step: one
                # driver period, and 200 ms more, at the zone's power, bound it.
                slack = w * (0.2 + 0.02) + 1e-6
                if abs((e1 - e0) - added) > slack:
                    raise AssertionError(
                        f"{domain}/{socket}: counter grew {e1 - e0} J, driver added {added} J")
                print(f"ok: {scenario} {domain}/{socket}: counter +{e1 - e0:.3f} J, driver +{added:.3f} J")
                assert e1 >= e0, "counter went backwards"
            info = series(m1, "wattprobe_energy_source_info", source="rapl_powercap")
            assert info and all(l["measured"] == "true" for l, _ in info), info
        assert agent.proc.returncode == 0, agent.stderr()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def wraparound_exact():
    """A driver that wraps energy_uj many times while the agent runs: the exported counter grows
    by exactly the energy the driver added. The driver is frozen (SIGSTOP) around each
    comparison so both sides are read at the same counter state; what remains is at most the one
    driver step that may be written to the tree but not yet to its report."""
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    report = root + "/driver.json"
    period_ms, watts, range_uj = 10, 42.0, 40_000_000
    try:
        # 42 W over a 40 J range wraps about once a second; the agent reads every 100 ms, far
        # faster than the range lasts, as a reader of the real counter must.
        with start_driver(root, "--scenario", "one_socket", "--watts", f"package={watts:g}",
                          "--period-ms", str(period_ms), "--max-range-uj", str(range_uj),
                          "--report", report) as driver, \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                         "100ms", "--accounting", "procfs") as agent:
            wait_ticks(agent, 2)
            m0, j0 = frozen_read(driver, agent, report)
            driver.proc.send_signal(signal.SIGCONT)
            time.sleep(5)  # wall time for the driver to wrap several times
            m1, j1 = frozen_read(driver, agent, report)
            driver.proc.send_signal(signal.SIGCONT)
        e0 = value(m0, "wattprobe_node_energy_joules_total", domain="package", socket="0")
        e1 = value(m1, "wattprobe_node_energy_joules_total", domain="package", socket="0")
        added = j1["joules"]["intel-rapl:0"] - j0["joules"]["intel-rapl:0"]
        wraps = added / (range_uj / 1e6)
        print(f"driver wrapped energy_uj {wraps:.1f} times in the compared stretch")
        assert wraps >= 3, "the driver did not wrap several times"
        # A driver step is watts × the time that really passed, a little over one period on a
        # busy host; two steps bound the report's lag behind the tree at the two freezes.
        step = watts * period_ms / 1000
        if abs((e1 - e0) - added) > 2 * step:
            raise AssertionError(f"counter grew {e1 - e0:.6f} J across wraps, driver added {added:.6f} J")
        print(f"ok: counter +{e1 - e0:.6f} J, driver +{added:.6f} J (one driver step = {step} J)")
        errors = series(m1, "wattprobe_agent_collector_errors_total", collector="rapl_powercap")
        assert not errors, f"wraparound must not be an error: {errors}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run_case("one_socket", "package=42", [("package", "0", "intel-rapl:0", 42.0)])
    run_case("two_socket_with_dram", "package=42,dram=7",
             [("package", "0", "intel-rapl:0", 42.0), ("dram", "0", "intel-rapl:0:0", 7.0),
              ("package", "1", "intel-rapl:1", 42.0), ("dram", "1", "intel-rapl:1:0", 7.0)])
    wraparound_exact()
    print("1 passed, 0 failed")
