"""Start-up errors are one line naming the option, the file and the value, with exit code 2;
SIGTERM and SIGINT stop the daemon cleanly within one interval (issue 2)."""

import os
import signal
import subprocess
import tempfile
import time

from wattprobe_e2e import BIN, start_agent


def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def expect_usage_error(args, *needles):
    code, out, err = run(*args)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, f"{args}: exit {code}, stderr {err!r}"
    assert len(lines) == 1, f"{args}: expected one line, got {lines}"
    for n in needles:
        assert n in lines[0], f"{args}: {n!r} not in {lines[0]!r}"
    print(f"ok: {' '.join(args)} -> {lines[0]}")


def main():
    expect_usage_error(["run", "--no-such-option"], "no-such-option")
    expect_usage_error(["run", "--interval", "5"], "--interval", '"5"')
    expect_usage_error(["run", "--interval", "50ms"], "--interval", '"50ms"', "100ms")
    expect_usage_error(["run", "--interval", "2m"], "--interval", '"2m"', "1m")
    expect_usage_error(["run", "--sources", "rapl_powercap,gpu_magic"], "--sources", "gpu_magic")
    expect_usage_error(["run", "--listen", "nowhere"], "--listen", '"nowhere"')
    expect_usage_error(["run", "--sysfs-root", "/does/not/exist"], "--sysfs-root", "/does/not/exist")
    expect_usage_error(["run", "--config", "/does/not/exist.conf"], "/does/not/exist.conf")
    expect_usage_error(["frobnicate"], "frobnicate")

    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("interval = 1s\nidle-attribution = sometimes\n")
        bad_value = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("interval = 1s\nflux-capacitor = on\n")
        bad_key = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[source.model]\nmin_watts_per_vcpu = lots\n")
        bad_section = f.name
    try:
        expect_usage_error(["run", "--config", bad_value], bad_value, "idle-attribution", '"sometimes"')
        expect_usage_error(["run", "--config", bad_key], bad_key, "flux-capacitor")
        expect_usage_error(["run", "--config", bad_section], bad_section,
                           "source.model.min_watts_per_vcpu", '"lots"')
        if os.geteuid() == 0:
            print("note: running as root, an unreadable config cannot be made by file mode")
        else:
            os.chmod(bad_value, 0)
            expect_usage_error(["run", "--config", bad_value], bad_value)
    finally:
        for p in (bad_value, bad_key, bad_section):
            os.unlink(p)

    # Stop within one interval: with a 10 s interval, SIGTERM must not wait for the next tick.
    for sig in (signal.SIGTERM, signal.SIGINT):
        with start_agent("--interval", "10s", "--accounting", "procfs", "--sources", "model") as agent:
            time.sleep(0.5)
            t0 = time.time()
            agent.proc.send_signal(sig)
            code = agent.proc.wait(15)
            took = time.time() - t0
            assert code == 0, f"exit {code} after {sig.name}: {agent.stderr()}"
            assert took < 2.0, f"{sig.name} took {took:.2f}s to stop"
            print(f"ok: {sig.name} stopped the agent in {took:.3f}s, exit 0")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
