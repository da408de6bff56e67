"""Per unit of work from a service's own counter, end to end with the real binary (issue 29):
- a fake service on 127.0.0.1 whose counter counts the work a burner in a test cgroup does, on a
  powercap fixture whose power follows the host's load (20 W + 60 W × busy CPUs): the agent's
  J/unit equals Δ(the workload's host energy)/Δ(units) read from /metrics over the window within
  3 %;
- the steadiness flag goes 1 in steady state, and 0 (unsteady) when the units' rate jumps;
- a hanging endpoint, a 500, a garbage body and a missing counter are each counted by reason,
  each unit's last good total kept, the tick never held up; they read again once the service does;
- a restart of the service's counter is counted as a reset, with no negative and no huge step;
- no units in the window: no per-unit series at all;
- `report --per-unit` from the ledger: R the units /metrics counted, E the workload's host energy,
  SCI = (E × I + M) / R."""

import http.server
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import threading
import time

from wattprobe_e2e import (Cgroups, healthz, near, run_report, scaled, scrape, series, skip,
                           start_agent, start_driver, value, wait_metrics, wait_ticks)

TAG = os.getpid()
WORKLOAD = f"units-burner-{TAG}.service"
COUNTER = "fake:generated_tokens_total"
INTERVAL = 0.2
WINDOW = 10.0
UNITS = "wattprobe_workload_functional_units_total"
PER_UNIT = "wattprobe_workload_energy_per_unit_joules"
STABLE = "wattprobe_workload_energy_per_unit_stable"
WHY = "wattprobe_workload_energy_per_unit_stability_info"
ERRORS = "wattprobe_agent_unit_scrape_errors_total"
HOST = "wattprobe_workload_host_energy_joules_total"
FAILING = {"hang": "timeout", "status": "http_status", "garbage": "malformed",
           "missing": "missing_counter"}


def work(count, factor, stop, cgroup):
    """The service's work: fixed chunks of CPU, each counting `factor` units, in its cgroup, so
    its units follow the CPU it got on a busy host as a real server's tokens do."""
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    x = 0
    while not stop.value:
        for i in range(20000):
            x += i
        with count.get_lock():
            count.value += factor.value


class Service:
    """The service's /metrics, one path per unit; a unit's path can be switched to failing."""

    def __init__(self, count):
        self.count = count
        self.failing = set()
        self.release = threading.Event()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.strip("/")
                body = (f"# HELP {COUNTER} Tokens generated.\n# TYPE {COUNTER} counter\n"
                        f'{COUNTER}{{engine="0"}} {service.count.value:.0f}\n')
                if name in service.failing:
                    if name == "hang":
                        service.release.wait(60)
                    elif name == "status":
                        self.send_error(500)
                        return
                    elif name == "garbage":
                        body = "<html>not the text format</html>\n"
                    elif name == "missing":
                        body = "# TYPE other_total counter\nother_total 1\n"
                data = body.encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the agent gave up on a hung read

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def config(path, url):
    with open(path, "w") as f:
        for name in ["tokens", *FAILING]:
            # A glob that matches the burner's workload only.
            f.write(f"[unit.{name}]\nurl = {url}/{name}\ncounter = {COUNTER}\n"
                    f'match = engine=0\nworkload = units-burner-{TAG}*\n\n')


def units(m, unit):
    return value(m, UNITS, unit=unit)


def history(agent, seconds):
    """{tick: scrape} for every tick the test saw over `seconds` of the agent's ticks."""
    seen = {}
    start = wait_ticks(agent, 1)
    want = start + int(seconds / INTERVAL)
    deadline = time.time() + scaled(seconds * 3 + 20)
    while time.time() < deadline:
        m = scrape(agent.url)
        t = int(sum(v for n, _, v in m if n == "wattprobe_agent_tick_duration_seconds_count"))
        seen.setdefault(t, m)
        if t >= want:
            return seen
        time.sleep(0.03)
    raise AssertionError(f"the agent did not tick {want - start} times in time")


def closest(seen, tick):
    return seen[min(seen, key=lambda t: abs(t - tick))]


def main():
    if os.geteuid() != 0:
        skip("needs root: creates a cgroup for the service's burner")
    groups = Cgroups(WORKLOAD)
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    conf = os.path.join(tempfile.mkdtemp(prefix="wattprobe-units-conf-"), "wattprobe.conf")
    ctx = multiprocessing.get_context("fork")
    count, factor, stop = ctx.Value("d", 1e6), ctx.Value("d", 1.0), ctx.Value("i", 0)
    burner = ctx.Process(target=work, args=(count, factor, stop, groups.paths[WORKLOAD]))
    service = Service(count)
    try:
        burner.start()
        config(conf, service.url)
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "20"), \
             start_agent("--config", conf, "--sysfs-root", root, "--sources", "rapl_powercap",
                         "--interval", f"{int(INTERVAL * 1000)}ms", "--unit-window",
                         f"{int(WINDOW)}s", "--idle-watts", "package=20",
                         "--ledger-period", "1s") as agent:
            steady(agent)
            rate_jump(agent, factor)
            failures(agent, service)
            restart(agent, count)
            no_units(agent, factor)
            last = scrape(agent.url)
            agent.stop()
            per_unit_report(agent, last)
    finally:
        stop.value = 1
        burner.join(10)
        if burner.is_alive():
            burner.kill()
        service.close()
        groups.close()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(os.path.dirname(conf), ignore_errors=True)


def steady(agent):
    m = wait_metrics(agent.url, lambda m: [v for _, v in series(m, STABLE, unit="tokens")
                                           if v == 1] and m,
                     "the per-unit figure steady (20 s of ticks with units, quarters within 5 %)",
                     timeout=120)
    labels = series(m, PER_UNIT, unit="tokens")[0][0]
    assert labels["workload"] == f"units-burner-{TAG}*" and labels["kind"] == "service", labels
    print(f"ok: steady; per-unit labels {labels}")
    # The figure a tick exports ends two ticks before: the host energy of that snapshot and the
    # units read right after it (which the tick exports as its units total).
    seen = history(agent, WINDOW + 2)
    last = max(seen)
    n = round(WINDOW / INTERVAL)
    m1, m0 = closest(seen, last - 2), closest(seen, last - 2 - n)
    u1, u0 = closest(seen, last), closest(seen, last - n)
    joules = value(m1, HOST, workload=WORKLOAD) - value(m0, HOST, workload=WORKLOAD)
    counted = units(u1, "tokens") - units(u0, "tokens")
    assert counted > 0, counted
    figure = value(seen[last], PER_UNIT, unit="tokens")
    print(f"window: {joules:.2f} J of host energy, {counted:.0f} units")
    near(figure, joules / counted, 0.03, "J per unit against Δ host energy / Δ units on /metrics")


def rate_jump(agent, factor):
    factor.value = 4.0
    wait_metrics(agent.url, lambda m: value(m, STABLE, unit="tokens") == 0 and
                 series(m, WHY, unit="tokens", reason="unsteady"),
                 "the steadiness flag 0 (unsteady) after the units' rate jumped", timeout=30)
    print("ok: a rate jump makes the window unsteady")
    factor.value = 1.0


def failures(agent, service):
    before = scrape(agent.url)
    service.failing = set(FAILING)

    def counted(m):
        return all(value(m, ERRORS, unit=u, reason=r) > value(before, ERRORS, unit=u, reason=r)
                   for u, r in FAILING.items())
    m0 = wait_metrics(agent.url, lambda m: counted(m) and m, "each failure counted by reason",
                      timeout=30)
    since = wait_ticks(agent, 3)
    # Ticks go on at their pace while a read hangs: the tick takes the last completed reading.
    status, text = healthz(agent.url)
    assert status == 200, (status, text)
    m1 = scrape(agent.url)
    for u, r in FAILING.items():
        assert units(m1, u) == units(m0, u), (u, units(m0, u), units(m1, u))
        print(f"ok: {u}: {r} counted ({value(m1, ERRORS, unit=u, reason=r):.0f}), "
              f"total kept at {units(m1, u):.0f}")
    assert units(m1, "tokens") > units(m0, "tokens"), "the good unit stopped"
    others = {u: sum(v for l, v in series(m1, ERRORS, unit=u) if l["reason"] != r)
              for u, r in FAILING.items()}
    assert not any(others.values()), f"other reasons counted too: {others}"
    service.failing = set()
    service.release.set()
    wait_metrics(agent.url, lambda m: all(units(m, u) > units(m1, u) for u in FAILING),
                 "every unit counting again once its endpoint answers", timeout=30)
    print(f"ok: every unit reads again (ticks {since})")


def restart(agent, count):
    m0 = scrape(agent.url)
    resets0 = value(m0, "wattprobe_agent_unit_counter_resets_total", unit="tokens")
    start_units = count.value
    t0 = time.time()
    with count.get_lock():
        count.value = 0.0
    m1 = wait_metrics(agent.url, lambda m: value(m, "wattprobe_agent_unit_counter_resets_total",
                                                 unit="tokens") > resets0 and m,
                      "the restart counted as a reset", timeout=30)
    wait_ticks(agent, 3)
    m2 = scrape(agent.url)
    gained = units(m2, "tokens") - units(m0, "tokens")
    print(f"restart: +{gained:.0f} units across it (the counter held {start_units:.0f} before, "
          f"{count.value:.0f} since; {time.time() - t0:.1f} s)")
    assert units(m1, "tokens") >= units(m0, "tokens"), "the total went down"
    # What the service counted in those seconds, a few thousand: far from the counter's value
    # before the restart, which a sum of the series would have taken as a step back or forward.
    assert 0 < gained < min(1e5, start_units / 4), f"a step of {gained:.0f} units across the restart"
    print("ok: a restart of the counter is a reset, no negative, no huge step")


def no_units(agent, factor):
    factor.value = 0.0
    wait_metrics(agent.url, lambda m: not series(m, PER_UNIT, unit="tokens") and
                 series(m, WHY, unit="tokens", reason="no_units"),
                 "no per-unit series once the window counted no units", timeout=WINDOW + 30)
    m = scrape(agent.url)
    assert not series(m, "wattprobe_workload_co2e_per_unit_grams", unit="tokens")
    assert series(m, UNITS, unit="tokens"), "the units total must stay"
    print("ok: no units in the window, no per-unit series (neither inf nor 0)")


def per_unit_report(agent, last):
    """`report --per-unit` from the ledger the agent wrote: R the units /metrics counted, E the
    burner's host energy, SCI (E × I + M) / R."""
    r = run_report("--per-unit", "--state-dir", agent.state_dir, "--since", "-1h", "--format",
                   "json")
    assert r.returncode == 0, (r.returncode, r.stderr)
    rows = {u["unit"]: u for u in json.loads(r.stdout)["units"]}
    assert set(rows) == {"tokens", *FAILING}, rows.keys()
    tokens = rows["tokens"]
    assert tokens["workload"] == f"units-burner-{TAG}*", tokens
    assert tokens["matched_workloads"] == [WORKLOAD], tokens["matched_workloads"]
    # The agent ticked once or twice after the last scrape, while no units were counted.
    near(tokens["sci"]["R"], units(last, "tokens"), 0.01, "report R against /metrics' units")
    near(tokens["energy_joules"], value(last, HOST, workload=WORKLOAD), 0.03,
         "report E against /metrics' host energy of the workload")
    grams = tokens["operational_co2e_grams"] + tokens["embodied_co2e_grams"]
    near(tokens["sci"]["grams_per_unit"], grams / tokens["sci"]["R"], 1e-9,
         "SCI = (E x I + M) / R")
    print(f"ok: report --per-unit: {tokens['sci']['R']:.0f} tokens, "
          f"{tokens['joules_per_unit']:.4g} J and {tokens['sci']['grams_per_unit']:.3g} g each")


if __name__ == "__main__":
    main()
    print("1 passed, 0 failed")
