"""SIGHUP stops the agent like SIGTERM (issue 12): exit 0, the final checkpoint written and the
ledger's period in progress flushed. Without handling, SIGHUP's default action kills the process
and both are lost.

The checkpoint interval (1 h) and the ledger period (1 m) are longer than the run, so what the
state folder holds afterwards can only come from the stop: the checkpoint's totals are at least
the last scrape's, and the ledger's joules add up to the checkpoint's node energy."""

import shutil
import signal
import subprocess
import tempfile
import time

from wattprobe_e2e import (BIN, ledger_lines, parse_metrics, scaled, scrape, start_agent,
                           start_driver, value, wait_ticks)

WATTS = 30
NODE = dict(domain="package", socket="0", source="rapl_powercap")


def checkpoint(state):
    p = subprocess.run([BIN, "checkpoint-dump", "--state-dir", state], capture_output=True,
                       text=True, timeout=scaled(30))
    assert p.returncode == 0, f"checkpoint-dump: exit {p.returncode}: {p.stderr}"
    written = int(next(l.split()[-1] for l in p.stdout.splitlines()
                       if l.startswith("# written_unix_ms ")))
    return written, parse_metrics(p.stdout)


def main():
    root = tempfile.mkdtemp(prefix="wattprobe-e2e-sighup-")
    state = tempfile.mkdtemp(prefix="wattprobe-e2e-sighup-state-")
    try:
        sighup_stops_cleanly(root, state)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    print("1 passed, 0 failed")


def sighup_stops_cleanly(root, state):
    with start_driver(root, "--scenario", "one_socket", "--watts", f"package={WATTS}"):
        with start_agent("--sysfs-root", root, "--sources", "rapl_powercap",
                         "--accounting", "procfs", "--interval", "200ms",
                         "--checkpoint-interval", "1h", "--ledger-period", "1m",
                         state_dir=state) as agent:
            # Ticks over 2 s at least (10 of 200 ms): the ledger's period covers more than 1.5 s.
            wait_ticks(agent, 10)
            before = value(scrape(agent.url), "wattprobe_node_energy_joules_total", **NODE)
            assert before > 0, f"no package energy after 10 ticks: {before}"
            sent_ms = time.time() * 1000
            t0 = time.time()
            code = agent.stop(signal.SIGHUP)
            took = time.time() - t0
            err = agent.stderr()
    assert code == 0, f"exit {code} after SIGHUP (-1 is killed by it): {err}"
    limit = min(scaled(5.0), 15.0)  # a busy host slows the final checkpoint and ledger writes
    assert took < limit, f"SIGHUP took {took:.2f} s to stop (limit {limit:.1f} s)"
    assert "SIGHUP: stopping" in err, f"the log does not say why it stopped: {err}"
    assert "wattprobe: stopped" in err, err
    print(f"ok: SIGHUP stopped the agent in {took:.3f} s, exit 0, logged")

    written_ms, totals = checkpoint(state)
    at_stop = value(totals, "wattprobe_node_energy_joules_total", **NODE)
    assert written_ms >= sent_ms - 50, f"checkpoint written at {written_ms}, SIGHUP at {sent_ms}"
    assert at_stop >= before, f"checkpoint {at_stop} J < last scrape {before} J"
    print(f"ok: the final checkpoint was written at the stop: node package {at_stop:.3f} J "
          f"(last scrape {before:.3f} J)")

    lines = ledger_lines(state)
    assert lines, f"no ledger line after SIGHUP in {state}/ledger"
    joules = sum(d["joules"] for _, _, d in lines)
    covered = max(d["covered_seconds"] for _, _, d in lines)
    # Every tick's node energy goes to idle, a workload or unattributed: the ledger's lines of
    # the run add up to the checkpoint's node energy.
    assert abs(joules - at_stop) <= 1e-6 * at_stop + 1e-9, \
        f"ledger {joules} J vs checkpoint {at_stop} J"
    assert covered > 1.5, f"the flushed period covers only {covered} s"
    print(f"ok: the ledger was flushed at the stop: {len(lines)} lines, {joules:.3f} J "
          f"(= the checkpoint), {covered:.2f} s covered")


if __name__ == "__main__":
    main()
