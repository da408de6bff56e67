"""The redfish source end to end (issue 26): the real binary against a BMC in the shape of DMTF's
mockup, served over HTTPS with a CA of its own (tests/e2e/fake_bmc.py), whose power changes every
3 s through a known profile.
- accuracy: over a burst of changing power, the platform energy equals the BMC's true energy within
  0.5 % for the energy counter layout (1U, counter stepping every 2 s, sessions expiring every 7
  requests) and within 2 % for a power layout (Chassis/1, supplies' input, basic auth);
- layouts System.Embedded.1 (Power only) and Self (OpenBMC sensors) are read from the right place;
- several chassis: exit 2 naming them; --redfish-chassis picks one;
- faults: a 503, a malformed answer, a huge one, a BMC that hangs: stalled after 3 polls (the info
  series says why) while ticks go on, and back when it answers; a 401 with a refused login, then
  a good one; logout at stop; the password never in the command line, the log or /metrics."""

import os
import shutil
import sys
import tempfile
import time

from fake_bmc import PASSWORD, USER, FakeBmc, Profile
from wattprobe_e2e import (BIN, Process, fetch, parse_metrics, series, skip, start_agent, value,
                           with_user)

SLOW = float(os.environ.get("WATTPROBE_E2E_SLOW", "1"))  # deadlines scale with this


def wait(predicate, timeout, what):
    deadline = time.time() + timeout * SLOW
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def metrics(agent):
    return parse_metrics(fetch(agent.url))


def ticks(m):
    return value(m, "wattprobe_agent_tick_duration_seconds_count")


def at_tick_edge(agent):
    """The metrics of a tick just published and the time it was: scrapes until the tick counter
    moves, so the agent's totals are compared with the BMC's truth at the same moment."""
    first = ticks(metrics(agent))
    while True:
        m = metrics(agent)
        if ticks(m) != first:
            return m, time.time()
        time.sleep(0.01)


def platform(m):
    """The platform total; 0 before the BMC's first reading."""
    found = series(m, "wattprobe_node_energy_joules_total", source="redfish", domain="platform")
    assert len(found) <= 1, found
    return found[0][1] if found else 0.0


def info(m):
    found = series(m, "wattprobe_redfish_info")
    return found[0][0] if len(found) == 1 else None


def start(bmc, folder, *extra):
    return start_agent("--sources", "redfish", "--interval", "1s", "--redfish-url", bmc.url,
                       "--redfish-user-file", os.path.join(folder, "user"),
                       "--redfish-password-file", os.path.join(folder, "password"),
                       "--redfish-ca-file", bmc.ca, "--redfish-interval", "1s",
                       "--redfish-timeout", "1s", *extra)


def no_secret(agent):
    with open(f"/proc/{agent.proc.pid}/cmdline", "rb") as f:
        assert PASSWORD.encode() not in f.read(), "the password is in the command line"
    assert PASSWORD not in agent.stderr(), "the password is in the log"
    assert PASSWORD not in fetch(agent.url), "the password is in /metrics"


def accuracy(folder):
    profile = Profile()
    counter = FakeBmc("1U", os.path.join(folder, "a"), sessions=True, refresh=2.0, profile=profile)
    power = FakeBmc("1", os.path.join(folder, "b"), sessions=False, profile=profile)
    try:
        with start(counter, folder) as ac, start(power, folder) as ap:
            for agent, kind in ((ac, "energy_counter"), (ap, "supply_input")):
                i = wait(lambda: info(metrics(agent)), 20, "the redfish info series")
                assert i["kind"] == kind and i["state"] == "ok", i
            assert info(metrics(ac))["reading"] == "Sensors/TotalEnergy (EnergykWh)"
            assert info(metrics(ac))["auth"] == "session" and info(metrics(ap))["auth"] == "basic"
            # Two counter steps seen at the steady base power, so the counter runs at its rate.
            wait(lambda: ticks(metrics(ac)) >= 6, 20, "6 ticks")
            m0c, t0c = at_tick_edge(ac)
            m0p, t0p = at_tick_edge(ap)
            profile.start_burst(time.time() + 0.5)
            wait(lambda: time.time() > profile.burst_end() + 4, 60, "the end of the burst")
            m1c, t1c = at_tick_edge(ac)
            m1p, t1p = at_tick_edge(ap)
            for name, m0, t0, m1, t1, tol in (("counter (1U)", m0c, t0c, m1c, t1c, 0.005),
                                              ("power (Chassis/1)", m0p, t0p, m1p, t1p, 0.02)):
                got = platform(m1) - platform(m0)
                want = profile.energy(t1) - profile.energy(t0)
                err = (got - want) / want
                print(f"{name}: platform {got:.1f} J over {t1 - t0:.1f} s, BMC {want:.1f} J, "
                      f"{100 * err:+.2f} %")
                assert abs(err) <= tol, f"{name}: {got:.1f} J against {want:.1f} J"
            # Its sessions expired every 7 requests: the agent logged in again and never stalled.
            assert counter.logins >= 3, f"only {counter.logins} logins"
            assert info(metrics(ac))["state"] == "ok"
            assert power.logins == 0
            no_secret(ac)
        assert counter.logouts >= 1, "no logout at stop"
    finally:
        counter.close()
        power.close()


def layouts_and_faults(folder):
    dell = FakeBmc("System.Embedded.1", os.path.join(folder, "c"), sessions=True, token_uses=1000)
    openbmc = FakeBmc("Self", os.path.join(folder, "d"), sessions=False)
    blades = FakeBmc("multi", os.path.join(folder, "e"), sessions=True, token_uses=1000)
    try:
        # Several chassis with power: refused, naming each.
        agent = Process([
            BIN, "run", "--listen", "127.0.0.1:0", "--state-dir",
            tempfile.mkdtemp(prefix="wattprobe-state-"), "--sources", "redfish", "--redfish-url",
            blades.url, "--redfish-user-file", os.path.join(folder, "user"),
            "--redfish-password-file", os.path.join(folder, "password"),
            *with_user(["--redfish-ca-file", blades.ca])])
        assert agent.proc.wait(30 * SLOW) == 2, agent.stderr()
        assert "Blade1" in agent.stderr() and "Blade2" in agent.stderr(), agent.stderr()
        assert "--redfish-chassis" in agent.stderr()
        with start(blades, folder, "--redfish-chassis", "Blade2") as a:
            i = wait(lambda: info(metrics(a)), 20, "the info series")
            assert i["chassis"] == "Blade2" and i["kind"] == "chassis_power", i

        with start(dell, folder) as ad, start(openbmc, folder) as ao:
            i = wait(lambda: info(metrics(ad)), 20, "the info series")
            assert i["kind"] == "supply_input" and i["integrated"] == "true", i
            assert i["reading"].startswith("Power.PowerSupplies[].PowerInputWatts (2 supplies)"), i
            i = wait(lambda: info(metrics(ao)), 20, "the info series")
            assert i["kind"] == "chassis_power" and "total_power" in i["reading"], i
            wait(lambda: platform(metrics(ao)) > 0, 20, "OpenBMC's platform energy")
            w = value(metrics(ao), "wattprobe_redfish_power_watts", chassis="Self")
            assert w == 300, w

            for fault, why in (("503", "503"), ("malformed", "not JSON"),
                               ("huge", "larger than"), ("hang", "timeout")):
                dell.fault = fault
                before = ticks(metrics(ad))
                i = wait(lambda: (lambda j: j if j and j["state"] == "stalled" else None)(
                    info(metrics(ad))), 30, f"stalled on {fault}")
                assert why in i["reason"], (fault, i)
                # Ticks go on while the BMC misbehaves.
                assert ticks(metrics(ad)) >= before + 2, f"ticks held up by {fault}"
                stalled_energy = platform(metrics(ad))
                dell.fault = None
                wait(lambda: info(metrics(ad))["state"] == "ok", 30, f"recovery from {fault}")
                assert platform(metrics(ad)) >= stalled_energy
                print(f"{fault}: stalled ({i['reason']}), then back")
            errors = value(metrics(ad), "wattprobe_redfish_polls_total", result="error")
            assert errors >= 12, errors

            # The BMC restarts (every session gone) and refuses the first new login.
            logins = dell.logins
            with dell.lock:
                dell.tokens.clear()
                dell.refuse_next_logins = 1
            wait(lambda: dell.logins > logins, 20, "a new login")
            e0 = platform(metrics(ad))
            wait(lambda: platform(metrics(ad)) > e0 + 300, 20, "energy after the new login")
            assert info(metrics(ad))["state"] == "ok"
            no_secret(ad)
            no_secret(ao)
    finally:
        dell.close()
        openbmc.close()
        blades.close()


def options(folder):
    """Bad redfish options stop start-up with exit 2 naming the option; a config file sets them."""
    user, password = os.path.join(folder, "user"), os.path.join(folder, "password")
    base = [BIN, "doctor", "--sources", "redfish"]
    for extra, says in (
            (["--redfish-url", "https://bmc", "--redfish-user-file", user,
              "--redfish-password-file", password, "--redfish-interval", "500ms"], "redfish-interval"),
            (["--redfish-url", "https://bmc", "--redfish-user-file", user,
              "--redfish-password-file", password, "--redfish-timeout", "2m"], "redfish-timeout"),
            (["--redfish-url", f"https://{USER}:{PASSWORD}@bmc", "--redfish-user-file", user,
              "--redfish-password-file", password], "credentials in the URL"),
            (["--redfish-url", "https://bmc"], "--redfish-user-file"),
            (["--redfish-url", "https://bmc", "--redfish-user-file", user,
              "--redfish-password-file", password, "--redfish-insecure-skip-verify=maybe"],
             "redfish-insecure-skip-verify")):
        p = Process(base + extra)
        assert p.proc.wait(30) == 2, (extra, p.stdout(), p.stderr())
        assert says in p.stderr(), (says, p.stderr())
        assert PASSWORD not in p.stderr(), p.stderr()
    conf = os.path.join(folder, "wattprobe.conf")
    with open(conf, "w") as f:
        f.write(f"redfish-url = https://127.0.0.1:1\nredfish-user-file = {user}\n"
                f"redfish-password-file = {password}\nredfish-interval = 2s\n"
                "redfish-timeout = 1s\n")
    p = Process([BIN, "doctor", "--config", conf, "--sources", "redfish"])
    p.proc.wait(60)
    assert "redfish: not available" in p.stdout() and "connect" in p.stdout(), p.stdout()


def main():
    if not shutil.which("openssl"):
        skip("no openssl CLI to make the test BMC's CA")
    folder = tempfile.mkdtemp(prefix=f"wattprobe-wall-{os.getpid()}-")
    for sub in "abcde":
        os.makedirs(os.path.join(folder, sub))
    for name, secret in (("user", USER), ("password", PASSWORD)):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(secret + "\n")
        os.chmod(path, 0o600)
    try:
        options(folder)
        if not os.environ.get("WALL_SKIP_ACCURACY"):
            accuracy(folder)
        layouts_and_faults(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
