"""Start-up errors are one line naming the option, the file and the value, with exit code 2;
SIGTERM and SIGINT stop the daemon cleanly within one interval (issue 2)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from wattprobe_e2e import USER_ARGS, BIN, scaled, start_agent


def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=scaled(30))
    return p.returncode, p.stdout, p.stderr


def expect_usage_error(args, *needles):
    code, out, err = run(*args)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, f"{args}: exit {code}, stderr {err!r}"
    assert len(lines) == 1, f"{args}: expected one line, got {lines}"
    for n in needles:
        assert n in lines[0], f"{args}: {n!r} not in {lines[0]!r}"
    print(f"ok: {' '.join(args)} -> {lines[0]}")


def config_errors_name_the_line():
    """Every error in the --config file names the file and the line (issue 12), as a user fixing
    it needs: unknown keys, bad values (also inside a [section]), malformed lines and headers,
    a single-valued key set twice, a config naming another."""
    head = "# wattprobe test config\n\ninterval = 1s\n"  # lines 1-3
    cases = [
        (head + "idle-attribution = sometimes\n", 4,
         ['invalid value "sometimes" for --idle-attribution', "expected separate"]),
        (head + "  # indented comment\nflux-capacitor = on\n", 5,
         ['unknown option "flux-capacitor"']),
        (head + "[source.model]\nmin_watts_per_vcpu = lots  # comment\n", 5,
         ['invalid value "lots" for --source.model.min_watts_per_vcpu', "expected a number"]),
        (head + "[source.model]\nmax_watts = 3\n", 5,
         ['unknown option "source.model.max_watts"']),
        (head + "just some words\n", 4, ['malformed line "just some words"', "key = value"]),
        (head + "[source.model\n", 4, ['malformed section header "[source.model"']),
        (head + "interval = 2s\n", 4, ["interval is already set on line 3"]),
        (head + "config = /etc/other.conf\n", 4, ["config cannot name another config file"]),
        ("interval = 50ms\n", 1, ['invalid value "50ms" for --interval', "100ms"]),
    ]
    for text, line, needles in cases:
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            where = f"config file {f.name} line {line}"
            expect_usage_error(["run", "--config", f.name], where, *needles)
        finally:
            os.unlink(f.name)

    # Repeatable keys may repeat, a key in a section and comments parse, and the command line
    # still wins over the file: the same file with --interval given starts fine.
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("interval = 50ms\nidle-watts = package=1\nidle-watts = dram=1 # two\n"
                "[source.model]\nmin_watts_per_vcpu = 0.5\n")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    try:
        code, out, err = run("run", "--config", f.name, "--interval", "1s", "--sources", "model",
                             "--accounting", "procfs", "--listen", "127.0.0.1:0",
                             "--state-dir", state, "--max-ticks", "1", *USER_ARGS)
        assert code == 0, f"a valid config with the command line over it: exit {code}: {err}"
        print("ok: repeated repeatable keys, a [section] and comments parse; the command line wins")
    finally:
        os.unlink(f.name)
        shutil.rmtree(state, ignore_errors=True)


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

    config_errors_name_the_line()
    if os.geteuid() == 0:
        print("note: running as root, an unreadable config cannot be made by file mode")
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("interval = 1s\n")
        try:
            os.chmod(f.name, 0)
            expect_usage_error(["run", "--config", f.name], f.name)
        finally:
            os.unlink(f.name)

    # Stop within one interval: with a 10 s interval, SIGTERM must not wait for the next tick.
    for sig in (signal.SIGTERM, signal.SIGINT):
        # start_agent returns after the first tick: the agent now waits 10 s for the next.
        with start_agent("--interval", "10s", "--accounting", "procfs", "--sources", "model") as agent:
            t0 = time.time()
            agent.proc.send_signal(sig)
            code = agent.proc.wait(scaled(15))
            took = time.time() - t0
            assert code == 0, f"exit {code} after {sig.name}: {agent.stderr()}"
            # Well under the 10 s to the next tick, even when a busy host slows the last write.
            limit = min(scaled(2.0), 6.0)
            assert took < limit, f"{sig.name} took {took:.2f}s to stop (limit {limit:.1f}s)"
            print(f"ok: {sig.name} stopped the agent in {took:.3f}s, exit 0")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
