"""Live grid intensity through the real binary (issue 12, section 1): every provider starts with
`run` (the refresh thread starts after the privilege drop), the exported intensity is the API's,
the grams of each tick follow a change of intensity, an outage keeps the last good value with its
age and then falls back to the static default after --grid-max-age, a 401 is counted and logged
without the key, and the key never shows in the log, /metrics, doctor or /proc/PID/cmdline.

The APIs are tests/support/fake_grid_api.py on 127.0.0.1, which answers with the providers'
documented payloads (Electricity Maps v3, WattTime v3, the GB Carbon Intensity API)."""

import os
import subprocess
import tempfile
import time
import urllib.request

from wattprobe_e2e import (USER_ARGS, BIN, Process, fetch, near, parse_metrics, scaled, scrape,
                           series, start_agent, value, wait_ticks)

FAKE_API = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "fake_grid_api.py")
EM_TOKEN = "em-test-token-SECRET"
WT_USER = "wt-user"
WT_PASSWORD = "wt-password-SECRET"
WT_JWT = "wt-jwt-SECRET"
PUE = 1.2
STATIC = 475.0
# Short enough that the test sees each state in seconds; the defaults are 15m and 24h.
COMMON = ["--sources", "model", "--interval", "200ms", "--pue", str(PUE),
          "--grid-intensity", str(STATIC), "--grid-refresh", "1s", "--grid-max-age", "4s"]


class FakeApi:
    def __init__(self):
        self.proc = subprocess.Popen(["python3", FAKE_API], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def control(self, what):
        urllib.request.urlopen(f"{self.url}/__{what}", timeout=scaled(5)).read()

    def close(self):
        self.proc.kill()
        self.proc.wait()


def intensity(m):
    # Before the first tick (a loaded host) the family is not there yet: no value, no signal.
    got = series(m, "wattprobe_grid_carbon_intensity_grams_per_kwh")
    return got[0] if got else ({"signal": None}, float("nan"))


def wait_for(agent, what, check, timeout=15):
    timeout = scaled(timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = scrape(agent.url)
        if check(m):
            return m
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout:.0f}s; last /metrics grid lines: "
                         f"{[s for s in scrape(agent.url) if 'grid' in s[0]]}\n{agent.stderr()}")


def wait_intensity(agent, grams, signal, timeout=15):
    def ok(m):
        labels, v = intensity(m)
        return abs(v - grams) < 1e-3 and labels["signal"] == signal
    return wait_for(agent, f"intensity {grams} g/kWh ({signal})", ok, timeout)


def operational_grams(m):
    total = sum(v for _, v in series(m, "wattprobe_workload_operational_co2e_grams_total"))
    total += value(m, "wattprobe_node_idle_operational_co2e_grams_total")
    total += value(m, "wattprobe_node_unattributed_operational_co2e_grams_total")
    return total


def node_joules(m):
    # The model source has one domain, package: nothing overlaps, so the sum is the host's energy.
    return sum(v for _, v in series(m, "wattprobe_node_energy_joules_total"))


def grams_follow(agent, grams, what):
    """Over ticks that all ran at one intensity, grams / joules is that intensity times PUE."""
    m0 = scrape(agent.url)
    wait_ticks(agent, 3)
    m1 = scrape(agent.url)
    exported = intensity(m1)[1]
    # WattTime's pounds per MWh come back as grams per kWh with a rounding of the last digits.
    assert intensity(m0)[1] == exported and abs(exported - grams) < 1e-3, (intensity(m0), intensity(m1))
    joules = node_joules(m1) - node_joules(m0)
    assert joules > 0, "no energy between two scrapes three ticks apart"
    g_per_kwh = (operational_grams(m1) - operational_grams(m0)) / joules * 3.6e6
    near(g_per_kwh, exported * PUE, 1e-6, f"{what}: grams per kWh of the ticks at {grams} g/kWh x PUE")


def errors(m, reason):
    return sum(v for l, v in series(m, "wattprobe_agent_grid_fetch_errors_total", reason=reason))


def assert_secret_nowhere(agent, secrets, doctor_args, env=None):
    text = fetch(agent.url)
    with open(f"/proc/{agent.proc.pid}/cmdline", "rb") as f:
        cmdline = f.read().decode(errors="replace")
    doctor = subprocess.run([BIN, "doctor", *doctor_args], capture_output=True, text=True,
                            timeout=scaled(60), env=env)
    places = {"stderr": agent.stderr(), "stdout": agent.stdout(), "/metrics": text,
              "/proc/PID/cmdline": cmdline, "doctor": doctor.stdout + doctor.stderr}
    for secret in secrets:
        for where, content in places.items():
            assert secret not in content, f"the key {secret!r} shows in {where}"
    print(f"ok: no key in {', '.join(places)}")
    return doctor.stdout


def electricitymaps(api, tmp):
    token = os.path.join(tmp, "em.token")
    with open(token, "w") as f:
        f.write(EM_TOKEN + "\n")
    os.chmod(token, 0o600)
    grid = ["--grid-provider", "electricitymaps", "--grid-zone", "DE", "--grid-url", api.url,
            "--grid-token-file", token]
    api.control("value/300")
    with start_agent(*COMMON, *grid) as agent:
        m = wait_intensity(agent, 300, "average")
        labels, _ = intensity(m)
        assert labels["provider"] == "electricitymaps" and labels["zone"] == "DE", labels
        grams_follow(agent, 300, "electricitymaps")
        api.control("value/420")
        wait_intensity(agent, 420, "average")
        grams_follow(agent, 420, "electricitymaps after a change mid-run")

        # Outage: the last good value stays in force, with its age, until the max age.
        api.control("mode/http500")
        m = wait_for(agent, "a counted server error", lambda m: errors(m, "server_error") >= 1)
        assert intensity(m)[1] == 420 and intensity(m)[0]["signal"] == "average", intensity(m)
        age = value(m, "wattprobe_grid_carbon_intensity_age_seconds")
        assert 0.5 < age <= 4.5, f"age during the outage: {age}"
        print(f"ok: outage keeps 420 g/kWh, age {age:.2f} s")
        m = wait_intensity(agent, STATIC, "fallback", timeout=10)
        age = value(m, "wattprobe_grid_carbon_intensity_age_seconds")
        assert age > 4, f"the age must keep growing through the fallback: {age}"
        print(f"ok: past --grid-max-age 4s: static {STATIC} g/kWh, signal fallback, age {age:.2f} s")
        grams_follow(agent, STATIC, "electricitymaps on the static fallback")

        # A refused key: counted under its reason and named in the log, without the key.
        api.control("mode/http401")
        wait_for(agent, "a counted 401", lambda m: errors(m, "unauthorized") >= 1)
        log = agent.stderr()
        assert "HTTP 401" in log and "reason unauthorized" in log, log
        assert "reason server_error" in log and "max age" in log, log
        print("ok: the 401 is counted (reason unauthorized) and logged")

        api.control("mode/ok")
        wait_intensity(agent, 420, "average", timeout=20)
        assert "answering again" in agent.stderr(), agent.stderr()
        print("ok: back to the API's 420 g/kWh after the outage, logged")

        doctor = assert_secret_nowhere(agent, [EM_TOKEN], [*COMMON, *grid])
        assert "grid provider: electricitymaps (zone DE)" in doctor, doctor
        assert "intensity in force: 420 g/kWh" in doctor, doctor
        assert agent.stop() == 0, agent.stderr()


def watttime(api, tmp):
    # The password from the environment, the other way to hand over a key.
    env = dict(os.environ, WATTPROBE_GRID_TOKEN=WT_PASSWORD)
    grid = ["--grid-provider", "watttime", "--grid-zone", "CAISO_NORTH", "--grid-url", api.url,
            "--grid-username", WT_USER]
    api.control("mode/ok")
    api.control("value/250")
    state = tempfile.mkdtemp(prefix="wattprobe-state-", dir=tmp)
    args = [BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state, *COMMON, *grid,
            *USER_ARGS]
    with Process(args, env=env) as agent:
        agent.url = agent.wait_for(r"serving metrics at (http://\S+/metrics)").group(1)
        agent.interval = 0.2
        m = wait_intensity(agent, 250, "marginal")
        assert intensity(m)[0]["zone"] == "CAISO_NORTH", intensity(m)
        grams_follow(agent, 250, "watttime")
        api.control("value/180")
        wait_intensity(agent, 180, "marginal")
        grams_follow(agent, 180, "watttime after a change mid-run")
        api.control("mode/http401")
        wait_for(agent, "a counted 401", lambda m: errors(m, "unauthorized") >= 1)
        assert "HTTP 401" in agent.stderr(), agent.stderr()
        api.control("mode/ok")
        assert_secret_nowhere(agent, [WT_PASSWORD, WT_JWT], [*COMMON, *grid], env=env)
        assert agent.stop() == 0, agent.stderr()


def carbonintensity_uk(api, tmp):
    grid = ["--grid-provider", "carbonintensity-uk", "--grid-url", api.url]
    api.control("mode/ok")
    api.control("value/140")
    with start_agent(*COMMON, *grid) as agent:
        wait_intensity(agent, 140, "average")
        grams_follow(agent, 140, "carbonintensity-uk")
        api.control("value/95")
        wait_intensity(agent, 95, "average")
        grams_follow(agent, 95, "carbonintensity-uk after a change mid-run")
        assert agent.stop() == 0, agent.stderr()


def schedule_file(tmp):
    path = os.path.join(tmp, "grid.csv")
    hour = int(time.time()) // 3600 * 3600

    def write(rows):
        # Written whole and renamed, as an operator's tool would; the agent must see the edit.
        with open(path + ".new", "w") as f:
            f.write("time,grams_per_kwh\n")
            for t, g in rows:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))},{g}\n")
        os.replace(path + ".new", path)

    write([(hour - 3600, 210), (hour + 3600, 999)])
    with start_agent(*COMMON, "--grid-provider", "file", "--grid-file", path,
                     "--grid-zone", "site-a") as agent:
        m = wait_intensity(agent, 210, "average")
        assert intensity(m)[0]["provider"] == "file", intensity(m)
        grams_follow(agent, 210, "file")
        write([(hour - 3600, 210), (int(time.time()) - 60, 330), (hour + 3600, 999)])
        wait_intensity(agent, 330, "average")
        grams_follow(agent, 330, "file after the schedule changed")
        assert agent.stop() == 0, agent.stderr()


def main():
    tmp = tempfile.mkdtemp(prefix="wattprobe-grid-")
    api = FakeApi()
    try:
        electricitymaps(api, tmp)
        watttime(api, tmp)
        carbonintensity_uk(api, tmp)
        schedule_file(tmp)
    finally:
        api.close()
    print("ok: every live grid provider runs through the binary")


if __name__ == "__main__":
    main()
