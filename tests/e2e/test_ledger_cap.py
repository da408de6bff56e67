"""--ledger-max-bytes through the real binary (issue 16): a state folder holding 2.4 MiB of
older ledger day files and a 1 MiB cap; at start the agent deletes the oldest closed days until
the rest fit, says so in its log and in wattprobe_agent_ledger_files_removed_for_size_total,
keeps today's file, and `wattprobe report` still sums the days that are left. A cap under
1 MiB is refused with exit 2."""

import datetime
import os
import shutil
import subprocess
import tempfile

from wattprobe_e2e import BIN, run_report, scrape, series, start_agent, wait_until


def day_file(state, day, size):
    line = ('{"v":1,"start":"%sT00:00:00Z","period_seconds":60,"covered_seconds":60,'
            '"measured":true,"type":"idle","joules":1,"gpu_joules":0,"cpu_seconds":0,'
            '"operational_co2e_grams":0,"embodied_co2e_grams":0}\n' % day)
    path = os.path.join(state, "ledger", day + ".jsonl")
    with open(path, "w") as f:
        f.write(line * (size // len(line) + 1))
    return path


def main():
    p = subprocess.run([BIN, "run", "--ledger-max-bytes", "1000"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "ledger-max-bytes" in p.stderr, (p.returncode, p.stderr)

    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    try:
        os.makedirs(os.path.join(state, "ledger"))
        today = datetime.datetime.now(datetime.timezone.utc).date()
        days = [(today - datetime.timedelta(days=n)).isoformat() for n in (4, 3, 2, 1)]
        files = [day_file(state, d, 600 << 10) for d in days]  # 2.4 MiB of closed days
        with start_agent("--ledger-max-bytes", "1048576", "--sources", "model", "--interval",
                         "200ms", "--ledger-period", "1s", state_dir=state) as agent:
            def removed_now():
                got = series(scrape(agent.url),
                             "wattprobe_agent_ledger_files_removed_for_size_total")
                return got[0][1] if got else None

            removed = wait_until(removed_now, 10, "the byte cap applied at start")
            wait_until(lambda: os.path.exists(os.path.join(state, "ledger",
                                                           today.isoformat() + ".jsonl")),
                       10, "today's ledger file")
            log = agent.stderr()
        left = [os.path.exists(f) for f in files]
        print(f"closed day files kept: {left}, removed: {removed}")
        assert left == [False, False, False, True], left  # 2.4 MiB → 0.6 MiB
        assert removed == 3, removed
        assert log.count("passed --ledger-max-bytes") == 3, log
        report = run_report("--state-dir", state, "--since", days[0], "--until", "now",
                            "--format", "csv")
        assert report.returncode == 0, report.stderr
        assert report.stderr == "", report.stderr  # no line of the days left is malformed
        assert "idle" in report.stdout, report.stdout
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
