"""--accounting cgroup end to end with the real binary (issue 18): per-workload CPU time from the
kernel's own per-cgroup count (cgroup v2 rstat, read once a tick by a BPF cgroup iterator), with
no program on the scheduler's path.
- the ground truth of test_attribution (burners at 3:1 in two cgroups; energies against the
  kernel's cpu.stat ratio) and its short-lived check (2,000 short processes) in this mode;
- --accounting auto picks cgroup, and bpf when --process-metrics-top asks for per-process
  records; doctor says which and why; the agent holds no sched_switch program in cgroup mode;
- --accounting cgroup with --process-metrics-top is refused at start-up (exit 2), naming both."""

import os
import subprocess

from test_attribution import ground_truth, short_lived
from wattprobe_e2e import BIN, scrape, series, skip, start_agent, wait_until


def held_tracepoints(pid):
    """Tracepoints of the eBPF links process `pid` holds (fdinfo tp_name)."""
    names = []
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("tp_name:"):
                        names.append(line.split(":", 1)[1].strip())
        except OSError:
            pass
    return names


def mode_of(metrics):
    found = [l["mode"] for l, v in series(metrics, "wattprobe_agent_accounting_mode") if v == 1]
    assert len(found) == 1, found
    return found[0]


def first_snapshot(agent):
    """A scrape once the first tick has published (until then /metrics has only exposer_*)."""
    def published():
        m = scrape(agent.url)
        return m if series(m, "wattprobe_agent_accounting_mode") else None
    return wait_until(published, 30, "the agent's first tick on /metrics")


def auto_choice():
    with start_agent("--interval", "200ms", "--accounting", "auto") as agent:
        m = first_snapshot(agent)
        tracepoints = held_tracepoints(agent.proc.pid)
        log = agent.stderr() + agent.stdout()
    assert mode_of(m) == "cgroup", (mode_of(m), log)
    assert "sched_switch" not in " ".join(tracepoints), tracepoints
    assert "cgroup v2 rstat" in log, log
    print(f"ok: auto picks cgroup; tracepoints held: {tracepoints or 'none'}")

    with start_agent("--interval", "200ms", "--accounting", "auto",
                     "--process-metrics-top", "3") as agent:
        m = first_snapshot(agent)
    assert mode_of(m) == "bpf", mode_of(m)
    print("ok: auto picks bpf with --process-metrics-top")

    out = subprocess.run([BIN, "doctor"], capture_output=True, text=True, timeout=60).stdout
    assert "run would use: cgroup (the kernel's per-cgroup CPU time" in out, out
    print("ok: doctor says cgroup and why")


def refuses_per_process():
    r = subprocess.run([BIN, "run", "--listen", "127.0.0.1:0", "--accounting", "cgroup",
                        "--process-metrics-top", "3"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert "--accounting cgroup" in r.stderr and "--process-metrics-top" in r.stderr, r.stderr
    print(f"ok: refused with exit {r.returncode}: {r.stderr.strip().splitlines()[-1]}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        skip("needs root: creates cgroups and loads eBPF")
    ground_truth("cgroup")
    short_lived("cgroup")
    auto_choice()
    refuses_per_process()
    print("1 passed, 0 failed")
