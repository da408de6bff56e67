"""Measured energy inside a virtual machine (issue 15), with two real agents on one machine:
- the host runs on a powercap fixture that follows the real load, with a cgroup named like a
  libvirt qemu domain's scope (machine.slice/machine-qemu\\x2d1\\x2dguest1.scope) holding real
  CPU burners: the host finds it as workload guest1, kind vm, and keeps
  --guest-energy-dir/guest1/energy.json;
- the guest agent has no counter of its own (a --sysfs-root without powercap, hwmon or a power
  PMU, with the real cgroup and BTF folders linked in) and reads that folder with
  --host-energy-path: its node energy equals the host's energy for the VM within 2 %, labelled
  source="host", measured="true";
- the host agent killed: the guest stops claiming measured energy (the `host` source stalled,
  the `model` estimate stands in, labelled), the stall counted; the host restarted without its
  checkpoint (its totals start again from 0): the guest recovers with no step back;
- a file the guest cannot use: truncated or malformed (reason "malformed"), a newer version
  (reason "unsupported"), each logged with the path and counted, and `doctor` says what it found
  at the path and what to do.
The host's accounting is eBPF when the kernel allows it; the guest uses --accounting procfs, so
the test never depends on two eBPF loaders side by side (the guest's own split is not what is
checked here)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from wattprobe_e2e import (BIN, TOOLS, Cgroups, near, scrape, series, skip, start_agent,
                           start_driver, value, wait_ticks, wait_until)

VM_SCOPE = "machine-qemu\\x2d1\\x2dguest1.scope"


def vm_energy(metrics, domain="package"):
    """The host's energy for the VM, over every source of the domain."""
    return sum(v for _, v in series(metrics, "wattprobe_workload_energy_joules_total",
                                    workload="guest1", kind="vm", domain=domain))


def guest_node(metrics, domain="package"):
    return sum(v for _, v in series(metrics, "wattprobe_node_energy_joules_total", source="host",
                                    domain=domain))


def host_info(metrics, domain="package"):
    return {(l["measured"], l["state"]): v
            for l, v in series(metrics, "wattprobe_energy_source_info", source="host",
                               domain=domain)}


def claims_measured(metrics):
    return host_info(metrics).get(("true", "ok")) == 1


def guest_tree():
    """A VM's view: no powercap, hwmon or perf power PMU, but the real cgroups, BTF and CPU
    topology, so its accounting works."""
    root = tempfile.mkdtemp(prefix="wattprobe-guest-sysfs-")
    for rel in ("sys/kernel", "sys/fs", "sys/devices/system"):
        link = os.path.join(root, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/" + rel, link)
    return root


def start_guest(root, path, *extra):
    return start_agent("--sysfs-root", root, "--host-energy-path", path, "--accounting", "procfs",
                       *extra)


def ticks(metrics):
    return sum(v for _, v in series(metrics, "wattprobe_agent_tick_duration_seconds_count"))


def steady(url, read, what, settle_s=2.5, timeout=60):
    """The figure once it has stood still for settle_s and for at least three of the agent's own
    ticks: on a loaded host a tick can come late, and a wait in wall time alone would take a
    figure the next tick still moves."""
    deadline = time.time() + timeout
    last, since, since_ticks = None, time.time(), 0
    while time.time() < deadline:
        m = scrape(url)
        got, n = read(m), ticks(m)
        if got != last:
            last, since, since_ticks = got, time.time(), n
        elif time.time() - since >= settle_s and n - since_ticks >= 3:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what} did not settle within {timeout}s (last {last})")


def burn(groups, seconds, ratio="0.6"):
    b = subprocess.Popen([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", ratio, "--seconds",
                          str(seconds), "--cgroup", groups.paths["vm"]])
    assert b.wait(60) == 0, "cpu_burner failed"


class VmCgroup(Cgroups):
    """A test-made parent holding machine.slice/<libvirt qemu scope>, as libvirt lays it out."""

    def __init__(self):
        super().__init__("machine.slice")
        scope = os.path.join(self.paths["machine.slice"], VM_SCOPE)
        os.mkdir(scope)
        self.paths = {"vm": scope, "machine.slice": self.paths["machine.slice"]}


def host_and_guest():
    if os.geteuid() != 0:
        skip("the VM's cgroup and the host's eBPF accounting need root")
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    guests = tempfile.mkdtemp(prefix="wattprobe-guests-")
    groots = guest_tree()
    host_state = tempfile.mkdtemp(prefix="wattprobe-host-state-")
    vm_dir = os.path.join(guests, "guest1")
    host_args = ("--sysfs-root", root, "--sources", "rapl_powercap", "--interval", "1s",
                 "--idle-watts", "package=20", "--guest-energy-dir", guests)
    with VmCgroup() as groups, \
         start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                      "--follow-load", "idle=20,k=60", "--period-ms", "20"):
        host = start_agent(*host_args, state_dir=host_state)
        try:
            burn(groups, 2)
            wait_until(lambda: os.path.exists(os.path.join(vm_dir, "energy.json")), 15,
                       "the host writes guest1/energy.json")
            hm = scrape(host.url)
            assert series(hm, "wattprobe_workload_energy_joules_total", workload="guest1",
                          kind="vm"), "the libvirt scope is not workload guest1 of kind vm"
            assert value(hm, "wattprobe_guest_energy_vms") >= 1
            assert sorted(os.listdir(guests)) == ["guest1"], os.listdir(guests)
            with open(os.path.join(vm_dir, "energy.json")) as f:
                doc = json.load(f)
            assert doc["schema"] == "wattprobe.guest-energy" and doc["version"] == 1, doc
            assert doc["vm"] == "guest1" and doc["idle_included"] is False, doc
            accounting = [l["mode"] for l, _ in series(hm, "wattprobe_agent_accounting_mode")]
            print(f"host accounting: {accounting}")
            mode = oct(os.stat(vm_dir).st_mode & 0o777)
            print(f"ok: the host keeps {vm_dir}/energy.json (folder mode {mode})")

            with start_guest(groots, vm_dir, "--interval", "1s") as guest:
                # Agreement: over a stretch of real work in the VM, the guest's node energy grows
                # by what the host gave the VM. Both figures are read once every tick of both
                # agents has passed (the VM is idle before each reading, so they stand still).
                g0 = steady(guest.url, guest_node, "guest node energy")
                h0 = steady(host.url, vm_energy, "host energy of the VM")
                burn(groups, 6)
                h1 = steady(host.url, vm_energy, "host energy of the VM")
                g1 = steady(guest.url, guest_node, "guest node energy")
                gm = scrape(guest.url)
                assert claims_measured(gm), host_info(gm)
                assert h1 - h0 > 1.0, f"the VM's burners got {h1 - h0} J on the host"
                agreement = (g1 - g0) / (h1 - h0)
                print(f"MEASURED: guest node energy {g1 - g0:.4f} J, host energy for the VM "
                      f"{h1 - h0:.4f} J: guest/host = {agreement:.6f}")
                near(g1 - g0, h1 - h0, 0.02, "guest node energy vs the host's energy for the VM")
                assert value(gm, "wattprobe_agent_source_stalls_total", source="host",
                             domain="package") == 0
                # Inside the guest the VM's energy is split among its workloads: the parts add
                # up to the guest's node energy, as on bare metal.
                assert value(gm, "wattprobe_agent_conservation_violations_total") == 0
                parts = sum(v for _, v in series(gm, "wattprobe_workload_energy_joules_total",
                                                 source="host", domain="package"))
                parts += value(gm, "wattprobe_node_idle_energy_joules_total", domain="package")
                parts += value(gm, "wattprobe_node_unattributed_energy_joules_total",
                               domain="package")
                near(parts, guest_node(gm), 1e-6, "guest idle + workloads + unattributed")

                # The host agent dies: within a few ticks the guest no longer claims measured
                # energy, and the estimate stands in, labelled.
                host.stop(signal.SIGKILL)
                gm = wait_until(lambda: (lambda m: m if not claims_measured(m) else None)(
                    scrape(guest.url)), 20, "the guest stops claiming measured energy")
                assert host_info(gm).get(("true", "stalled")) == 0, host_info(gm)
                assert value(gm, "wattprobe_agent_source_stalls_total", source="host",
                             domain="package") == 1
                model = series(gm, "wattprobe_energy_source_info", source="model",
                               domain="package", state="ok")
                assert model and model[0][0]["measured"] == "false", model
                before = guest_node(gm)
                assert "host energy:" in guest.stderr() and "not claimed as measured" in \
                    guest.stderr(), guest.stderr()
                print("ok: host agent killed: the guest's host source is stalled, model stands in")

                # Restarted without its checkpoint: the VM's totals on the host start again from
                # 0, lower than the guest last saw. The guest counts no step back and recovers.
                host.__exit__(None, None, None)
                shutil.rmtree(host_state)
                host = start_agent(*host_args)
                burn(groups, 3)
                gm = wait_until(lambda: (lambda m: m if claims_measured(m) else None)(
                    scrape(guest.url)), 30, "the guest claims measured energy again")
                burn(groups, 2)
                after = steady(guest.url, guest_node, "guest node energy after the restart")
                assert after >= before, f"guest node energy stepped back: {before} → {after}"
                assert after > before, "nothing measured after the host came back"
                gm = scrape(guest.url)
                assert value(gm, "wattprobe_agent_collector_errors_total", collector="host",
                             reason="counter_reset") >= 1
                print(f"ok: host restarted from 0: the guest went on from {before:.3f} J to "
                      f"{after:.3f} J, measured again")
        finally:
            host.stop()
            host.__exit__(None, None, None)


class FakeHost:
    """Writes energy.json as a host would (write a sibling, rename), for the fault cases."""

    def __init__(self, folder):
        self.folder = folder
        self.sequence = 0
        self.joules = 100.0

    def tick(self, joules=1.0):
        self.sequence += 1
        self.joules += joules
        self.write(json.dumps({
            "schema": "wattprobe.guest-energy", "version": 1, "vm": "guest9",
            "sequence": self.sequence, "host_time_ms": int(time.time() * 1000),
            "interval_seconds": 0.2, "idle_attribution": "separate", "idle_included": False,
            "grid_intensity_grams_per_kwh": 300.0, "pue": 1.2,
            "domains": [{"domain": "package", "joules": self.joules, "measured": True}]}))

    def write(self, text):
        tmp = os.path.join(self.folder, ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.folder, "energy.json"))


def errors(url, reason):
    found = series(scrape(url), "wattprobe_agent_collector_errors_total", collector="host",
                   reason=reason)
    return found[0][1] if found else 0


def doctor(root, path, *extra):
    r = subprocess.run([BIN, "doctor", "--sysfs-root", root, "--accounting", "procfs",
                        "--host-energy-path", path, *extra], capture_output=True, text=True,
                       timeout=60)
    return r.stdout


def bad_files():
    groots = guest_tree()
    folder = tempfile.mkdtemp(prefix="wattprobe-vm-share-")
    out = doctor(groots, folder)
    assert "VM passthrough" in out and "holds no energy.json" in out and "--guest-energy-dir" in \
        out, out
    print("ok: doctor on an empty share says the host is not writing it and what to run")

    host = FakeHost(folder)
    host.tick()
    out = doctor(groots, folder)
    assert "VM guest9" in out and "package: 101.000 J, measured on the host" in out, out
    assert "host: available" in out and "run would use: host\n" in out, out
    assert "host: available" in doctor(groots, folder, "--sources", "host")
    print("ok: doctor reads the file; auto and --sources host both use the host source")
    with start_guest(groots, folder, "--interval", "200ms", "--grid-provider", "host") as guest:
        for _ in range(10):
            host.tick()
            time.sleep(0.2)
        m = scrape(guest.url)
        assert claims_measured(m), host_info(m)
        start = guest_node(m)
        wait_until(lambda: [v for _, v in series(
            scrape(guest.url), "wattprobe_grid_carbon_intensity_grams_per_kwh", provider="host",
            signal="host")] == [300.0], 10, "the host's intensity in the guest")
        print("ok: --grid-provider host takes the host's 300 g/kWh from the file")

        # And the host's PUE (1.2 in the file; the guest's own --pue is the default 1.0): the
        # guest's operational grams per joule over a few ticks are 300 × 1.2 / 3.6e6.
        def grams_and_joules(m):
            grams = sum(v for name in ("wattprobe_workload_operational_co2e_grams_total",
                                       "wattprobe_node_idle_operational_co2e_grams_total",
                                       "wattprobe_node_unattributed_operational_co2e_grams_total")
                        for _, v in series(m, name))
            return grams, guest_node(m)
        g0, j0 = grams_and_joules(scrape(guest.url))
        for _ in range(10):
            host.tick(joules=5.0)
            time.sleep(0.2)
        wait_ticks(guest, 2)  # the guest has read the last file, however busy the host
        g1, j1 = grams_and_joules(scrape(guest.url))
        assert j1 > j0, (j0, j1)
        near((g1 - g0) / (j1 - j0), 300 * 1.2 / 3.6e6, 1e-6,
             "the guest's grams per joule use the host's intensity and PUE")

        for text, reason, words in (
                ('{"schema": "wattprobe.guest-energy", "version": 1, "vm": "gue', "malformed",
                 "not JSON"),
                ('{"schema": "wattprobe.guest-energy", "version": 1, "vm": 3}', "malformed",
                 "field \"vm\""),
                ('{"schema": "wattprobe.guest-energy", "version": 7, "vm": "guest9"}',
                 "unsupported", "newer than this agent reads")):
            n0 = errors(guest.url, reason)
            host.write(text)
            wait_until(lambda: errors(guest.url, reason) > n0, 10, f"{reason} counted")
            wait_until(lambda: words in guest.stderr(), 10, f"the log says {words!r}")
            assert os.path.join(folder, "energy.json") in guest.stderr()
            out = doctor(groots, folder)
            assert words in out and "to fix:" in out, out
            print(f"ok: {reason} file ({words}): counted, logged with its path, doctor explains")
            host.tick()
        # Left bad for longer than the host's ticks: stalled, an estimate stands in.
        host.write("garbage")
        m = wait_until(lambda: (lambda m: m if not claims_measured(m) else None)(
            scrape(guest.url)), 15, "a lasting bad file stops the measured claim")
        stalled_at = guest_node(m)
        for _ in range(10):
            host.tick()
            time.sleep(0.2)
        m = wait_until(lambda: (lambda m: m if claims_measured(m) else None)(scrape(guest.url)),
                       15, "measured again once good files come back")
        assert guest_node(m) >= stalled_at >= start
        print("ok: a lasting bad file stalls the source; good files bring it back")


def host_state(metrics):
    return [l["state"] for l, v in series(metrics, "wattprobe_host_energy_state") if v == 1]


def file_comes_later():
    """A guest often boots before its host has written the VM's file (issue 25): started with
    --sources host on an empty share, the agent starts, says the source is not yet available (log
    and wattprobe_host_energy_state{state="waiting"}), and counts the energy from the first good
    file on, never the host's total from before it."""
    groots = guest_tree()
    folder = tempfile.mkdtemp(prefix="wattprobe-vm-share-")
    with start_guest(groots, folder, "--sources", "host", "--interval", "200ms") as guest:
        m = wait_until(lambda: (lambda m: m if host_state(m) else None)(scrape(guest.url)), 15,
                       "a first tick")
        assert host_state(m) == ["waiting"], host_state(m)
        assert not series(m, "wattprobe_node_energy_joules_total", source="host"), \
            "energy before any file"
        wait_until(lambda: "not yet available" in guest.stderr(), 10,
                   "the log says the host source is not yet available")
        assert os.path.join(folder, "energy.json") in guest.stderr(), guest.stderr()
        print("ok: --sources host on an empty share starts, waiting for the host's file")

        host = FakeHost(folder)
        host.joules = 5000.0  # the VM's energy on the host before the guest could read it
        host.tick()
        wait_until(lambda: host_state(scrape(guest.url)) == ["ok"], 15,
                   "the first good file read")
        for _ in range(10):
            host.tick(joules=2.0)
            time.sleep(0.2)
        got = steady(guest.url, guest_node, "the guest's host energy")
        assert 0 < got <= 20.0 + 1e-6, \
            f"{got} J counted: the energy from the first good file on is at most 20 J"
        m = scrape(guest.url)
        assert claims_measured(m), host_info(m)
        print(f"ok: then measured from the first good file on ({got:.1f} J of the 20 J since)")


def main():
    if not os.path.exists(BIN):
        skip(f"{BIN} not built")
    file_comes_later()
    bad_files()
    host_and_guest()


if __name__ == "__main__":
    main()
