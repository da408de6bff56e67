"""The ledger and `wattprobe report` end to end (issue 6): the real agent on a fixture powercap
tree writes one-second ledger periods for a few seconds; the report's totals equal the sum of the
ledger's lines, its per-workload energy and grams match the agent's own /metrics counters, and
malformed lines are named and skipped."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from wattprobe_e2e import (ledger_lines, near, run_report, scaled, scrape, series, start_agent,
                           start_driver, value, wait_ticks)

INTERVAL_S = 0.25
WATTS = 20.0
TICK_JOULES = WATTS * INTERVAL_S  # the energy of one tick: the bound between two readers


def metric_by_workload(metrics, name, **want):
    out = {}
    for labels, v in series(metrics, name, **want):
        out[labels["workload"]] = out.get(labels["workload"], 0.0) + v
    return out


def sums_by_workload(lines, field):
    out = {}
    for _, _, j in lines:
        if j["type"] == "workload":
            out[j["workload"]] = out.get(j["workload"], 0.0) + j[field]
    return out


def sci(state, rep):
    """SCI = (E x I + M) / R per group and in total, from the same ledger, with R given; the
    table says which E, I and M went in; a bad R is refused naming the option."""
    units = 1500
    r = run_report("--state-dir", state, "--format", "json", "--functional-units", str(units),
                   "--functional-unit-name", "requests")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["sci"]["R"] == units and j["sci"]["functional_unit"] == "requests", j["sci"]
    assert j["sci"]["formula"] == "(E * I + M) / R"
    for row in j["groups"] + [j["totals"]]:
        s = row["sci"]
        want = (row["operational_co2e_grams"] + row["embodied_co2e_grams"]) / units
        near(s["grams_per_unit"], want, 1e-9, f"SCI of {row.get('group', 'the total')}")
        # E x I is the operational grams: E in kWh times the achieved I. A group with no
        # energy (a kernel thread's few ms that fell in ticks with no dynamic energy) has no
        # achieved intensity: I is null there, and E x I zero.
        if s["E_kwh"] == 0:
            assert s["I_grams_per_kwh"] is None and s["E_times_I_grams"] == 0, s
        else:
            near(s["E_kwh"] * s["I_grams_per_kwh"], s["E_times_I_grams"], 1e-9, "E x I")
        assert s["M_grams"] == row["embodied_co2e_grams"] and s["R"] == units
    # The SCI of the whole host's rows adds up to the total's: R is shared, grams add.
    parts = sum(g["sci"]["grams_per_unit"] for g in j["groups"])
    parts += j["node"]["idle"]["sci"]["grams_per_unit"]
    parts += j["node"]["unattributed"]["sci"]["grams_per_unit"]
    near(parts, j["totals"]["sci"]["grams_per_unit"], 1e-9, "SCI rows add up to the total")
    t = run_report("--state-dir", state, "--functional-units", str(units),
                   "--functional-unit-name", "requests")
    assert t.returncode == 0, t.stderr
    assert "SCI (ISO/IEC 21031) = (E x I + M) / R, R = 1500 requests" in t.stdout, t.stdout
    assert "g/requests" in t.stdout and all(len(l) < 80 for l in t.stdout.splitlines()), t.stdout
    print(t.stdout)
    c = run_report("--state-dir", state, "--format", "csv", "--functional-units", str(units))
    assert c.returncode == 0 and c.stdout.splitlines()[0].endswith(",sci_grams_per_functional_unit")
    plain = run_report("--state-dir", state, "--format", "json")
    assert "sci" not in json.loads(plain.stdout), "SCI only when R is given"
    for args, needle in ((["--functional-units", "0"], "--functional-units"),
                         (["--functional-units", "many"], '"many"'),
                         (["--functional-unit-name", "requests"], "--functional-unit-name")):
        bad = run_report("--state-dir", state, *args)
        assert bad.returncode == 2 and needle in bad.stderr, (args, bad.stderr)
    print(f"ok: SCI per group and in total, {j['totals']['sci']['grams_per_unit']:.6g} g/request")


def main():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", f"package={WATTS:g}",
                          "--period-ms", "20") as driver:
            with start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                             f"{int(INTERVAL_S * 1000)}ms", "--accounting", "procfs",
                             "--ledger-period", "1s", "--grid-intensity", "300",
                             "--embodied-kg", "1000", state_dir=state) as agent:
                # Some CPU work, so a workload besides the background has a share of the energy.
                busy = subprocess.Popen([sys.executable, "-c",
                                         "import time\nt=time.time()\nwhile time.time()-t<3: pass"])
                # Six seconds of ticks at least (24 of 250 ms): six one-second ledger periods.
                wait_ticks(agent, 24)
                busy.wait(scaled(10))
                # Freeze the counter: the ticks from here on add no energy, so /metrics and the
                # ledger (which also gets the ticks up to the stop) read the same joules.
                driver.proc.send_signal(signal.SIGSTOP)
                wait_ticks(agent, 3)  # ticks that began after the freeze
                metrics = scrape(agent.url)
                assert agent.stop() == 0, agent.stderr()
                driver.proc.send_signal(signal.SIGCONT)

        lines = ledger_lines(state)
        periods = {j["start"] for _, _, j in lines}
        print(f"ledger: {len(lines)} lines over {len(periods)} one-second periods")
        assert len(periods) >= 6, f"too few periods in the ledger: {sorted(periods)}"
        assert all(j["v"] == 1 and j["period_seconds"] == 1 and j["measured"] for _, _, j in lines)
        written = value(metrics, "wattprobe_agent_ledger_lines_written_total")
        assert 0 < written <= len(lines), f"lines_written_total {written}, file has {len(lines)}"
        assert value(metrics, "wattprobe_agent_ledger_errors_total") == 0

        # /metrics against the ledger, workload by workload. The frozen counter leaves only
        # rounding, but one tick's energy is the bound the design promises.
        m_joules = metric_by_workload(metrics, "wattprobe_workload_energy_joules_total",
                                      domain="package")
        m_grams = metric_by_workload(metrics, "wattprobe_workload_operational_co2e_grams_total")
        l_joules = sums_by_workload(lines, "joules")
        l_grams = sums_by_workload(lines, "operational_co2e_grams")
        grams_per_joule = 300 / 3.6e6
        for w in set(m_joules) | set(l_joules):
            diff = abs(m_joules.get(w, 0) - l_joules.get(w, 0))
            assert diff <= TICK_JOULES, f"{w}: /metrics {m_joules.get(w)} J, ledger {l_joules.get(w)} J"
            gdiff = abs(m_grams.get(w, 0) - l_grams.get(w, 0))
            assert gdiff <= TICK_JOULES * grams_per_joule, \
                f"{w}: /metrics {m_grams.get(w)} g, ledger {l_grams.get(w)} g"
        top = max(l_joules, key=l_joules.get)
        near(l_joules[top], m_joules[top], 1e-6, f"ledger vs /metrics joules of {top}")
        node = sum(v for _, v in series(metrics, "wattprobe_node_energy_joules_total",
                                        domain="package"))
        ledger_node = sum(j["joules"] for _, _, j in lines)
        near(ledger_node, node, TICK_JOULES / node, "ledger vs /metrics node energy")

        # The report's totals are the sums of the lines.
        r = run_report("--state-dir", state, "--format", "json")
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        for field, key in (("joules", "energy_joules"), ("cpu_seconds", "cpu_seconds"),
                           ("operational_co2e_grams", "operational_co2e_grams"),
                           ("embodied_co2e_grams", "embodied_co2e_grams")):
            near(rep["totals"][key], sum(j[field] for _, _, j in lines), 1e-9, f"report total {key}")
        for g in rep["groups"]:
            near(g["energy_joules"], l_joules[g["group"]], 1e-9, f"report energy of {g['group']}")
        near(rep["node"]["idle"]["energy_joules"],
             sum(j["joules"] for _, _, j in lines if j["type"] == "idle"), 1e-9, "report idle")
        near(rep["totals"]["operational_grams_per_kwh"], 300, 1e-6, "gCO2e per kWh achieved")
        assert rep["totals"]["measured_share"] == 1.0
        assert rep["period"]["lines"] == len(lines) and rep["period"]["skipped_lines"] == 0

        # By kind, as a table and as CSV: the same total, every table line in 80 columns.
        r = run_report("--state-dir", state, "--by", "kind")
        assert r.returncode == 0, r.stderr
        print(r.stdout)
        assert all(len(l) < 80 for l in r.stdout.splitlines()), "the table is wider than 80"
        r = run_report("--state-dir", state, "--by", "kind", "--format", "csv")
        assert r.returncode == 0 and r.stdout.startswith("row,kind,energy_joules,"), r.stdout
        total = [l for l in r.stdout.splitlines() if l.startswith("total,")][0]
        near(float(total.split(",")[2]), rep["totals"]["energy_joules"], 1e-9, "CSV total")

        # A malformed line is named and skipped; the report still prints, with the same totals.
        day = sorted(os.listdir(os.path.join(state, "ledger")))[-1]
        path = os.path.join(state, "ledger", day)
        with open(path) as f:
            count = sum(1 for _ in f)
        with open(path, "a") as f:
            f.write('{"v":1,"start":"not a time"}\n')
        r = run_report("--state-dir", state, "--format", "json")
        assert r.returncode == 0, r.stderr
        assert f"{path}:{count + 1}: field \"start\"" in r.stderr, r.stderr
        near(json.loads(r.stdout)["totals"]["energy_joules"], rep["totals"]["energy_joules"],
             1e-12, "totals with a malformed line skipped")

        sci(state, rep)

        r = run_report("--state-dir", state, "--by", "pod")
        assert r.returncode == 2 and '--by' in r.stderr and '"pod"' in r.stderr, r.stderr
        print("ok: report on the agent's ledger")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
