"""--max-workloads caps every per-workload family alike (issue 25), with the real binary.

With a cap of 20 the energy, power and CPU series held 48 workloads while the carbon ones held
20: `--accounting cgroup` keeps each tick's biggest users, so over a few ticks more distinct
workloads than the cap reach attribution. 48 test-made container scopes each run a CPU burner
for a moment, one after another, under --max-workloads 20; then every per-workload family holds
at most 20 workloads, the same ones in each."""

import os
import shutil
import subprocess
import tempfile

from wattprobe_e2e import BIN, TOOLS, Cgroups, scrape, skip, start_agent, start_driver, wait_until

SCOPES = 48
CAP = 20
IDS = [f"{os.getpid() & 0xff:02x}{i:02x}" * 16 for i in range(SCOPES)]  # 64 hex digits
FAMILIES = ("wattprobe_workload_energy_joules_total", "wattprobe_workload_power_watts",
            "wattprobe_workload_cpu_seconds_total",
            "wattprobe_workload_operational_co2e_grams_total",
            "wattprobe_workload_embodied_co2e_grams_total")


def workloads(metrics):
    """{family: set of (workload, kind)} over the per-workload families."""
    out = {f: set() for f in FAMILIES}
    for name, labels, _ in metrics:
        if name in out:
            out[name].add((labels.get("workload"), labels.get("kind")))
    return out


def ticks(metrics):
    return sum(v for n, _, v in metrics if n == "wattprobe_agent_tick_duration_seconds_count")


def main():
    if os.geteuid() != 0:
        skip("needs root for test-made cgroups and BPF")
    doctor = subprocess.run([BIN, "doctor"], capture_output=True, text=True, timeout=60)
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    groups = Cgroups(*[f"docker-{cid}.scope" for cid in IDS])
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20"):
            try:
                agent_cm = start_agent("--sysfs-root", root, "--sources", "rapl_powercap",
                                       "--interval", "250ms", "--accounting", "cgroup",
                                       "--idle-watts", "package=20",
                                       "--max-workloads", str(CAP))
            except AssertionError as e:
                if "cgroup" in str(e) and ("BPF" in str(e) or "bpf" in str(e)):
                    skip(f"--accounting cgroup is not available here: {doctor.stdout[-400:]}")
                raise
            with agent_cm as agent:
                for cid in IDS:
                    subprocess.run([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", "1",
                                    "--seconds", "0.3", "--cgroup",
                                    groups.paths[f"docker-{cid}.scope"]], check=True,
                                   timeout=30)
                # A snapshot published after the last burner ended.
                seen = ticks(scrape(agent.url))
                wait_until(lambda: ticks(scrape(agent.url)) >= seen + 2, 30, "two more ticks")
                metrics = scrape(agent.url)
                by_family = workloads(metrics)
                scopes_seen = {w for w, _ in by_family[FAMILIES[0]] if w and
                               any(cid[:12] in w for cid in IDS)}
                print({f: len(s) for f, s in by_family.items()},
                      f"test scopes in energy: {len(scopes_seen)}")
                dropped = [v for n, _, v in metrics
                           if n == "wattprobe_agent_workloads_dropped_total"]
                print(f"workloads dropped: {dropped}")
                for family, held in by_family.items():
                    assert 1 <= len(held) <= CAP, \
                        f"{family} holds {len(held)} workloads under --max-workloads {CAP}"
                for family in FAMILIES[1:]:
                    assert by_family[family] == by_family[FAMILIES[0]], \
                        (f"{family} and {FAMILIES[0]} hold different workloads: "
                         f"{sorted(by_family[family] ^ by_family[FAMILIES[0]])}")
                print(f"ok: every per-workload family holds the same {len(by_family[FAMILIES[0]])} "
                      f"workloads under --max-workloads {CAP} after {SCOPES} scopes ran")
    finally:
        groups.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
