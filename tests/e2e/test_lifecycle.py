"""Device lifecycle end to end (issue 20): the real agent on fixture sysfs trees written with the
kernel's file names and units (tests/support/fake_device_health.h holds the values).

1. A laptop with two batteries (one counting energy, one charge), throttle counters, temperature
   sensors and a Jetson-style ina3221 with three rails: the health families carry the fixture's
   values, the board input is the platform energy and its parts are rails never added, every rail
   is labelled integrated power; doctor lists what it found and why the NVMe and SATA wear are
   not read.
2. `wattprobe report --replacement-embodied-kg --replacement-power-ratio` on the ledger that run
   wrote matches a hand calculation from the ledger's own lines.
3. Malformed battery values: no series, the reason in the log and in doctor, the agent keeps
   running.
4. A machine with none of these: no health series; a [source.model] board estimate labelled
   measured="false"."""

import os
import re
import shutil
import subprocess
import tempfile

from wattprobe_e2e import (BIN, TOOLS, Process, ledger_lines, near, run_report, scaled, scrape,
                           series, start_agent, value, wait_ticks)

INTERVAL = "250ms"
SECONDS_PER_YEAR = 365.25 * 86400


def tree(*scenarios):
    root = tempfile.mkdtemp(prefix="wattprobe-device-")
    subprocess.run([os.path.join(TOOLS, "fake_device_tree"), "--root", root, *scenarios],
                   check=True)
    # The real cgroup tree and kernel files for the accounting; the CPUs' folders stay the
    # fixture's (their throttle counters).
    for rel in ("sys/kernel", "sys/fs"):
        link = os.path.join(root, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/" + rel, link)
    return root


def doctor(root, *extra):
    return subprocess.run([BIN, "doctor", "--sysfs-root", root, "--dev-root", root, *extra],
                          capture_output=True, text=True, timeout=scaled(120))


def laptop_and_jetson():
    root = tree("laptop", "throttle", "temperatures", "ina3221", "storage")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    try:
        with start_agent("--sysfs-root", root, "--dev-root", root, "--sources", "hwmon",
                         "--accounting", "procfs", "--interval", INTERVAL, "--ledger-period",
                         "1s", "--grid-intensity", "300", "--embodied-kg", "1000",
                         "--install-date", "2024-01-01", state_dir=state) as agent:
            # Ticks over at least 3 s (12 of 250 ms): several 1 s ledger periods for the report.
            wait_ticks(agent, 12)
            m = scrape(agent.url)
            assert agent.stop() == 0, agent.stderr()
            log = agent.stderr() + agent.stdout()

        near(value(m, "wattprobe_device_battery_capacity_ratio", battery="BAT0"), 0.836, 1e-12,
             "BAT0 capacity (energy_full / energy_full_design)")
        near(value(m, "wattprobe_device_battery_capacity_ratio", battery="BAT1"), 0.75, 1e-12,
             "BAT1 capacity (charge_full / charge_full_design)")
        assert value(m, "wattprobe_device_battery_cycle_count", battery="BAT0") == 312
        assert value(m, "wattprobe_device_battery_cycle_count", battery="BAT1") == 57
        near(value(m, "wattprobe_device_battery_discharge_watts", battery="BAT0"), 9.5, 1e-12,
             "BAT0 discharge power (power_now)")
        near(value(m, "wattprobe_device_battery_discharge_watts", battery="BAT1"), 13.68, 1e-12,
             "BAT1 discharge power (current_now x voltage_now)")
        j0 = value(m, "wattprobe_device_battery_discharge_joules_total", battery="BAT0")
        j1 = value(m, "wattprobe_device_battery_discharge_joules_total", battery="BAT1")
        assert j0 > 0, "BAT0 discharged nothing"
        near(j1 / j0, 13.68 / 9.5, 1e-9, "the batteries' energies over the same ticks")

        assert value(m, "wattprobe_device_thermal_throttle_events_total", scope="core") == 15
        assert value(m, "wattprobe_device_thermal_throttle_events_total", scope="package",
                     package="0") == 11
        assert value(m, "wattprobe_device_thermal_throttle_events_total", scope="package",
                     package="1") == 2
        assert value(m, "wattprobe_device_temperature_max_celsius", device="coretemp") == 71.0
        assert value(m, "wattprobe_device_temperature_max_celsius", device="nvme") == 45.85
        assert value(m, "wattprobe_device_temperature_max_celsius", device="acpitz") == 52.0
        print("ok: batteries, throttle counters and the hottest sensors carry the fixture's values")

        # The board input is the platform's energy; its parts are rails, never added.
        # Watts are joules over the tick's seconds, so they may differ in the last bits.
        near(value(m, "wattprobe_node_power_watts", source="hwmon", domain="platform"), 9.5, 1e-9,
             "board input power (V x I of its _IN rail)")
        near(value(m, "wattprobe_node_power_watts", source="hwmon", domain="rail", socket="0"),
             2.85, 1e-9, "rail 0 power")
        near(value(m, "wattprobe_node_power_watts", source="hwmon", domain="rail", socket="1"),
             1.9, 1e-9, "rail 1 power")
        platform = value(m, "wattprobe_node_energy_joules_total", source="hwmon",
                         domain="platform")
        rail0 = value(m, "wattprobe_node_energy_joules_total", source="hwmon", domain="rail",
                      socket="0")
        assert platform > 0
        near(platform / rail0, 9.5 / 2.85, 1e-9, "board input against its CPU/GPU rail")
        info = series(m, "wattprobe_hwmon_rail_info")
        assert len(info) == 3, info
        assert all(l["energy"] == "integrated_power" for l, _ in info), info
        roles = {l["label"]: l["role"] for l, _ in info}
        assert roles == {"VDD_IN": "total", "VDD_CPU_GPU_CV": "part", "VDD_SOC": "part"}, roles
        workloads = sum(v for l, v in series(m, "wattprobe_workload_energy_joules_total",
                                             domain="platform"))
        idle = sum(v for l, v in series(m, "wattprobe_node_idle_energy_joules_total",
                                        domain="platform"))
        unattributed = sum(v for l, v in series(m, "wattprobe_node_unattributed_energy_joules_total",
                                                domain="platform"))
        near(workloads + idle + unattributed, platform, 1e-6, "platform energy conserved")
        print("ok: ina3221 rails: VDD_IN 9.5 W is the platform, the parts are rails, "
              "labelled integrated power")

        assert not series(m, "wattprobe_device_storage_wear_ratio"), "fixture drives have no log"
        assert "device health:" in log and "not a character device" in log, log

        d = doctor(root, "--sources", "hwmon", "--install-date", "2024-01-01")
        out = d.stdout
        for want in ("battery BAT0: capacity 83.6 % of design (from energy_*); cycles 312; "
                     "discharging at 9.50 W (power_now)",
                     "battery BAT1: capacity 75.0 % of design (from charge_*); cycles 57",
                     "thermal throttling: 15 core events, package 0: 11, package 1: 2",
                     "hottest sensor of coretemp: Package id 0 at 71.0 °C",
                     "storage nvme0 (Fixture NVMe 1TB): wear not read",
                     "storage sda (Fixture SATA SSD): wear not read",
                     "no wear attribute in sysfs",
                     "powered-on share of age: unknown - no NVMe drive's power-on hours",
                     "ina3221/rail1 (platform total, in1_input x curr1_input, integrated power, "
                     "VDD_IN)"):
            assert want in out, f"doctor lacks {want!r}:\n{out}"
        print("ok: doctor lists the batteries, counters, sensors, rails and why wear is not read")

        replacement(state)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def replacement(state):
    lines = ledger_lines(state)
    assert lines, "no ledger"
    joules = sum(j["joules"] for _, _, j in lines)
    grams = sum(j["operational_co2e_grams"] for _, _, j in lines)
    embodied = sum(j["embodied_co2e_grams"] for _, _, j in lines)
    covered = sum(j["covered_seconds"] for _, _, j in lines if j["type"] == "idle")
    r = run_report("--state-dir", state, "--since", "-1h", "--replacement-embodied-kg", "500",
                   "--replacement-power-ratio", "0.6")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    print(out)

    def figure(pattern):
        m = re.search(pattern, out)
        assert m, f"no {pattern!r} in:\n{out}"
        return float(m.group(1))

    kwh_year = joules / 3.6e6 / covered * SECONDS_PER_YEAR
    per_kwh = grams / (joules / 3.6e6)
    near(per_kwh, 300, 1e-9, "the ledger's grams per kWh (the --grid-intensity, PUE 1)")
    keep_op = kwh_year * per_kwh
    keep_emb = embodied / covered * SECONDS_PER_YEAR
    replace_op = 0.6 * keep_op
    even = 500e3 / (keep_op - replace_op)
    near(figure(r"energy a year:\s+(\S+) kWh"), kwh_year, 1e-5, "energy a year")
    near(figure(r"keep one more year:\s+(\S+) = operational"), (keep_op + keep_emb) / 1000, 1e-5,
         "keep one more year, kg")
    near(figure(r"keep one more year:.*embodied (\S+)"), keep_emb / 1000, 1e-5,
         "keep: embodied amortization a year, kg")
    near(figure(r"replace \(first year\):\s+(\S+) ="), (500e3 + replace_op) / 1000, 1e-5,
         "replace, kg")
    near(figure(r"break-even:\s+(\S+) years"), even, 1e-5, "break-even years")
    assert "replacement power ratio:  0.6 (--replacement-power-ratio)" in out
    assert "replacement embodied:     500 kg" in out

    bad = run_report("--state-dir", state, "--replacement-embodied-kg", "500",
                     "--replacement-power-ratio", "zero")
    assert bad.returncode == 2 and '"zero" for --replacement-power-ratio' in bad.stderr, bad.stderr
    print("ok: the break-even report matches the hand calculation from the ledger's lines")


def malformed():
    root = tree("malformed", "ina3221")
    try:
        with start_agent("--sysfs-root", root, "--dev-root", root, "--sources", "hwmon",
                         "--accounting", "procfs", "--interval", INTERVAL) as agent:
            wait_ticks(agent, 3)
            m = scrape(agent.url)
            log = agent.stderr() + agent.stdout()
            assert agent.proc.poll() is None, "the agent stopped on malformed battery values"
        assert not series(m, "wattprobe_device_battery_capacity_ratio"), m
        assert not series(m, "wattprobe_device_battery_cycle_count")
        for want in ("BAT0/energy_full_design: absent: missing",
                     "BAT1/charge_full_design: malformed: 0 is not a usable design capacity",
                     "BAT2/energy_full: malformed", "BAT2/cycle_count: malformed"):
            assert want in log, f"log lacks {want!r}:\n{log}"
        d = doctor(root, "--sources", "hwmon")
        assert "battery BAT1: capacity against design unknown" in d.stdout, d.stdout
        assert "0 is not a usable design capacity" in d.stdout
        print("ok: malformed battery values: no series, the reason in the log and in doctor")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def none_and_board_estimate():
    root = tree("none")
    config = os.path.join(root, "wattprobe.conf")
    with open(config, "w") as f:
        f.write("[source.model]\nboard_idle_watts = 2.7\nboard_max_watts = 6.4\n")
    try:
        with start_agent("--config", config, "--sysfs-root", root, "--dev-root", root,
                         "--sources", "model", "--accounting", "procfs", "--interval",
                         INTERVAL) as agent:
            wait_ticks(agent, 3)
            m = scrape(agent.url)
        for family in ("wattprobe_device_battery_capacity_ratio",
                       "wattprobe_device_thermal_throttle_events_total",
                       "wattprobe_device_temperature_max_celsius",
                       "wattprobe_device_storage_wear_ratio", "wattprobe_hwmon_rail_info"):
            assert not series(m, family), f"{family} on a machine without it"
        watts = value(m, "wattprobe_node_power_watts", source="model", domain="platform")
        assert 2.7 <= watts <= 6.4, watts
        assert value(m, "wattprobe_energy_source_info", source="model", domain="platform",
                     measured="false") == 1
        d = doctor(root, "--config", config, "--sources", "model")
        assert "estimate of the whole board (platform): 2.7 + util" in d.stdout, d.stdout
        assert "batteries: none - 1 power supply, none of type Battery" in d.stdout, d.stdout
        print(f"ok: no health series on a bare machine; the board estimate {watts:.2f} W is "
              "labelled measured=\"false\"")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    laptop_and_jetson()
    malformed()
    none_and_board_estimate()


if __name__ == "__main__":
    main()
