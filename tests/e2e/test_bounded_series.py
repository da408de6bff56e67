"""Carbon series of expired workloads leave with them (issue 16), with the real binary:
60 short-lived container scopes (test-made cgroups named as docker names them, each running a
CPU burner for a moment) under --workload-expiry 5s. While they run, each scope gets energy and
operational and embodied CO2e series; 5 s after the last one ends, none of the 60 is left in
/metrics, in any family, and their ids are gone from the checkpoint, which shrinks back to the
size it had before the scopes (give or take the host's own workloads coming and going)."""

import os
import shutil
import subprocess
import tempfile

from wattprobe_e2e import (TOOLS, Cgroups, scaled, scrape, start_agent, start_driver,
                           wait_checkpoint, wait_ticks, wait_until)

SCOPES = 60
IDS = [f"{i:02x}" * 32 for i in range(0xa0, 0xa0 + SCOPES)]  # 64 hex digits each


def scope_series(metrics):
    """{family: number of series} of the test's scopes (container label or workload name)."""
    out = {}
    for name, labels, _ in metrics:
        if any(cid[:12] in v for v in labels.values() for cid in IDS):
            out[name] = out.get(name, 0) + 1
    return out


def checkpoint_bytes(state):
    with open(os.path.join(state, "checkpoint.pb"), "rb") as f:
        return f.read()


def main():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    groups = Cgroups(*[f"docker-{cid}.scope" for cid in IDS])
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval",
                         "500ms", "--accounting", "bpf", "--idle-watts", "package=20",
                         "--workload-expiry", "5s", "--checkpoint-interval", "1s",
                         state_dir=state) as agent:
            wait_until(lambda: os.path.exists(os.path.join(state, "checkpoint.pb")), 10,
                       "a first checkpoint")
            wait_checkpoint(agent)
            before = len(checkpoint_bytes(state))
            for cid in IDS:
                subprocess.run([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", "1",
                                "--seconds", "0.05", "--cgroup",
                                groups.paths[f"docker-{cid}.scope"]], check=True, timeout=scaled(30))
            # The last scope's tick, and a checkpoint after it; the series first, as the
            # scopes begin expiring 5 s after their last tick.
            wait_ticks(agent, 2)
            peak_series = scope_series(scrape(agent.url))
            wait_checkpoint(agent)
            peak = checkpoint_bytes(state)
            print(f"scope series right after the 60 scopes: {peak_series}")
            for family in ("wattprobe_workload_energy_joules_total",
                           "wattprobe_workload_operational_co2e_grams_total",
                           "wattprobe_workload_embodied_co2e_grams_total"):
                assert peak_series.get(family, 0) >= 1, f"no scope series in {family}"
            seen_in_peak = sum(cid[:12].encode() in peak for cid in IDS)
            assert seen_in_peak >= 1, "no scope in the checkpoint while they ran"

            # Expiry 5 s after each scope's last tick, then a checkpoint after that.
            wait_until(lambda: not scope_series(scrape(agent.url)), 15,
                       "every scope series gone from /metrics")
            wait_checkpoint(agent)
            after = checkpoint_bytes(state)
            still = [cid for cid in IDS if cid[:12].encode() in after]
            print(f"checkpoint bytes: before {before}, with scopes {len(peak)} "
                  f"({seen_in_peak} scopes in it), after expiry {len(after)}")
            assert not still, f"{len(still)} expired scopes still in the checkpoint"
            # The host's own services come and go meanwhile (a few hundred bytes); the scopes'
            # entries (about 160 bytes each) must be gone from the size too.
            assert len(after) < len(peak) - 100 * seen_in_peak + 400, \
                f"checkpoint {len(after)} bytes after expiry, {len(peak)} with the scopes"
    finally:
        groups.close()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
