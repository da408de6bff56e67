"""The carbon-aware answers through the real binary (issue 28): the Carbon Aware SDK-shaped API at
/emissions/, the best-window gauges and `wattprobe when` (with --url, and asking the provider
directly), on forecasts whose best windows this test computes by brute force: every window that
starts at a point, its value the time-weighted mean of the points it covers (each holding until
the next, the last for the spacing before it), the lowest mean and the earliest on a tie. Then
the refusals: an unknown zone (404), bad parameters (400), a stale forecast and none at all
(503), and `when --exec` running the command at the computed time, or at once when no forecast
is usable, or not at all when stopped while waiting.

Forecasts: the file provider's schedule, and the Electricity Maps and GB APIs served by
tests/support/fake_grid_api.py on 127.0.0.1."""

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from wattprobe_e2e import BIN, Process, scrape, series, start_agent, wait_until

FAKE_API = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "fake_grid_api.py")
EM_TOKEN = "em-test-token-SECRET"
AGENT = ["--sources", "model", "--interval", "200ms"]
MIN = 60_000


def iso(ms):
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
    return s + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def parse_iso(text):
    assert text.endswith("Z"), text
    base, _, frac = text[:-1].partition(".")
    secs = int(time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))) - time.timezone
    return secs * 1000 + (int(frac.ljust(3, "0")) if frac else 0)


def brute_windows(points, start_ms, to_ms, window_ms):
    """[(start_ms, mean)] of every window of the step function `points` ([(t_ms, v)], the last
    holding for the spacing before it) cut to [start_ms, to_ms]."""
    end = points[-1][0] + (points[-1][0] - points[-2][0])
    cend = min(end, to_ms)
    clipped = []
    for i, (t, v) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else end
        if nxt <= start_ms:
            continue
        if t >= cend:
            break
        clipped.append((max(t, start_ms), v))
    out = []
    for i, (t, _) in enumerate(clipped):
        e = t + window_ms
        if e > cend:
            break
        total = 0.0
        for j in range(i, len(clipped)):
            tj, vj = clipped[j]
            if tj >= e:
                break
            until = min(clipped[j + 1][0] if j + 1 < len(clipped) else cend, e)
            total += vj * float(until - tj)
        out.append((t, total / float(window_ms)))
    return out


def brute_best(windows):
    best = None
    for w in windows:
        if best is None or w[1] < best[1]:  # strictly lower: the earliest wins a tie
            best = w
    return best


def api(base, path, **query):
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def when(*args, timeout=60):
    p = subprocess.run([BIN, "when", *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def check_forecast_answer(answer, points, start_ms, to_ms, window_min, zone, what):
    expected = brute_windows(points, start_ms, to_ms, window_min * MIN)
    assert len(answer) == 1, answer
    a = answer[0]
    assert a["location"] == zone and a["windowSize"] == window_min, a
    got = [(parse_iso(p["timestamp"]), p["value"]) for p in a["forecastData"]]
    assert got == expected, f"{what}: forecastData {got} != brute force {expected}"
    assert all(p["duration"] == window_min and p["location"] == zone for p in a["forecastData"])
    best = brute_best(expected)
    opt = a["optimalDataPoints"]
    assert len(opt) == 1 and (parse_iso(opt[0]["timestamp"]), opt[0]["value"]) == best, \
        f"{what}: optimal {opt} != brute force {best}"
    return best


def check_when_json(out, points, duration_min, within_min, what):
    j = json.loads(out)
    now = parse_iso(j["now"])
    windows = brute_windows(points, now, now + within_min * MIN, duration_min * MIN)
    best = brute_best(windows)
    assert (parse_iso(j["start"]), j["gramsPerKwh"]) == best, f"{what}: when said {j}, brute force {best}"
    at_now = [v for t, v in windows if t == now]
    if at_now:
        assert j["nowGramsPerKwh"] == at_now[0] and j["savingGramsPerKwh"] == at_now[0] - best[1], j
    return j


def file_provider_answers(tmp):
    # Whole minutes from the one in force; ties (150, 150 and 90, 90) test the earliest rule.
    values = [420, 310, 150, 150, 390, 120, 480, 260, 90, 90, 350, 200]
    minute = int(time.time()) // 60 * 60 * 1000
    if time.time() % 60 > 50:  # keep the point in force the same through the first checks
        time.sleep(61 - time.time() % 60)
        minute += MIN
    points = [(minute - MIN + i * MIN, float(v)) for i, v in enumerate(values)]
    path = os.path.join(tmp, "schedule.csv")
    with open(path, "w") as f:
        f.write("time,grams_per_kwh\n")
        for t, v in points:
            f.write(f"{t // 1000},{v:g}\n")
    grid = ["--grid-provider", "file", "--grid-file", path, "--grid-zone", "ZT"]
    with start_agent(*AGENT, *grid, "--best-window", "1m,3m", "--grid-max-age", "1h") as agent:
        base = agent.url[: -len("/metrics")]
        wait_until(lambda: api(base, "/emissions/forecasts/current")[0] == 200, 30, "a forecast")
        horizon = len(values)
        for w in range(1, horizon + 1):
            status, body = api(base, "/emissions/forecasts/current", location="ZT", windowSize=w,
                               dataStartAt=iso(points[0][0]))
            assert status == 200, (w, body)
            check_forecast_answer(body, points, points[0][0], 1 << 62, w, "ZT", f"file, {w} min")
        # Longer than the forecast: a 400 naming the window, never a made-up answer.
        status, body = api(base, "/emissions/forecasts/current", windowSize=horizon + 1,
                           dataStartAt=iso(points[0][0]))
        assert status == 400 and "windowSize" in body["errors"], body
        # From now (the default start), cut at dataEndAt.
        end = points[9][0]
        status, body = api(base, "/emissions/forecasts/current", windowSize=2, dataEndAt=iso(end))
        assert status == 200, body
        start = parse_iso(body[0]["dataStartAt"])
        assert abs(start - time.time() * 1000) < 10_000, body[0]["dataStartAt"]
        check_forecast_answer(body, points, start, end, 2, "ZT", "file from now")
        print(f"ok: file provider: API equals brute force for windows of 1 to {horizon} points")

        for w, within in ((1, 10), (2, 10), (3, 9), (5, 10), (8, 9)):
            rc, out, err = when("--duration", f"{w}m", "--within", f"{within}m", "--url", agent.url,
                                "--format", "json")
            assert rc == 0, (rc, out, err)
            check_when_json(out, points, w, within, f"when --url {w}m within {within}m")
        rc, out, err = when("--duration", "2m", "--within", "10m", "--url", base + "/")
        assert rc == 0 and "best start: " in out and "g/kWh" in out and "saving vs now" in out, out
        rc, out, err = when("--duration", "3m", "--within", "10m", *grid, "--format", "json")
        assert rc == 0 and "asking grid provider file directly" in err, (rc, out, err)
        assert json.loads(out)["source"] == "provider"
        check_when_json(out, points, 3, 10, "when without --url")
        print("ok: file provider: `when` (with --url and without) equals brute force")

        # Refusals, in the SDK's shapes.
        status, body = api(base, "/emissions/forecasts/current", location="DE")
        assert status == 404 and '"ZT"' in body["detail"], body
        status, body = api(base, "/emissions/bylocation", location="DE")
        assert status == 404 and "ZT" in body["detail"], body
        for query, name in (({"windowSize": "0"}, "windowSize"), ({"windowSize": "abc"}, "windowSize"),
                            ({"windowSize": "99999"}, "windowSize"),
                            ({"dataStartAt": "2026-13-01T00:00:00Z"}, "dataStartAt"),
                            ({"dataStartAt": iso(points[3][0]), "dataEndAt": iso(points[2][0])}, "dataEndAt"),
                            ({"dataStartAt": "2020-01-01T00:00:00Z", "dataEndAt": "2020-01-02T00:00:00Z"},
                             "dataStartAt")):
            status, body = api(base, "/emissions/forecasts/current", **query)
            assert status == 400 and name in body.get("errors", {}), (query, status, body)
            assert body["status"] == 400 and body["title"], body
        status, body = api(base, "/emissions/average-carbon-intensity", location="ZT")
        assert status == 400 and "startTime" in body["errors"], body
        print("ok: unknown zone 404 naming ZT, bad parameters 400 in the SDK's error shape")

        # The gauges: the 1-minute best is the first 90 (a future point, so independent of now).
        m = wait_until(lambda: (lambda s: s if series(s, "wattprobe_grid_best_window_grams_per_kwh",
                                                      window="3m") else None)(scrape(agent.url)),
                       30, "best-window gauges")
        start_1m = series(m, "wattprobe_grid_best_window_start_timestamp_seconds", zone="ZT", window="1m")
        value_1m = series(m, "wattprobe_grid_best_window_grams_per_kwh", zone="ZT", window="1m")
        assert start_1m[0][1] * 1000 == points[8][0] and value_1m[0][1] == 90, (start_1m, value_1m)
        start_3m = series(m, "wattprobe_grid_best_window_start_timestamp_seconds", window="3m")[0][1] * 1000
        value_3m = series(m, "wattprobe_grid_best_window_grams_per_kwh", window="3m")[0][1]
        future = brute_windows(points, points[0][0], 1 << 62, 3 * MIN)
        assert (start_3m, value_3m) in future or start_3m <= time.time() * 1000, (start_3m, value_3m)
        print(f"ok: best-window gauges: 1m at {iso(points[8][0])} 90 g/kWh, 3m {value_3m:g} g/kWh")

        # History: what the agent used, and its mean.
        # A tick covers time only from the second one on: wait for the agent, not the clock.
        status, hist = wait_until(
            lambda: (lambda r: r if r[0] == 200 and r[1] else None)(
                api(base, "/emissions/bylocation", location="ZT")),
            30, "the intensities the agent used, in its history")
        assert all(h["location"] == "ZT" and h["rating"] in values for h in hist), hist
        status, avg = api(base, "/emissions/average-carbon-intensity", location="ZT",
                          startTime=iso(points[0][0]), endTime=iso(int(time.time() * 1000) + 1000))
        assert status == 200 and min(values) <= avg["carbonIntensity"] <= max(values), avg
        status, body = api(base, "/emissions/average-carbon-intensity", location="ZT",
                           startTime="2020-01-01T00:00:00Z", endTime="2020-01-02T00:00:00Z")
        assert status == 404 and "no intensity recorded" in body["detail"], body
        print(f"ok: bylocation {len(hist)} spans, average {avg['carbonIntensity']:g} g/kWh")


def unusable_forecasts(tmp):
    path = os.path.join(tmp, "stale.csv")
    now = int(time.time())

    def write(rows):
        with open(path + ".new", "w") as f:
            f.write("".join(f"{t},{v}\n" for t, v in rows))
        os.replace(path + ".new", path)

    write([(now - 600, 100), (now - 300, 200)])
    grid = ["--grid-provider", "file", "--grid-file", path, "--grid-zone", "ZS"]
    with start_agent(*AGENT, *grid, "--grid-refresh", "1s", "--grid-max-age", "60s") as agent:
        base = agent.url[: -len("/metrics")]

        def answer(reason):
            s, b = api(base, "/emissions/forecasts/current", windowSize=1)
            return b if s == 503 and reason in b.get("detail", "") else None

        body = wait_until(lambda: answer("no point after now"), 30, "503: no point after now")
        print(f"ok: 503 {body['detail']}")
        write([(now - 600, 100), (now + 600, 200), (now + 1200, 300)])
        body = wait_until(lambda: answer("grid-max-age"), 30, "503: point in force too old")
        print(f"ok: 503 {body['detail']}")
        rc, out, err = when("--duration", "1m", "--within", "1h", "--url", agent.url)
        assert rc == 1 and "grid-max-age" in err and out == "", (rc, out, err)
        flag = os.path.join(tmp, "ran-at-once")
        rc, out, err = when("--duration", "1m", "--within", "1h", "--url", agent.url, "--exec", "--",
                            "sh", "-c", f"touch {flag}; exit 7")
        assert rc == 7 and os.path.exists(flag) and "running the command now" in err, (rc, err)
        print("ok: when: exit 1 with the reason; with --exec the command runs at once, its code 7")
    with start_agent(*AGENT) as agent:
        base = agent.url[: -len("/metrics")]
        status, body = api(base, "/emissions/forecasts/current")
        assert status == 503 and "static publishes no forecast" in body["detail"], body
        print(f"ok: static provider: 503 {body['detail']}")
    rc, out, err = when("--duration", "1m", "--within", "1h", *grid, "--grid-max-age", "60s")
    assert rc == 1 and "grid-max-age" in err, (rc, err)
    for bad in (["--duration", "1m"], ["--duration", "90s", "--within", "1h"],
                ["--duration", "2h", "--within", "1h"], ["--duration", "1m", "--within", "1h", "--exec"],
                ["--duration", "1m", "--within", "1h", "--format", "xml"]):
        rc, out, err = when(*bad)
        assert rc == 2 and "wattprobe when:" in err, (bad, rc, err)
    print("ok: usage errors exit 2")


def electricitymaps_answers(tmp):
    api_proc = subprocess.Popen(["python3", FAKE_API], stdout=subprocess.PIPE, text=True)
    try:
        port = int(api_proc.stdout.readline())
        fake = f"http://127.0.0.1:{port}"
        values = [500, 300, 100, 400, 200, 600, 100, 250]
        urllib.request.urlopen(f"{fake}/__forecast/{','.join(map(str, values))}", timeout=5).read()
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write(EM_TOKEN + "\n")
        os.chmod(token, 0o644)
        grid = ["--grid-provider", "electricitymaps", "--grid-zone", "DE", "--grid-url", fake,
                "--grid-token-file", token]
        if time.time() % 3600 > 3500:  # the fake's forecast starts at the current hour
            time.sleep(3610 - time.time() % 3600)
        hour = int(time.time()) // 3600 * 3600 * 1000
        points = [(hour + i * 60 * MIN, float(v)) for i, v in enumerate(values)]
        with start_agent(*AGENT, *grid, "--grid-refresh", "1s", "--grid-max-age", "5s") as agent:
            base = agent.url[: -len("/metrics")]
            wait_until(lambda: api(base, "/emissions/forecasts/current")[0] == 200, 30, "a forecast")
            for w in (30, 60, 90, 120, 150, 180, 240, 300, 360, 420, 480):
                status, body = api(base, "/emissions/forecasts/current", location="de", windowSize=w,
                                   dataStartAt=iso(hour))
                assert status == 200, (w, body)
                check_forecast_answer(body, points, hour, 1 << 62, w, "DE", f"electricitymaps {w} min")
            for w, within in ((60, 8 * 60), (120, 6 * 60), (180, 7 * 60)):
                rc, out, err = when("--duration", f"{w}m", "--within", f"{within}m", "--url", agent.url,
                                    "--format", "json")
                assert rc == 0, (rc, out, err)
                check_when_json(out, points, w, within, f"when --url electricitymaps {w}m")
            rc, out, err = when("--duration", "2h", "--within", "7h", *grid, "--format", "json")
            assert rc == 0 and "directly" in err, (rc, out, err)
            check_when_json(out, points, 120, 7 * 60, "when electricitymaps without --url")
            print("ok: electricitymaps: API and `when` equal brute force for 30 min to 8 h windows")
            status, body = api(base, "/emissions/forecasts/current", location="FR")
            assert status == 404 and '"DE"' in body["detail"], body
            # The API goes away: past --grid-max-age the forecast is stale, a 503, never zeros.
            urllib.request.urlopen(f"{fake}/__mode/http500", timeout=5).read()

            def stale():
                s, b = api(base, "/emissions/forecasts/current")
                return b if s == 503 and "grid-max-age" in b["detail"] else None

            body = wait_until(stale, 30, "503 for a stale forecast")
            print(f"ok: stale: 503 {body['detail']}")
    finally:
        api_proc.kill()
        api_proc.wait()


def exec_at_the_computed_time(tmp):
    now = int(time.time())
    # The next point, 6 s ahead, starts the cleanest minute.
    rows = [(now - 30, 400), (now + 6, 100), (now + 66, 500), (now + 126, 450)]
    path = os.path.join(tmp, "exec.csv")
    with open(path, "w") as f:
        f.write("".join(f"{t},{v}\n" for t, v in rows))
    grid = ["--grid-provider", "file", "--grid-file", path]
    stamp = os.path.join(tmp, "ran-at")
    rc, out, err = when("--duration", "1m", "--within", "3m", *grid, "--format", "json", "--exec", "--",
                        "sh", "-c", f"date +%s.%N > {stamp}; exit 5")
    assert rc == 5, (rc, out, err)
    j = check_when_json(out, [(t * 1000, float(v)) for t, v in rows], 1, 3, "when --exec")
    start = parse_iso(j["start"]) / 1000
    assert start == now + 6, j
    with open(stamp) as f:
        ran = float(f.read())
    assert start <= ran < start + 5, f"ran at {ran}, best start {start}"
    print(f"ok: --exec ran the command {ran - start:.2f} s after the computed start; exit 5 passed on")

    now = int(time.time())
    with open(path, "w") as f:
        f.write(f"{now - 30},400\n{now + 40},100\n{now + 100},500\n")
    flag = os.path.join(tmp, "never")
    p = Process([BIN, "when", "--duration", "1m", "--within", "3m", *grid, "--exec", "--", "touch", flag])
    with p:
        wait_until(lambda: "waiting until" in p.stderr(), 30, "when waiting")
        p.proc.send_signal(signal.SIGTERM)
        rc = p.proc.wait(10)
    assert rc == 143 and not os.path.exists(flag), (rc, p.stderr())
    print("ok: SIGTERM while waiting: exit 143, the command not run")


def behind_basic_auth(tmp):
    """The API sits behind the web config's basic auth, as /metrics does."""
    if not shutil.which("htpasswd"):
        print("not checked: basic auth on /emissions/ needs htpasswd (apache2-utils)")
        return
    password = "carbon aware SECRET"
    hashed = subprocess.run(["htpasswd", "-nbB", "-C", "5", "u", password], check=True,
                            capture_output=True, text=True).stdout.strip().split(":", 1)[1]
    config = os.path.join(tmp, "web.yml")
    with open(config, "w") as f:
        f.write(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    os.chmod(config, 0o644)
    with start_agent(*AGENT, "--web-config-file", config) as agent:
        url = agent.url[: -len("/metrics")] + "/emissions/forecasts/current"
        try:
            urllib.request.urlopen(url, timeout=10)
            raise AssertionError("/emissions/ answered without a password")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code
        req = urllib.request.Request(url, headers={
            "Authorization": "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()})
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as e:
            assert e.code == 503, e.code  # the static provider: past the auth, no forecast
        print("ok: /emissions/ is behind the web config's basic auth: 401, then 503 (static)")


def main():
    tmp = tempfile.mkdtemp(prefix="wattprobe-carbonaware-")
    behind_basic_auth(tmp)
    file_provider_answers(tmp)
    unusable_forecasts(tmp)
    electricitymaps_answers(tmp)
    exec_at_the_computed_time(tmp)


if __name__ == "__main__":
    main()
