"""24/7 carbon-free energy through the real binary (issue 28, section 3): the carbon-free share
each provider publishes (Electricity Maps' fossilFreePercentage, the GB generation mix, the file
provider's cfe_percent column and fossilFreePercentage field) becomes
wattprobe_grid_carbon_free_ratio; the CFE joules of every workload, idle and unattributed are the
same energy x PUE the grams come from, times that share; a provider that publishes none (WattTime)
gives no CFE series at all; and `wattprobe report` gives each group's time-matched CFE score.

The APIs are tests/support/fake_grid_api.py on 127.0.0.1, answering in the providers' published
shapes."""

import json
import os
import subprocess
import tempfile
import time
import urllib.request

from wattprobe_e2e import run_report, scrape, series, start_agent, wait_until

FAKE_API = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "fake_grid_api.py")
EM_TOKEN = "em-test-token-SECRET"
AGENT = ["--sources", "model", "--interval", "200ms", "--grid-refresh", "1s"]
PUE = 1.2


class FakeApi:
    def __init__(self):
        self.proc = subprocess.Popen(["python3", FAKE_API], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def control(self, what):
        urllib.request.urlopen(f"{self.url}/__{what}", timeout=5).read()

    def close(self):
        self.proc.kill()
        self.proc.wait()


def ratio_gauge(agent, want, what):
    def seen():
        got = series(scrape(agent.url), "wattprobe_grid_carbon_free_ratio")
        return got if got and abs(got[0][1] - want) < 1e-12 else None
    got = wait_until(seen, 30, f"{what}: carbon-free ratio {want}")
    print(f"ok: {what}: wattprobe_grid_carbon_free_ratio {got[0][1]} ({got[0][0]})")


def totals(m):
    """{(family kind, workload): (cfe joules, operational grams)}."""
    out = {}
    for labels, v in series(m, "wattprobe_workload_operational_co2e_grams_total"):
        out[("workload", labels["workload"], labels["kind"])] = [None, v]
    for labels, v in series(m, "wattprobe_workload_cfe_energy_joules_total"):
        out.setdefault(("workload", labels["workload"], labels["kind"]), [None, None])[0] = v
    for part in ("idle", "unattributed"):
        g = series(m, f"wattprobe_node_{part}_operational_co2e_grams_total")
        c = series(m, f"wattprobe_node_{part}_cfe_energy_joules_total")
        out[(part,)] = [c[0][1] if c else None, g[0][1] if g else None]
    return out


def electricitymaps(api, tmp):
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write(EM_TOKEN + "\n")
    os.chmod(token, 0o644)
    api.control("value/300")
    api.control("cfe/62.5")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    grid = ["--grid-provider", "electricitymaps", "--grid-zone", "DE", "--grid-url", api.url,
            "--grid-token-file", token, "--pue", str(PUE), "--ledger-period", "1s"]
    with start_agent(*AGENT, *grid, state_dir=state) as agent:
        ratio_gauge(agent, 0.625, "electricitymaps fossilFreePercentage 62.5")
        wait_until(lambda: series(scrape(agent.url), "wattprobe_node_idle_cfe_energy_joules_total"),
                   30, "CFE families")
        before = totals(scrape(agent.url))
        ticks = lambda m: series(m, "wattprobe_agent_tick_duration_seconds_count")[0][1]
        t0 = ticks(scrape(agent.url))
        after = wait_until(lambda: (lambda m: m if ticks(m) >= t0 + 10 else None)(scrape(agent.url)),
                           30, "ten more ticks")
        after = totals(after)
        # Between two scrapes the share was 62.5 % and the intensity 300 g/kWh throughout, so
        # CFE J / operational g = (E x PUE x 0.625) / (E x PUE x 300 / 3.6e6) for every row.
        want = 0.625 * 3.6e6 / 300
        checked = 0
        for key, (cfe, grams) in after.items():
            if key not in before or grams is None or before[key][1] is None:
                continue
            dg = grams - before[key][1]
            if dg <= 0:
                continue
            assert cfe is not None and before[key][0] is not None, (key, before[key], after[key])
            dc = cfe - before[key][0]
            assert abs(dc / dg - want) <= 1e-6 * want, f"{key}: {dc} J CFE for {dg} g, want ratio {want}"
            checked += 1
        # Idle and unattributed are exported as CFE too (0 where the model gives them no energy).
        assert checked >= 1 and after[("idle",)][0] is not None and after[("unattributed",)][0] is not None, after
        print(f"ok: CFE joules = energy x PUE x 62.5 % for the {checked} rows with energy, "
              "the energy the grams come from")
    r = run_report("--state-dir", state, "--since", "-1h", "--format", "json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    scored = [g for g in rep["groups"] if g["cfe_score"] is not None]
    assert scored and rep["totals"]["cfe_score"] is not None, rep
    for row in scored + [rep["totals"]] + [r for r in rep["node"].values() if r["cfe_score"] is not None]:
        assert abs(row["cfe_score"] - 0.625) < 1e-9, row
        assert row["cfe_energy_joules"] <= row["energy_joules"] * PUE * 0.625 + 1e-9, row
    t = run_report("--state-dir", state, "--since", "-1h")
    assert t.returncode == 0 and "24/7 CFE score" in t.stdout and "62.50%" in t.stdout, t.stdout
    c = run_report("--state-dir", state, "--since", "-1h", "--format", "csv")
    assert ",gpu_energy_joules,cfe_energy_joules,cfe_score" in c.stdout.splitlines()[0], c.stdout
    print(f"ok: report: time-matched CFE score 0.625 for {len(scored)} groups and the total")


def gb(api):
    api.control("mode/ok")
    with start_agent(*AGENT, "--grid-provider", "carbonintensity-uk", "--grid-url", api.url) as agent:
        ratio_gauge(agent, 0.55, "GB generation mix (nuclear 15 + wind 30 + solar 8 + hydro 2)")


def file_provider(tmp):
    now = int(time.time())
    csv = os.path.join(tmp, "cfe.csv")
    with open(csv, "w") as f:
        f.write(f"time,grams_per_kwh,cfe_percent\n{now - 3600},250,71.5\n{now + 3600},300,20\n")
    with start_agent(*AGENT, "--grid-provider", "file", "--grid-file", csv) as agent:
        ratio_gauge(agent, 0.715, "file provider cfe_percent column")
    js = os.path.join(tmp, "cfe.json")
    with open(js, "w") as f:
        json.dump([{"datetime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
                    "carbonIntensity": 250, "fossilFreePercentage": 33}], f)
    with start_agent(*AGENT, "--grid-provider", "file", "--grid-file", js) as agent:
        ratio_gauge(agent, 0.33, "file provider JSON fossilFreePercentage")


def watttime(api):
    env_key = "WATTPROBE_GRID_TOKEN"
    os.environ[env_key] = "wt-password-SECRET"
    try:
        grid = ["--grid-provider", "watttime", "--grid-zone", "CAISO_NORTH", "--grid-url", api.url,
                "--grid-username", "wt-user"]
        with start_agent(*AGENT, *grid) as agent:
            wait_until(lambda: any(l.get("signal") == "marginal" for l, _ in series(
                scrape(agent.url), "wattprobe_grid_carbon_intensity_grams_per_kwh")), 30, "WattTime answering")
            ticks = series(scrape(agent.url), "wattprobe_agent_tick_duration_seconds_count")[0][1]
            m = wait_until(lambda: (lambda m: m if series(m, "wattprobe_agent_tick_duration_seconds_count")[0][1] >= ticks + 5
                                    else None)(scrape(agent.url)), 30, "five more ticks")
            names = {n for n, _, _ in m}
            assert not series(m, "wattprobe_grid_carbon_free_ratio"), "WattTime publishes no share"
            assert not any("cfe" in n for n in names), sorted(n for n in names if "cfe" in n)
            print("ok: watttime publishes no carbon-free share: no CFE series, rather than a guess")
    finally:
        del os.environ[env_key]


def main():
    tmp = tempfile.mkdtemp(prefix="wattprobe-cfe-")
    os.chmod(tmp, 0o755)
    api = FakeApi()
    try:
        electricitymaps(api, tmp)
        gb(api)
        file_provider(tmp)
        watttime(api)
    finally:
        api.close()


if __name__ == "__main__":
    main()
