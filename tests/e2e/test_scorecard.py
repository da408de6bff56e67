"""`wattprobe scorecard` against a real Prometheus (issue 30).

Two months (October and November 2026) of series for five synthetic hosts, with known rates, are
backfilled through `promtool tsdb create-blocks-from openmetrics`; the server also scrapes two
live agents on fake powercap trees. Every figure of the JSON scorecard for November must equal
the truth computed here within 1 %, the decomposition must add up to the gram, the host that
stops on 15 November must be reported with its gap and its group's figures marked lower bounds,
and the host silent from 5 to 8 November, then back, with how long it was silent.
The HTML scorecard is opened in headless Chromium: the DOM holds both SVG charts and the
screenshot is not blank (skipped, with the reason, where Chromium is absent).

WATTPROBE_UPDATE_SAMPLE=1 rewrites docs/scorecard-sample/ from this data."""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import datetime, timezone

from wattprobe_e2e import (BIN, PrometheusServer, start_agent, start_driver, wait_until)
from wattprobe_e2e import near as near_printed


def near(actual, expected, rel, what):
    """As the helpers' near, quiet: a scorecard has hundreds of figures; failures still name
    the figure, and the summaries say what passed."""
    if actual is None or not (abs(actual - expected) <= rel * abs(expected) if expected
                              else abs(actual) <= rel):
        raise AssertionError(f"{what}: {actual} is not within {rel*100:.2f}% of {expected}")

STEP = 7200  # seconds between backfilled samples: promtool 2.42 rereads the whole file for
# each 2-hour block it writes (733 of them), so fewer samples is what keeps the test quick


def ts(text):
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())


OCT, NOV, DEC = ts("2026-10-01"), ts("2026-11-01"), ts("2026-12-01")
H5_STOP = ts("2026-11-15")
# rack1-h3 is silent from 5 to 8 November and reports again: its counters go on across the
# stretch (the figures stay exact), and the scorecard must say how long it was silent.
H3_SILENT = (ts("2026-11-05"), ts("2026-11-08"))
YEAR = 365.25 * 86400

# Per host: its energy domains ("host" = the host-energy family, which wins; "psys" wins over
# the components), whether its source is measured, grid intensity g/kWh per month, workloads.
# A workload: (name, kind, namespace, pod, container, {month: watts}, embodied g/s, cpu cores,
# units per second or None).
HOSTS = {
    "rack1-h1": dict(domains=("package", "dram"), measured=True, intensity=(300, 350), workloads=[
        ("shop/web-1/app", "pod", "shop", "web-1", "app", (40, 48), 0.002, 2.0, None),
        ("search/idx-1/app", "pod", "search", "idx-1", "app", (20, 18), 0.001, 1.0, None),
        ("nginx.service", "service", "", "", "", (5, 6), 0.0005, 0.2, None)]),
    "rack1-h2": dict(domains=("package", "dram", "gpu"), measured=True, intensity=(300, 280),
                     workloads=[
        ("shop/api-1/app", "pod", "shop", "api-1", "app", (60, 70), 0.003, 3.0, None),
        ("batch/job-1/run", "pod", "batch", "job-1", "run", (100, 60), 0.004, 4.0, None)]),
    "rack1-h3": dict(domains=("host", "package", "dram"), measured=True, intensity=(200, 200),
                     workloads=[
        ("search/idx-2/app", "pod", "search", "idx-2", "app", (30, 45), 0.002, 1.5, 20.0)]),
    "rack1-h4": dict(domains=("psys", "package"), measured=False, intensity=(400, 420),
                     workloads=[
        ("shop/web-2/app", "pod", "shop", "web-2", "app", (25, 25), 0.001, 1.0, None)]),
    "rack1-h5": dict(domains=("package", "dram"), measured=True, intensity=(300, 300),
                     workloads=[
        ("batch/job-2/run", "pod", "batch", "job-2", "run", (50, 50), 0.002, 2.0, None)]),
}
TEAMS = {"shop": "storefront", "search": "discovery", "batch": "data"}
# How a workload's watts spread over the domains its host has (host = the whole box).
SPLIT = {"package": 0.7, "dram": 0.1, "gpu": 0.2, "psys": 1.0, "host": 1.2}
UNATTRIBUTED = {"rack1-h1": 0.10}  # share of the node's energy; others 1 %


def month_of(t):
    return 0 if t < NOV else 1


def host_end(host):
    return H5_STOP if host == "rack1-h5" else DEC


def sampled(host, t):
    """Whether a host has a sample at t: none inside rack1-h3's silent stretch."""
    return host != "rack1-h3" or not H3_SILENT[0] < t < H3_SILENT[1]


def integral(rates, t):
    """The counter at t of a per-month rate pair starting at 0 on 1 October."""
    if t <= NOV:
        return rates[0] * (t - OCT)
    return rates[0] * (NOV - OCT) + rates[1] * (t - NOV)


def workload_domains(h):
    """The workload energy domains a host exports (the host family is another family)."""
    return [d for d in h["domains"] if d != "host"]


def write_openmetrics(path):
    lines = []

    def counter(name, labels, rates, host):
        lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for t in range(OCT, host_end(host) + 1, STEP):
            if sampled(host, t):
                lines.append(f"{name}{{{lab}}} {integral(rates, t):.6f} {t}")

    def gauge(name, labels, value, host):
        # Gauges are read with last_over_time/max_over_time: one sample a day is enough, and
        # every line saved is saved 733 times over in promtool.
        lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for t in range(OCT, host_end(host) + 1, 86400):
            if sampled(host, t):
                lines.append(f"{name}{{{lab}}} {value} {t}")

    for host, h in HOSTS.items():
        base = {"instance": host, "job": "fleet"}
        node_watts = [0.0, 0.0]
        for (wl, kind, ns, pod, ctr, watts, emb, cores, units) in h["workloads"]:
            ident = dict(base, workload=wl, kind=kind, namespace=ns, pod=pod, container=ctr)
            e_host = energy_rates(h, watts)
            op = tuple(e_host[m] * h["intensity"][m] / 3.6e6 for m in (0, 1))
            counter("wattprobe_workload_operational_co2e_grams_total", ident, op, host)
            counter("wattprobe_workload_embodied_co2e_grams_total", ident, (emb, emb), host)
            counter("wattprobe_workload_cpu_seconds_total", ident, (cores, cores), host)
            if units:
                counter("wattprobe_workload_functional_units_total", dict(ident, unit="requests"),
                        (units, units * 1.5), host)
            for d in workload_domains(h):
                counter("wattprobe_workload_energy_joules_total",
                        dict(ident, domain=d, source="rapl_powercap" if h["measured"] else "model",
                             measured="true" if h["measured"] else "false"),
                        tuple(w * SPLIT[d] for w in watts), host)
            if "host" in h["domains"]:
                counter("wattprobe_workload_host_energy_joules_total", ident,
                        tuple(w * SPLIT["host"] for w in watts), host)
            for m in (0, 1):
                node_watts[m] += watts[m]
        share = UNATTRIBUTED.get(host, 0.01)
        for d in workload_domains(h):
            node = tuple(w * SPLIT[d] / (1 - share) for w in node_watts)
            counter("wattprobe_node_energy_joules_total", dict(base, source="rapl_powercap",
                    domain=d, socket="0"), node, host)
            counter("wattprobe_node_unattributed_energy_joules_total", dict(base, domain=d),
                    tuple(n * share for n in node), host)
    gauge("wattprobe_device_amortized_ratio", {"instance": "rack1-h2", "job": "fleet"}, 1, "rack1-h2")
    gauge("wattprobe_device_age_seconds", {"instance": "rack1-h2", "job": "fleet"}, 5.5 * YEAR,
          "rack1-h2")
    gauge("wattprobe_device_amortized_ratio", {"instance": "rack1-h1", "job": "fleet"}, 0.4,
          "rack1-h1")
    gauge("wattprobe_device_battery_capacity_ratio", {"instance": "rack1-h1", "job": "fleet",
          "battery": "BAT0"}, 0.7, "rack1-h1")
    gauge("wattprobe_device_battery_capacity_ratio", {"instance": "rack1-h3", "job": "fleet",
          "battery": "BAT0"}, 0.95, "rack1-h3")
    gauge("wattprobe_device_storage_wear_ratio", {"instance": "rack1-h2", "job": "fleet",
          "device": "nvme0n1", "model": "SAMSUNG MZ1L2"}, 0.85, "rack1-h2")
    gauge("wattprobe_device_storage_wear_ratio", {"instance": "rack1-h1", "job": "fleet",
          "device": "nvme0n1", "model": "SAMSUNG MZ1L2"}, 0.3, "rack1-h1")
    counter("wattprobe_device_thermal_throttle_events_total", {"instance": "rack1-h3",
            "job": "fleet", "scope": "package", "package": "0"}, (0, 0.001), "rack1-h3")
    counter("wattprobe_device_thermal_throttle_events_total", {"instance": "rack1-h1",
            "job": "fleet", "scope": "package", "package": "0"}, (0.001, 0), "rack1-h1")
    gauge("wattprobe_energy_source_info", {"instance": "rack1-h4", "job": "fleet",
          "source": "rapl_powercap", "domain": "package", "measured": "true", "state": "stalled"},
          0, "rack1-h4")
    budget = {"instance": "rack1-h1", "job": "fleet", "workload": "nginx.service",
              "kind": "service", "window": "30d"}
    gauge("wattprobe_workload_carbon_budget_grams", budget, 1500, "rack1-h1")
    gauge("wattprobe_workload_carbon_budget_consumption_grams", budget, 1234, "rack1-h1")
    for host, h in HOSTS.items():
        for (wl, kind, ns, pod, ctr, *_rest) in h["workloads"]:
            if pod:
                gauge("kube_pod_labels", {"instance": "ksm", "job": "kube-state-metrics",
                      "namespace": ns, "pod": pod, "label_team": TEAMS[ns]}, 1, host)
    # OpenMetrics wants each series' samples together and in time order: group by series.
    series = {}
    for line in lines:
        key, value, t = line.rsplit(" ", 2)
        series.setdefault(key, []).append(line)
    with open(path, "w") as f:
        for key in series:
            f.write("\n".join(series[key]) + "\n")
        f.write("# EOF\n")


def energy_rates(h, watts):
    """The workload's non-overlapping energy rate per month, as the scorecard must choose it."""
    if "host" in h["domains"]:
        return tuple(w * SPLIT["host"] for w in watts)
    if "psys" in h["domains"]:
        return tuple(w * SPLIT["psys"] for w in watts)
    return tuple(w * sum(SPLIT[d] for d in h["domains"]) for w in watts)


def truth(group_of):
    """Every group's figures for (October, November), as the scorecard must report them."""
    spans = {"rack1-h5": ((OCT, NOV), (NOV, H5_STOP))}
    out = {}
    for host, h in HOSTS.items():
        for (wl, kind, ns, pod, ctr, watts, emb, cores, units) in h["workloads"]:
            g = group_of(ns)
            for m, (a, b) in enumerate(spans.get(host, ((OCT, NOV), (NOV, DEC)))):
                secs = b - a
                f = out.setdefault(g, [dict(op=0, emb=0, energy=0, comp=0, meas=0, cpu=0,
                                            units=0) for _ in (0, 1)])[m]
                e = energy_rates(h, watts)[m] * secs
                f["energy"] += e
                f["op"] += e * h["intensity"][m] / 3.6e6
                f["emb"] += emb * secs
                f["cpu"] += cores * secs
                comp_d = ["psys"] if "psys" in h["domains"] else workload_domains(h)
                comp = watts[m] * sum(SPLIT[d] for d in comp_d) * secs
                f["comp"] += comp
                f["meas"] += comp if h["measured"] else 0
                if units:
                    f["units"] += units * (1, 1.5)[m] * secs
    return out


def run_scorecard(*args):
    p = subprocess.run([BIN, "scorecard", *args], capture_output=True, text=True, timeout=300)
    return p


def check_period(actual, expected, what, units_for_all=True):
    near(actual["operational_grams"], expected["op"], 0.01, f"{what} operational grams")
    near(actual["embodied_grams"], expected["emb"], 0.01, f"{what} embodied grams")
    near(actual["grams"], expected["op"] + expected["emb"], 0.01, f"{what} grams")
    near(actual["energy_joules"], expected["energy"], 0.01, f"{what} energy")
    near(actual["cpu_seconds"], expected["cpu"], 0.01, f"{what} CPU seconds")
    near(actual["intensity_g_per_kwh"], expected["op"] / expected["energy"] * 3.6e6, 0.01,
         f"{what} intensity")
    near(actual["measured_share"], expected["meas"] / expected["comp"], 0.01,
         f"{what} measured share")
    grams = expected["op"] + expected["emb"]
    if expected["units"]:
        near(actual["units"]["requests"], expected["units"], 0.01, f"{what} units")
    if expected["units"] and units_for_all:
        near(actual["grams_per_unit"]["requests"], grams / expected["units"], 0.01,
             f"{what} grams per request")
    else:
        near(actual["grams_per_unit"]["cpu_hour"], grams / (expected["cpu"] / 3600), 0.01,
             f"{what} grams per CPU-hour")


def check_change(g, before, after, what):
    c = g["change"]
    terms = c["energy_term_grams"] + c["intensity_term_grams"] + c["embodied_term_grams"]
    assert abs(terms - c["grams"]) < 0.5, f"{what}: terms add to {terms}, change {c['grams']}"
    near(g["current"]["grams"] - g["previous"]["grams"], c["grams"], 1e-9, f"{what} change")
    i_before = before["op"] / before["energy"] if before["energy"] else 0
    want_energy = (after["energy"] - before["energy"]) * i_before
    want_intensity = after["op"] - before["op"] - want_energy
    scale = max(abs(after["op"] + after["emb"]), 1)
    for key, want in (("energy_term_grams", want_energy),
                      ("intensity_term_grams", want_intensity),
                      ("embodied_term_grams", after["emb"] - before["emb"])):
        assert abs(c[key] - want) <= 0.01 * max(abs(want), 0.01 * scale), \
            f"{what} {key}: {c[key]} != {want}"


def add(figures):
    total = [dict(op=0, emb=0, energy=0, comp=0, meas=0, cpu=0, units=0) for _ in (0, 1)]
    for pair in figures.values():
        for m in (0, 1):
            for k in total[m]:
                total[m][k] += pair[m][k]
    return total


def check_scorecard(card, group_of, by):
    want = truth(group_of)
    got = {g["group"]: g for g in card["groups"]}
    assert set(got) == set(want), f"groups by {by}: {sorted(got)} != {sorted(want)}"
    for name, (before, after) in want.items():
        check_period(got[name]["current"], after, f"{by}={name!r} November")
        check_period(got[name]["previous"], before, f"{by}={name!r} October")
        check_change(got[name], before, after, f"{by}={name!r}")
    before, after = add(want)
    # Only some groups count requests: the total's grams per unit of work are per CPU-hour.
    check_period(card["total"]["current"], after, "total November", units_for_all=False)
    check_period(card["total"]["previous"], before, "total October", units_for_all=False)
    check_change(card["total"], before, after, "total")
    # The drivers: the largest changes in grams, in order.
    changes = {n: (a["op"] + a["emb"]) - (b["op"] + b["emb"]) for n, (b, a) in want.items()}
    order = sorted(changes, key=lambda n: -abs(changes[n]))
    assert card["drivers"]["by_grams"] == order[:5], (card["drivers"], order)
    return got


def check_november(card, prom_url):
    got = check_scorecard(card, lambda ns: ns, "namespace")
    print(f"ok: {len(got)} namespaces x 2 months, every figure within 1 % of the truth, "
          "decompositions add up")
    # rack1-h5 stopped on 15 November: reported with its gap, batch's figures lower bounds.
    stopped = card["data_quality"]["stopped_hosts"]
    # October: every host reports to its end (rack1-h5 too), so only November's stop is found.
    assert [(s["host"], s["period"]) for s in stopped] == [("rack1-h5", "current")], stopped
    assert stopped[0]["last_seen"] == "2026-11-15T00:00:00Z", stopped
    near(stopped[0]["gap_seconds"], DEC - H5_STOP, 0.001, "rack1-h5's gap")
    assert got["batch"]["lower_bound"] and "rack1-h5" in got["batch"]["lower_bound_reasons"][0]
    assert not got["shop"]["lower_bound"], got["shop"]
    assert card["total"]["lower_bound"]
    # rack1-h3 was silent for 72 h and came back: said with its length, search marked too.
    silent = card["data_quality"]["silent_hosts"]
    assert [(s["host"], s["period"]) for s in silent] == [("rack1-h3", "current")], silent
    assert abs(silent[0]["silent_seconds"] - (H3_SILENT[1] - H3_SILENT[0])) <= 3600, silent
    said = [re.search(r"rack1-h3 was silent for about (\d+) h", r)
            for r in got["search"]["lower_bound_reasons"]]
    assert got["search"]["lower_bound"] and any(m and abs(int(m[1]) - 72) <= 1 for m in said), \
        got["search"]
    print(f"ok: rack1-h3 reported silent for {silent[0]['silent_seconds'] / 3600:.0f} h of its 72 "
          "h stretch and back; search marked as a lower bound")
    print("ok: rack1-h5 reported stopped at 2026-11-15T00:00:00Z, 16.0 days silent; batch marked "
          "as a lower bound")
    hw = card["hardware"]
    assert [(f["host"], round(f["amortized_ratio"], 3)) for f in hw["past_amortization"]] == \
        [("rack1-h2", 1)], hw
    assert [(f["host"], f["item"]) for f in hw["batteries_under_80_percent"]] == \
        [("rack1-h1", "BAT0")], hw
    near(hw["batteries_under_80_percent"][0]["capacity_ratio"], 0.7, 0.001, "battery")
    assert [(f["host"], f["item"]) for f in hw["nvme_over_80_percent_wear"]] == \
        [("rack1-h2", "nvme0n1")], hw
    assert [f["host"] for f in hw["throttled"]] == ["rack1-h3"], hw
    near(hw["throttled"][0]["throttle_events"], 0.001 * (DEC - NOV), 0.01, "throttle events")
    h2_op = sum(w[5][1] * 1 for w in HOSTS["rack1-h2"]["workloads"])  # watts in November
    h2_op = energy_rates(HOSTS["rack1-h2"], (h2_op, h2_op))[1] * 280 / 3.6e6 * YEAR  # g/year
    kor = hw["keep_or_replace"]
    assert [k["host"] for k in kor] == ["rack1-h2"], kor
    near(kor[0]["keep_grams_a_year"], h2_op, 0.01, "keep grams a year")
    near(kor[0]["replace_grams_a_year"], 300e3 + 0.5 * h2_op, 0.01, "replace grams a year")
    assert kor[0]["answer"] == ("replace" if 300e3 + 0.5 * h2_op < h2_op else "keep"), kor
    q = card["data_quality"]
    assert [(s["host"], s["item"]) for s in q["stalled_sources"]] == \
        [("rack1-h4", "rapl_powercap/package")], q
    assert [u["host"] for u in q["unattributed_over_5_percent"]] == ["rack1-h1"], q
    near(q["unattributed_over_5_percent"][0]["share"], 0.10, 0.01, "rack1-h1 unattributed")
    [b] = card["budgets"]
    nginx = [w for w in HOSTS["rack1-h1"]["workloads"] if w[0] == "nginx.service"][0]
    used = (energy_rates(HOSTS["rack1-h1"], nginx[5])[1] * 350 / 3.6e6 + nginx[6]) * (DEC - NOV)
    assert (b["workload"], b["window"]) == ("nginx.service", "30d"), b
    near(b["allowance_grams"], 1500, 0.001, "budget allowance")
    near(b["used_grams"], used, 0.01, "budget used")
    near(b["use_ratio"], used / 1500, 0.01, "budget use")
    near(b["peak_window_grams"], 1234, 0.001, "budget peak window")
    print("ok: hardware, keep-or-replace, stalled source, unattributed share and budget as "
          "backfilled")
    # Every figure's PromQL reruns to the same number (the auditor's check), e.g. the total.
    energy_q = [r for r in card["queries"] if r["figure"] == "energy_joules/current"][0]
    assert energy_q["time"] == "2026-12-01T00:00:00Z" and not energy_q["partial"], energy_q
    assert "wattprobe_workload_host_energy_joules_total" in energy_q["promql"]
    assert len(card["queries"]) < 45, "queries must not grow with the fleet"


def png_colours(path):
    """Distinct pixel colours of an 8-bit RGB(A) PNG (what Chromium writes), pure Python."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i, idat, width = 8, b"", 0
    while i < len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        i += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    for row in range(height):
        f = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if row % 4 == 0:
            for x in range(0, stride, bpp * 2):
                colours.add(bytes(line[x:x + 3]))
        prev = line
    return colours


def check_html_in_chromium(html_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIPPED (html in chromium): chromium is not installed (Debian package chromium)")
        return False
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
            "--no-first-run", f"--user-data-dir={tempfile.mkdtemp(prefix='scorecard-chromium-')}"]
    url = "file://" + os.path.abspath(html_path)
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for chart in ("chart-groups", "chart-waterfall"):
        assert f'<svg id="{chart}"' in dom.stdout, f"{chart} not in the DOM: {dom.stdout[:500]}"
    assert dom.stdout.count("<rect") >= 10, "the charts have no bars"
    assert "<script" not in dom.stdout
    png = os.path.join(os.path.dirname(html_path), "shot.png")
    shot = subprocess.run(base + [f"--screenshot={png}", "--window-size=1000,1600", url],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and os.path.exists(png), shot.stderr[-2000:]
    colours = png_colours(png)
    assert len(colours) >= 8, f"the screenshot is blank: {len(colours)} colours"
    print(f"ok: Chromium's DOM holds both SVG charts; the screenshot has {len(colours)} colours")
    return True


def check_live(prom, agents):
    """The same code path on two live agents' series: the fallback energy (no host family)."""
    def scraped():
        r = prom.query("count(count_over_time(wattprobe_workload_operational_co2e_grams_total"
                       "[40s]) >= 20)")
        hosts = prom.query("count(count by (instance) (wattprobe_workload_cpu_seconds_total))")
        return r and hosts and float(hosts[0]["value"][1]) == 2 and float(r[0]["value"][1]) > 0
    wait_until(scraped, 120, "40 s of both live agents' series in Prometheus")
    until = int(time.time()) - 2
    since = until - 30
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    p = run_scorecard("--prometheus", prom.url, "--format", "json", "--by", "kind",
                      "--since", time.strftime(fmt, time.gmtime(since)),
                      "--until", time.strftime(fmt, time.gmtime(until)))
    assert p.returncode == 0, p.stderr
    card = json.loads(p.stdout)
    energy = float(prom.query_at(
        'sum(increase(wattprobe_workload_energy_joules_total{domain=~"package|dram|gpu"}[30s]))',
        until)[0]["value"][1])
    op = float(prom.query_at(
        "sum(increase(wattprobe_workload_operational_co2e_grams_total[30s]))", until)[0]["value"][1])
    assert energy > 0
    near_printed(card["total"]["current"]["energy_joules"], energy, 0.01, "live energy")
    near_printed(card["total"]["current"]["operational_grams"], op, 0.01,
                 "live operational grams")
    near(card["total"]["current"]["measured_share"], 1.0, 0.001, "live measured share")
    assert card["data_quality"]["stopped_hosts"] == [], card["data_quality"]
    print(f"ok: two live agents, last 30 s: {energy:.1f} J, {op:.4f} g, as Prometheus sums them")


def main():
    if not shutil.which("promtool"):
        from wattprobe_e2e import skip
        skip("promtool is not installed (Debian package prometheus)")
    work = tempfile.mkdtemp(prefix="wattprobe-scorecard-")
    roots = [tempfile.mkdtemp(prefix="wattprobe-sysfs-") for _ in (0, 1)]

    def backfill(data_dir):
        om = os.path.join(work, "fleet.om")
        write_openmetrics(om)
        os.makedirs(data_dir, exist_ok=True)
        p = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data_dir],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]

    try:
        with start_driver(roots[0], "--scenario", "two_socket_with_dram", "--watts",
                          "package=42,dram=7", "--period-ms", "50"), \
             start_driver(roots[1], "--scenario", "two_socket_with_dram", "--watts",
                          "package=30,dram=5", "--period-ms", "50"), \
             start_agent("--sysfs-root", roots[0], "--sources", "rapl_powercap", "--interval",
                         "500ms", "--accounting", "procfs") as a1, \
             start_agent("--sysfs-root", roots[1], "--sources", "rapl_powercap", "--interval",
                         "500ms", "--accounting", "procfs") as a2:
            targets = [a.url.split("//")[1].split("/")[0] for a in (a1, a2)]
            with PrometheusServer(targets, scrape_interval="1s", before_start=backfill,
                                  extra_args=["--storage.tsdb.retention.time=10y",
                                              # 733 small blocks stay as they are: compacting
                                              # them would only load the machine.
                                              "--storage.tsdb.max-block-duration=2h"]) as prom:
                prom.query_at = lambda q, t: query_at(prom, q, t)
                out = os.path.join(work, "out")
                p = run_scorecard("--prometheus", prom.url, "--month", "2026-11", "--out", out,
                                  "--replacement-embodied-kg", "300",
                                  "--replacement-power-ratio", "0.5")
                assert p.returncode == 0, p.stderr
                names = sorted(os.listdir(out))
                assert names == ["scorecard-2026-11.html", "scorecard-2026-11.json",
                                 "scorecard-2026-11.md"], names
                card = json.load(open(os.path.join(out, "scorecard-2026-11.json")))
                check_november(card, prom.url)
                md = open(os.path.join(out, "scorecard-2026-11.md")).read()
                assert "rack1-h5 stopped reporting at 2026-11-15T00:00:00Z" in md, md
                assert re.search(r"rack1-h3: silent 7[123] h", md), md
                assert "≥ " in md
                # Grouped by a team label joined from kube_pod_labels.
                p = run_scorecard("--prometheus", prom.url, "--month", "2026-11",
                                  "--join-pod-labels", "team", "--format", "json")
                assert p.returncode == 0, p.stderr
                check_scorecard(json.loads(p.stdout), lambda ns: TEAMS.get(ns, ""), "team")
                print("ok: --join-pod-labels team groups by kube_pod_labels' label_team")
                # Standard output in the default format.
                p = run_scorecard("--prometheus", prom.url, "--month", "2026-11")
                assert p.returncode == 0 and p.stdout.startswith("# Carbon scorecard 2026-11"), \
                    p.stdout[:200] + p.stderr
                # A month with no data: exit 1 naming the family and the query.
                p = run_scorecard("--prometheus", prom.url, "--month", "2026-06")
                assert p.returncode == 1 and "wattprobe_workload_operational_co2e_grams_total" \
                    in p.stderr and "query:" in p.stderr, p.stderr
                # A query the server refuses (a bad label for --by is a usage error first).
                p = run_scorecard("--prometheus", prom.url + "/nothing-here", "--month", "2026-11")
                assert p.returncode == 1 and "HTTP 404" in p.stderr and "query:" in p.stderr, \
                    p.stderr
                p = run_scorecard("--prometheus", prom.url, "--by", "a-b")
                assert p.returncode == 2 and "--by" in p.stderr, p.stderr
                print("ok: no data, HTTP 404: exit 1 with the reason and the query; bad --by: 2")
                check_live(prom, (a1, a2))
                if os.environ.get("WATTPROBE_UPDATE_SAMPLE"):
                    sample = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                                          "scorecard-sample")
                    shutil.rmtree(sample, ignore_errors=True)
                    shutil.copytree(out, sample)
                    print(f"wrote {os.path.abspath(sample)}")
                chromium = check_html_in_chromium(os.path.join(out, "scorecard-2026-11.html"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for r in roots:
            shutil.rmtree(r, ignore_errors=True)
    print("1 passed, 0 failed" + ("" if chromium else " (the Chromium check skipped)"))


def query_at(prom, promql, t):
    import urllib.parse
    from wattprobe_e2e import fetch
    q = urllib.parse.urlencode({"query": promql, "time": str(t)})
    body = json.loads(fetch(f"{prom.url}/api/v1/query?{q}"))
    assert body.get("status") == "success", body
    return body["data"]["result"]


if __name__ == "__main__":
    main()
