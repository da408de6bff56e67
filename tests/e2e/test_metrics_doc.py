"""docs/metrics.md is the contract (issue 17): every family a running agent exports is documented
there, and every documented family is exported. The real binary runs with every optional feature
CI can switch on: a powercap fixture with psys, an ACPI power meter under hwmon, two GPUs through
the fake libnvidia-ml.so.1 with live processes holding them, a live grid API (forecast included),
remote-write and OTLP to local receivers, the VM folders of --guest-energy-dir with a libvirt-named
VM cgroup, process metrics, a carbon budget, an install date; then a second agent on a device
fixture (batteries, throttle counters, temperatures, an INA3221 board with rails, disks), and a
third as a VM guest whose host has not written its file yet. The
family set from their /metrics (the `# TYPE` lines) is compared with the families in the tables of
docs/metrics.md, in both directions, and so is each family's type; any difference fails the test
and is named.

A documented family is one whose name, in backticks, starts the first column of a row of a table
whose header starts with `| family |` in docs/metrics.md (a selector such as `{domain="gpu"}` after the name is ignored). Anything else on
the page (prose, examples) is not read."""

import os
import re
import shutil
import subprocess
import tempfile
import threading

from wattprobe_e2e import (TOOLS, Cgroups, RemoteWriteReceiver, fetch, scrape, series, skip,
                           start_agent, start_driver, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "metrics.md")
FAKE_NVML = os.environ.get("WATTPROBE_FAKE_NVML", "build/fake_nvml/libnvidia-ml.so.1")
DATA = os.environ.get("WATTPROBE_TEST_DATA", os.path.join(HERE, "..", "data"))
FAKE_API = os.path.join(HERE, "..", "support", "fake_grid_api.py")
PHASED = os.path.join(DATA, "nvml/h200-phased-75-25.jsonl")
RANDOM = os.path.join(DATA, "nvml/h200-random-periods-50-30-20.jsonl")

# Documented families CI cannot make the agent export: they need hardware no fixture can stand in
# for. Each is named with what it needs, and printed as not checked.
NEEDS_HARDWARE = {
    "wattprobe_device_storage_wear_ratio": "an NVMe controller answering the SMART log ioctl",
    "wattprobe_device_storage_power_on_seconds": "an NVMe controller answering the SMART log ioctl",
    "wattprobe_device_powered_on_ratio": "an NVMe drive's power-on hours",
    "wattprobe_ipmi_info": "a BMC behind the kernel's IPMI device (/dev/ipmi0)",
}

_ROW = re.compile(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^`]*\})?`\s*\|\s*([a-z]+)\s*\|")
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$")


def documented(path=DOC):
    """{family: (line number, type)} of every family named in the first column of a table whose
    header starts with `| family |` (its second column is the type)."""
    out = {}
    in_family_table = False
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.startswith("|"):
                in_family_table = False
                continue
            if re.match(r"^\|\s*family\s*\|", line):
                in_family_table = True
                continue
            m = _ROW.match(line)
            if in_family_table and m:
                out.setdefault(m.group(1), (number, m.group(3)))
    return out


def exported(text):
    """{family: type} from the exposition's `# TYPE` lines."""
    out = {}
    for line in text.splitlines():
        m = _TYPE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def write_power_meter(root):
    """An ACPI power meter (hwmon chip "power_meter", 182.5 W), as tests/support/fake_sysfs.cc
    writes it for the unit tests."""
    device = "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00"
    folder = os.path.join(root, "sys", device, "hwmon", "hwmon1")
    os.makedirs(folder)
    for name, text in (("name", "power_meter"), ("uevent", ""), ("power1_average", "182500000"),
                       ("power1_average_interval", "1000"), ("power1_is_battery", "0")):
        with open(os.path.join(folder, name), "w") as f:
            f.write(text + "\n" if text else "")
    os.symlink("../../../ACPI000D:00", os.path.join(folder, "device"))
    os.makedirs(os.path.join(root, "sys/class/hwmon"), exist_ok=True)
    os.symlink("../../" + device + "/hwmon/hwmon1", os.path.join(root, "sys/class/hwmon/hwmon1"))


def device_fixture_families():
    """{family: type} of an agent on the device-health fixture (tests/support/fake_device_health),
    the families the powercap fixture has no tree for."""
    root = tempfile.mkdtemp(prefix="wattprobe-device-")
    subprocess.run([os.path.join(TOOLS, "fake_device_tree"), "--root", root, "laptop", "throttle",
                    "temperatures", "ina3221", "storage"], check=True)
    for rel in ("sys/kernel", "sys/fs"):
        link = os.path.join(root, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/" + rel, link)
    # A BMC over HTTPS (tests/e2e/fake_bmc.py) for the redfish source's own families.
    from fake_bmc import PASSWORD, USER, FakeBmc
    bmc_dir = tempfile.mkdtemp(prefix="wattprobe-bmc-")
    for name, secret in (("user", USER), ("password", PASSWORD)):
        with open(os.path.join(bmc_dir, name), "w") as f:
            f.write(secret)
    bmc = FakeBmc("1", bmc_dir)
    try:
        with start_agent("--sysfs-root", root, "--dev-root", root, "--sources", "hwmon,redfish",
                         "--accounting", "procfs", "--interval", "250ms",
                         "--install-date", "2024-01-01", "--redfish-url", bmc.url,
                         "--redfish-user-file", os.path.join(bmc_dir, "user"),
                         "--redfish-password-file", os.path.join(bmc_dir, "password"),
                         "--redfish-ca-file", bmc.ca, "--redfish-interval", "1s") as agent:
            wait_until(lambda: series(scrape(agent.url), "wattprobe_device_battery_discharge_joules_total"),
                       10, "the device fixture's families")
            wait_until(lambda: series(scrape(agent.url), "wattprobe_redfish_info"), 20,
                       "the redfish source's families")
            return exported(fetch(agent.url))
    finally:
        bmc.close()
        shutil.rmtree(bmc_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def guest_families():
    """{family: type} of a guest agent (--sources host) whose host has not written its file
    yet: the `host` source's own families."""
    share = tempfile.mkdtemp(prefix="wattprobe-vm-share-")
    try:
        with start_agent("--sources", "host", "--host-energy-path", share, "--accounting",
                         "procfs", "--interval", "250ms") as agent:
            wait_until(lambda: series(scrape(agent.url), "wattprobe_host_energy_state"), 10,
                       "the host source's families")
            return exported(fetch(agent.url))
    finally:
        shutil.rmtree(share, ignore_errors=True)


def start_in(cgroup):
    p = subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs"; exec sleep 600', cgroup])

    def moved():
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return str(p.pid) in f.read().split()
    wait_until(moved, 10, f"pid {p.pid} in {cgroup}")
    return p


def count_units(path, stop):
    """A textfile a [unit.NAME] reads, its counter rising every 100 ms until `stop` is set."""
    n = 0
    while not stop.wait(0.1):
        n += 7
        with open(path + ".tmp", "w") as f:
            f.write(f"# TYPE doc_jobs_total counter\ndoc_jobs_total {n}\n")
        os.replace(path + ".tmp", path)


def main():
    if os.geteuid() != 0:
        skip("needs root: creates cgroups for the GPU workers")
    if not os.path.exists(FAKE_NVML):
        skip(f"the fake NVML library is not built: {FAKE_NVML}")
    doc = documented()
    assert len(doc) > 30, f"docs/metrics.md: only {len(doc)} families found in its tables"

    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    groups = Cgroups("gpu-a.service", "gpu-b.service", r"machine-qemu\x2d1\x2ddoc.scope")
    api = subprocess.Popen(["python3", FAKE_API], stdout=subprocess.PIPE, text=True)
    receiver = RemoteWriteReceiver(lambda n, req: (204, {}))
    otlp = RemoteWriteReceiver(lambda n, req: (200, {}))
    guests = tempfile.mkdtemp(prefix="wattprobe-guests-")
    secrets = tempfile.mkdtemp(prefix="wattprobe-secrets-")
    procs = []
    try:
        api_url = f"http://127.0.0.1:{int(api.stdout.readline())}"
        token = os.path.join(secrets, "em.token")
        with open(token, "w") as f:
            f.write("em-test-token-SECRET\n")
        os.chmod(token, 0o600)
        # Read after the privilege drop, so not in the root-only folder.
        units_dir = tempfile.mkdtemp(prefix="wattprobe-units-")
        os.chmod(units_dir, 0o755)
        units = os.path.join(units_dir, "units.prom")
        units_stop = threading.Event()
        threading.Thread(target=count_units, args=(units, units_stop), daemon=True).start()
        conf = os.path.join(units_dir, "units.conf")
        with open(conf, "w") as f:
            f.write(f"[unit.jobs]\nurl = {units}\ncounter = doc_jobs_total\nworkload = *\n")
        procs = [start_in(groups.paths["gpu-a.service"]), start_in(groups.paths["gpu-b.service"]),
                 start_in(groups.paths[r"machine-qemu\x2d1\x2ddoc.scope"])]
        a, b = procs[0].pid, procs[1].pid
        os.environ.update({
            "WATTPROBE_FAKE_NVML_TRACE": f"{PHASED},{RANDOM}", "WATTPROBE_FAKE_NVML_START": "5",
            "WATTPROBE_FAKE_NVML_PIDS": f"430={a},431={b},433={a},434={b}",
            "WATTPROBE_FAKE_NVML_FAULTS": "", "WATTPROBE_FAKE_NVML_LOG": ""})
        with start_driver(root, "--scenario", "psys_platform", "--watts",
                          "package=30,core=10,psys=45", "--period-ms", "20"):
            write_power_meter(root)
            with start_agent("--sysfs-root", root, "--sources", "rapl_powercap,nvml,hwmon",
                             "--nvml-library", FAKE_NVML, "--interval", "500ms",
                             "--accounting", "auto", "--process-metrics-top", "5",
                             "--ledger-period", "1s", "--checkpoint-interval", "1s",
                             "--carbon-budget", "gpu-a.service=500/day",
                             "--carbon-budget", "kind:service=20000/30d",
                             "--install-date", "2024-01-15", "--pue", "1.2",
                             "--grid-provider", "electricitymaps", "--grid-zone", "DE",
                             "--grid-url", api_url, "--grid-token-file", token,
                             "--grid-refresh", "1s", "--best-window", "1h",
                             "--remote-write-url", receiver.url,
                             "--remote-write-batch-interval", "1s",
                             "--otlp-endpoint", otlp.url.removesuffix("/api/v1/write"),
                             "--guest-energy-dir", guests, "--config", conf,
                             "--unit-window", "10s", state_dir=state) as agent:
                # Wait for what arrives late: a grid answer with its forecast, a remote-write
                # success, the workers' split GPU energy.
                def ready():
                    try:
                        m = scrape(agent.url)
                    except OSError:
                        return False  # a slow answer on a busy host: ask again
                    need = ("wattprobe_grid_carbon_intensity_forecast_grams_per_kwh",
                            "wattprobe_agent_remote_write_last_success_timestamp_seconds",
                            "wattprobe_workload_gpu_energy_joules_total",
                            "wattprobe_process_energy_joules_total",
                            "wattprobe_agent_otlp_last_success_timestamp_seconds",
                            "wattprobe_workload_cfe_energy_joules_total",
                            "wattprobe_grid_best_window_grams_per_kwh",
                            "wattprobe_workload_energy_per_unit_joules")
                    return all(series(m, n) for n in need)
                try:
                    wait_until(ready, 20, "grid forecast, remote-write success, GPU split")
                except AssertionError as e:
                    print(f"note: {e}; comparing what is there")
                text = fetch(agent.url)
        got = exported(text)
        got.update(device_fixture_families())
        got.update(guest_families())
        for name, needs in NEEDS_HARDWARE.items():
            assert name in doc, f"{name} is listed as needing hardware but not documented"
            if name not in got:
                print(f"not checked: {name} needs {needs}")
                got[name] = doc[name][1]
        missing = sorted(set(doc) - set(got))
        undocumented = sorted(set(got) - set(doc))
        mistyped = sorted(n for n in set(doc) & set(got) if doc[n][1] != got[n])
        for name in missing:
            print(f"documented but not exported: {name} (docs/metrics.md line {doc[name][0]})")
        for name in undocumented:
            print(f"exported but not documented: {name} ({got[name]})")
        for name in mistyped:
            print(f"documented as {doc[name][1]} (docs/metrics.md line {doc[name][0]}) but "
                  f"exported as {got[name]}: {name}")
        assert not missing and not undocumented and not mistyped, (
            f"docs/metrics.md and /metrics differ: {len(missing)} documented but not exported, "
            f"{len(undocumented)} exported but not documented, {len(mistyped)} with another type "
            "(listed above)")
        print(f"ok: the {len(got)} families /metrics exports are exactly the {len(doc)} "
              "docs/metrics.md documents")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if "units_stop" in locals():
            units_stop.set()
            shutil.rmtree(units_dir, ignore_errors=True)
        receiver.close()
        otlp.close()
        shutil.rmtree(guests, ignore_errors=True)
        shutil.rmtree(secrets, ignore_errors=True)
        api.kill()
        api.wait()
        groups.close()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
    print("1 passed, 0 failed")
