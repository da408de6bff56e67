"""libcurl is opened at the first HTTP use, not linked (issue 25's RSS goal), through the binary.
- The default daemon (no remote-write, OTLP, Redfish or [unit] section) never maps libcurl or the
  libraries it pulls in (gnutls, krb5, ldap, …): they are not in its /proc/PID/maps after ticks.
- With --remote-write-url, the sink's start opens it: libcurl.so.4 is mapped.
- Without the library (as root: a private mount namespace with /dev/null bound over it), a sink
  that needs it refuses the start with the reason and the Debian package, `wattprobe when`
  reports a failed request and `doctor` the Redfish source with the same reason: a message,
  never a crash."""

import os
import shutil
import subprocess
import tempfile

from wattprobe_e2e import BIN, free_port, skip, start_agent, wait_ticks, with_user

HINT = "cannot load libcurl (Debian: apt install libcurl4)"


def mapped(pid):
    """The files mapped into process `pid`."""
    with open(f"/proc/{pid}/maps") as f:
        return {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}


def curl_files(files):
    return sorted(f for f in files if "/libcurl" in f or "/libgnutls" in f or "/libkrb5" in f)


def default_daemon_maps_no_curl():
    with start_agent() as agent:
        wait_ticks(agent, 2)
        found = curl_files(mapped(agent.proc.pid))
        assert not found, f"the default daemon maps {found}"
    print("ok: the default daemon maps no libcurl, gnutls or krb5")


def remote_write_opens_curl():
    """Returns the path of the libcurl the agent mapped."""
    url = f"http://127.0.0.1:{free_port()}/api/v1/push"  # nothing listens: the sink only starts
    with start_agent("--remote-write-url", url) as agent:
        wait_ticks(agent, 1)
        found = [f for f in mapped(agent.proc.pid) if "/libcurl.so.4" in f]
        assert found, "--remote-write-url: libcurl.so.4 is not mapped"
    print(f"ok: --remote-write-url maps {found[0]}")
    return os.path.realpath(found[0])


def without_the_library(library):
    if os.geteuid() != 0:
        print("skip: without libcurl: hiding it needs root (a private mount namespace)")
        return
    if not shutil.which("unshare"):
        print("skip: without libcurl: no unshare (Debian package util-linux)")
        return
    state = tempfile.mkdtemp(prefix="wattprobe-curl-state-")
    url = f"http://127.0.0.1:{free_port()}/api/v1/push"

    def hidden(*args):
        script = 'mount --bind /dev/null "$0" && exec "$@"'
        return subprocess.run(["unshare", "-m", "sh", "-c", script, library, *args],
                              capture_output=True, text=True, timeout=120)

    probe = hidden("true")
    if probe.returncode != 0:
        print(f"skip: without libcurl: cannot bind over {library}: {probe.stderr.strip()}")
        return
    run = hidden(BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state, "--max-ticks", "3",
                 *with_user(["--remote-write-url", url]))
    out = run.stdout + run.stderr
    assert run.returncode == 1, f"run without libcurl: exit {run.returncode}\n{out}"
    assert "remote-write" in out and HINT in out, f"run without libcurl:\n{out}"
    print("ok: without libcurl, a remote-write sink refuses the start: "
          + next(line for line in out.splitlines() if HINT in line))

    when = hidden(BIN, "when", "--url", url, "--duration", "1h", "--within", "2h")
    out = when.stdout + when.stderr
    assert when.returncode == 1, f"when without libcurl: exit {when.returncode}\n{out}"
    assert HINT in out, f"when without libcurl:\n{out}"
    print("ok: without libcurl, `when` reports the failed request: " + out.strip().splitlines()[-1])

    for name in ("user", "password"):
        with open(os.path.join(state, name), "w") as f:
            f.write(name + "\n")
    doctor = hidden(BIN, "doctor", "--redfish-url", url.split("/api")[0], "--redfish-user-file",
                    os.path.join(state, "user"), "--redfish-password-file",
                    os.path.join(state, "password"))
    out = doctor.stdout + doctor.stderr
    line = next((t for t in out.splitlines() if "redfish:" in t and HINT in t), None)
    assert line, f"doctor without libcurl: no redfish line with {HINT!r}\n{out}"
    print("ok: without libcurl, doctor's redfish source says why: " + line.strip())
    shutil.rmtree(state, ignore_errors=True)


def main():
    if not os.path.exists("/proc/self/maps"):
        skip("no /proc/PID/maps")
    default_daemon_maps_no_curl()
    without_the_library(remote_write_opens_curl())


if __name__ == "__main__":
    main()
