"""Job records end to end with the real binary (issue 29): a workload that ends, its cgroup removed,
gives one record that `wattprobe report --jobs` lists.
- a burner runs 5 s in a test-made cgroup on the fake powercap, then exits: while its cgroup stays
  (idle) no record is written; once the cgroup is removed, one is, and `report --jobs --format
  json` lists it with the host energy, package energy and CPU time /metrics last showed for it,
  within 1 %;
- a job running across a restart (the agent stopped while it burns, started again on the same
  --state-dir) is continued from the checkpoint and recorded once, with its first tick from
  before the restart and the energy the restarted agent's /metrics last showed;
- the units a [unit.NAME] section naming the job exactly counted while it ran (a textfile counter
  stepped by 300) are in its record;
- report --jobs refuses a bad --kind naming the flag and the value."""

import calendar
import json
import os
import subprocess
import tempfile
import time

from wattprobe_e2e import (BIN, TOOLS, Cgroups, near, scaled, scrape, series, skip, start_agent,
                           start_driver, value, wait_checkpoint, wait_metrics, wait_ticks)

TAG = os.getpid()
WRITTEN = "wattprobe_agent_job_records_written_total"


def figures(metrics, workload):
    """What /metrics shows for a workload: host energy, package energy, CPU seconds."""
    host = series(metrics, "wattprobe_workload_host_energy_joules_total", workload=workload)
    if not host:
        return None
    package = sum(v for _, v in series(metrics, "wattprobe_workload_energy_joules_total",
                                       workload=workload, domain="package"))
    cpu = value(metrics, "wattprobe_workload_cpu_seconds_total", workload=workload)
    return {"host": host[0][1], "package": package, "cpu": cpu}


def report_jobs(state_dir, *extra):
    r = subprocess.run([BIN, "report", "--jobs", "--state-dir", state_dir, "--format", "json",
                        *extra], capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode == 0, f"report --jobs exited {r.returncode}: {r.stderr}"
    return json.loads(r.stdout)["jobs"]


def burner(path, seconds):
    return subprocess.Popen([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", "0.5",
                             "--seconds", str(seconds), "--cgroup", path])


def settled(agent, workload):
    """The workload's figures once its burner has exited: two ticks later they no longer move."""
    wait_ticks(agent, 2)
    return figures(scrape(agent.url), workload)


def remove(groups, name):
    path = groups.paths.pop(name)
    deadline = time.time() + scaled(10)
    while True:
        try:
            os.rmdir(path)
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def check_record(job, shown, workload):
    assert job["workload"] == workload and job["kind"] == "service", job
    near(job["host_energy_joules"], shown["host"], 0.01, f"{workload}: record vs /metrics host energy")
    package = sum(e["joules"] for e in job["energy"] if e["domain"] == "package")
    near(package, shown["package"], 0.01, f"{workload}: record vs /metrics package energy")
    near(job["cpu_seconds"], shown["cpu"], 0.01, f"{workload}: record vs /metrics CPU seconds")
    assert job["measured"] is True, job
    assert job["operational_co2e_grams"] > 0, job


def write_rows(path, rows):
    """The job's own count of work, in the text format a textfile collector reads."""
    with open(path + ".tmp", "w") as f:
        f.write(f"# TYPE etl_rows_total counter\netl_rows_total {rows}\n")
    os.chmod(path + ".tmp", 0o644)
    os.rename(path + ".tmp", path)


def units_counted(metrics, name):
    got = series(metrics, "wattprobe_workload_functional_units_total", workload=name, unit="rows")
    return got[0][1] if got else None


def one_job(root, groups, state):
    name = f"wattprobe-jobs-{TAG}-one.scope"
    folder = tempfile.mkdtemp(prefix="wattprobe-jobs-units-")
    rows = os.path.join(folder, "rows.prom")
    write_rows(rows, 100)
    conf = os.path.join(folder, "wattprobe.conf")
    with open(conf, "w") as f:
        f.write(f"[unit.rows]\nurl = {rows}\ncounter = etl_rows_total\nworkload = {name}\n")
    with start_agent("--config", conf, "--sysfs-root", root, "--sources", "rapl_powercap",
                     "--interval", "500ms", "--accounting", "cgroup", "--idle-watts",
                     "package=20", state_dir=state) as agent:
        b = burner(groups.paths[name], 5)
        assert b.wait(scaled(60)) == 0, "cpu_burner failed"
        shown = settled(agent, name)
        assert shown and shown["host"] > 0, f"no energy for {name}: {shown}"
        wait_metrics(agent.url, lambda m: units_counted(m, name) is not None, "the unit counted")
        write_rows(rows, 400)
        wait_metrics(agent.url, lambda m: units_counted(m, name) == 300, "300 more rows counted")
        # Idle, its cgroup still there: not an end.
        wait_ticks(agent, 3)
        m = scrape(agent.url)
        assert value(m, WRITTEN) == 0, "a record was written for a workload that only went idle"
        assert figures(m, name) == shown, (figures(m, name), shown)
        print(f"ok: idle for 3 ticks with its cgroup: no record ({shown})")
        remove(groups, name)
        wait_metrics(agent.url, lambda m: value(m, WRITTEN) >= 1, "a job record written")
        wait_ticks(agent, 2)
        assert value(scrape(agent.url), WRITTEN) == 1
    jobs = [j for j in report_jobs(state) if j["workload"] == name]
    assert len(jobs) == 1, jobs
    check_record(jobs[0], shown, name)
    assert jobs[0]["duration_seconds"] >= 3, jobs[0]
    assert jobs[0].get("units") == {"rows": 300}, f"the job's units: {jobs[0].get('units')}"
    print(f"ok: one record, with the 300 rows its unit counted: {jobs[0]}")


def across_restart(root, groups, state):
    name = f"wattprobe-jobs-{TAG}-restart.scope"
    args = ("--sysfs-root", root, "--sources", "rapl_powercap", "--interval", "500ms",
            "--accounting", "cgroup", "--idle-watts", "package=20", "--checkpoint-interval", "1s")
    b = burner(groups.paths[name], 12)
    try:
        with start_agent(*args, state_dir=state) as first:
            wait_metrics(first.url, lambda m: (figures(m, name) or {}).get("cpu", 0) > 0.2,
                         f"{name} running")
            wait_checkpoint(first)
            before = figures(scrape(first.url), name)
            stopped_at = time.time()
        # Stopped while the job runs: not an end.
        assert b.poll() is None, "the burner ended before the restart; the host is too slow"
        with start_agent(*args, state_dir=state) as second:
            assert b.wait(scaled(60)) == 0, "cpu_burner failed"
            shown = settled(second, name)
            assert shown["host"] > before["host"], (shown, before)
            remove(groups, name)
            wait_metrics(second.url, lambda m: value(m, WRITTEN) >= 1, "a job record written")
            wait_ticks(second, 2)
    finally:
        if b.poll() is None:
            b.kill()
            b.wait()
    jobs = [j for j in report_jobs(state) if j["workload"] == name]
    assert len(jobs) == 1, f"{len(jobs)} records for one job across a restart: {jobs}"
    check_record(jobs[0], shown, name)
    first_seen = calendar.timegm(time.strptime(jobs[0]["first_seen"], "%Y-%m-%dT%H:%M:%SZ"))
    assert first_seen < stopped_at, f"first_seen {jobs[0]['first_seen']} is not from before the restart"
    print(f"ok: recorded once across a restart, first seen {jobs[0]['first_seen']}: {jobs[0]}")


def refuses_bad_kind(state):
    r = subprocess.run([BIN, "report", "--jobs", "--state-dir", state, "--kind", "batch"],
                       capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode == 2 and '"batch" for --kind' in r.stderr, (r.returncode, r.stderr)
    print(f"ok: refused: {r.stderr.strip()}")


def main():
    if os.geteuid() != 0:
        skip("needs root: creates cgroups and loads eBPF")
    probe = subprocess.run([BIN, "doctor", "--accounting", "cgroup"], capture_output=True,
                           text=True, timeout=scaled(60))
    if "run would use: cgroup" not in probe.stdout:
        skip("the cgroup accounting mode is not available here (kernel before 6.1, no BTF): "
             + (probe.stdout + probe.stderr).strip().splitlines()[-1])
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    groups = Cgroups(f"wattprobe-jobs-{TAG}-one.scope", f"wattprobe-jobs-{TAG}-restart.scope")
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20"):
            one_job(root, groups, tempfile.mkdtemp(prefix="wattprobe-state-"))
            across_restart(root, groups, tempfile.mkdtemp(prefix="wattprobe-state-"))
            refuses_bad_kind(tempfile.mkdtemp(prefix="wattprobe-state-"))
    finally:
        groups.close()
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
