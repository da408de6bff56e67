"""`wattprobe validate --quick` (issue 17) on the powercap fixture that follows the real load
(20 W + 40 W x the host's busy fraction, wrapping every few seconds), as CI runs it: every check
named in the issue is there (a GPU's power against its limit, with a recorded H200 through the
fake libnvidia-ml.so.1 beside the powercap zones), every check that ran passed, the exit code says so, and report.md
and the plot are written. --idle-truth gives the fixture's known 20 W idle, so the estimator's
error is judged. Also: a bad option is refused with exit 2, naming it."""

import json
import os
import re
import shutil
import subprocess
import tempfile

from wattprobe_e2e import BIN, cgroup2_root, skip, start_driver

FAKE_NVML = os.environ.get("WATTPROBE_FAKE_NVML", "build/fake_nvml/libnvidia-ml.so.1")
DATA = os.environ.get("WATTPROBE_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))
# Its busiest 3 s drew 604 W of the H200's 700 W: the replay steps every 0.1 s, so a 3-tick window
# may read up to ~4 % high, still well under the limit (the phased trace's 686 W would not be).
RANDOM = os.path.join(DATA, "nvml/h200-random-periods-50-30-20.jsonl")

PREFIXES = ("attribution", "conservation", "short_lived", "idle", "counter")


def bad_options():
    for args, needle in ((["--idle-truth", "package"], "--idle-truth"),
                         (["--idle-truth", "package=-3"], "package=-3"),
                         (["--quick=yes"], "--quick"),
                         (["--interval", "5ms"], "--interval")):
        r = subprocess.run([BIN, "validate", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and needle in r.stderr, (args, r.returncode, r.stderr)
    print("ok: bad options are refused with exit 2, naming the option")


def quick_on_fixture():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    out = tempfile.mkdtemp(prefix="wattprobe-validate-")
    try:
        # 40 W per busy host keeps the fixture under the package's stated 64 W short-term limit
        # on a fully busy host; a 200 J register wraps every 3-10 s, so wraps happen in the run.
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=40", "--period-ms", "20",
                          "--max-range-uj", "200000000"):
            # A GPU beside it through the fake libnvidia-ml.so.1, replaying a recorded H200
            # (limited to 700 W): its power is held to the limit NVML states.
            env = dict(os.environ, WATTPROBE_FAKE_NVML_TRACE=RANDOM, WATTPROBE_FAKE_NVML_START="5")
            r = subprocess.run([BIN, "validate", "--quick", "--out", out, "--sysfs-root", root,
                                "--sources", "rapl_powercap,nvml", "--nvml-library", FAKE_NVML,
                                "--accounting", "auto", "--idle-truth", "package=20"],
                               capture_output=True, text=True, timeout=300, env=env)
        print(r.stdout)
        if r.returncode not in (0, 1):
            raise AssertionError(f"validate exited {r.returncode}: {r.stderr}")
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
        assert report["version"] and report["host"]["hostname"], report
        checks = report["checks"]
        for c in checks:
            assert set(c) >= {"name", "value", "unit", "bound", "kind", "pass"}, c
            assert c["name"].startswith(PREFIXES), c["name"]
            assert c["kind"] in ("max", "min"), c
            if c["pass"] is None:
                assert c.get("reason"), f"a check not run must say why: {c}"
        idle = [c for c in checks if c["name"].startswith("idle_power_rapl_powercap_package")]
        busy_host = idle and idle[0]["pass"] is None and "% busy while validate idled" in idle[0]["detail"]
        if busy_host:
            # Others' work kept the host busy while validate idled, so no idle was there to learn:
            # validate says so instead of judging; not a verdict on the estimator either way.
            print(f"note (idle only): {idle[0]['detail']}")
        else:
            assert idle and idle[0]["name"].endswith("_error") and idle[0]["pass"] is not None, idle
            print(f"idle estimate vs the fixture's 20 W: {idle[0]['detail']}")
        for p in PREFIXES:
            ran = [c for c in checks if c["name"].startswith(p) and c["pass"] is not None]
            assert ran or (p == "idle" and busy_host), \
                f"no {p}* check ran on the fixture: {[c['name'] for c in checks]}"
        wraps = [c for c in checks if c["name"] == "counter_totals_monotonic"]
        seen = re.search(r"(\d+) powercap register wrap", wraps[0]["detail"]) if wraps else None
        assert seen and int(seen.group(1)) > 0, f"no wrap happened during the run: {wraps}"
        gpu = [c for c in checks if c["name"] == "counter_power_plausible_gpu_nvml_0"]
        assert gpu and gpu[0]["pass"] is True and gpu[0]["bound"] == 700 and gpu[0]["value"] > 50, \
            f"the H200's power vs its 700 W limit: {gpu}"
        print(f"ok: GPU 0 drew at most {gpu[0]['value']:.0f} W over 3 ticks, under its 700 W limit")
        failed = [c for c in checks if c["pass"] is False]
        assert not failed, "checks failed on the fixture:\n" + "\n".join(
            f"  {c['name']}: {c['value']} {c['unit']} (bound {c['bound']}, {c['kind']}): "
            f"{c['detail']}" for c in failed)
        assert r.returncode == 0, f"every check passed but validate exited {r.returncode}"
        for name in ("report.md", "attribution.svg"):
            assert os.path.getsize(os.path.join(out, name)) > 500, name
        with open(os.path.join(out, "report.md")) as f:
            md = f.read()
        assert "attribution_energy_ratio_error" in md and "attribution.svg" in md
        ratio = next(c for c in checks if c["name"] == "attribution_energy_ratio_error")
        print(f"ok: validate --quick passed {report['summary']['passed']} checks "
              f"({report['summary']['not_run']} not run) in {report['duration_s']:.0f} s; "
              f"energy ratio error {ratio['value']:.3f} %")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    bad_options()
    if os.geteuid() != 0:
        skip("needs root: validate makes cgroups for its burners")
    if cgroup2_root() is None:
        skip("no cgroup v2 hierarchy on this host")
    quick_on_fixture()
    print("1 passed, 0 failed")
