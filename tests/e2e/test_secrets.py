"""Secrets cannot inject HTTP headers (issue 16): a bearer-token, password or grid token file, or
a grid token in the environment, holding CR, LF or NUL stops the agent at start-up with exit 2
and a message naming the file or variable and never the value. A secret given on the command
line (a remote-write URL with a password, a credential-looking --remote-write-header) is
accepted, with one warning line. Every secret has a file form: --remote-write-header-file
NAME=FILE sends the file's one line as the header's value, keeps it off /proc/PID/cmdline, warns
about nothing, and is still read after the agent has dropped from root to an unprivileged user,
through the file held open from start-up, even when only root may open it (mode 0600). A secret
in a URL's query, and a config file holding a secret that every user can read, are warned about
(issue 25)."""

import os
import subprocess
import tempfile

import time

from wattprobe_e2e import with_user, BIN, RemoteWriteReceiver, scaled, start_agent

SECRET = "s3cr3t-value"
INJECTION = SECRET + "\nX-Injected: yes"


def run(*args, env=None, timeout=30):
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    return subprocess.run([BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state,
                           "--sources", "model", "--accounting", "procfs", *with_user(args)],
                          capture_output=True, text=True, timeout=scaled(timeout),
                          env={**os.environ, **(env or {})})


def expect_refused(what, args, names, env=None):
    p = run(*args, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 2, f"{what}: exit {p.returncode}, expected 2\n{out}"
    assert names in out, f"{what}: the message does not name {names!r}:\n{out}"
    assert "CR, LF or NUL" in out, f"{what}: the message does not say why:\n{out}"
    assert SECRET not in out and "Injected" not in out, f"{what}: the value was printed:\n{out}"
    print(f"ok: {what}: exit 2: {p.stderr.strip()}")


def main():
    work = tempfile.mkdtemp(prefix="wattprobe-e2e-secrets-")
    token = os.path.join(work, "token")
    with open(token, "w") as f:
        f.write(INJECTION + "\n")
    nul = os.path.join(work, "nul-password")
    with open(nul, "wb") as f:
        f.write(SECRET.encode() + b"\0tail\n")

    rw = ["--remote-write-url", "http://127.0.0.1:9/api/v1/write"]
    expect_refused("bearer token file with LF",
                   rw + ["--remote-write-bearer-token-file", token], token)
    expect_refused("password file with NUL",
                   rw + ["--remote-write-username", "u", "--remote-write-password-file", nul], nul)
    expect_refused("header value file with LF",
                   rw + ["--remote-write-header-file", f"X-Api-Key={token}"], token)
    grid = ["--grid-provider", "electricitymaps", "--grid-zone", "DE"]
    expect_refused("grid token file with LF", grid + ["--grid-token-file", token], token)
    expect_refused("grid token environment variable with CR LF",
                   grid + ["--grid-token-env", "WP_E2E_GRID_TOKEN"], "$WP_E2E_GRID_TOKEN",
                   env={"WP_E2E_GRID_TOKEN": SECRET + "\r\nX-Injected: yes"})

    # Secrets on the command line: accepted, with a warning that names the option, not the value.
    with start_agent("--sources", "model", "--accounting", "procfs",
                     "--remote-write-url", f"http://user:{SECRET}@127.0.0.1:9/api/v1/write",
                     "--remote-write-header", f"X-Api-Key={SECRET}",
                     "--remote-write-header", "X-Scope-OrgID=tenant-1") as agent:
        err = agent.stderr()
    warnings = [l for l in err.splitlines() if "warning:" in l]
    assert any("--remote-write-url carries credentials" in l for l in warnings), err
    assert any("--remote-write-header X-Api-Key" in l for l in warnings), err
    assert not any("X-Scope-OrgID" in l for l in warnings), err
    assert len(warnings) == 2, warnings
    assert SECRET not in err, f"a warning printed the secret:\n{err}"
    for line in warnings:
        print(f"ok: warned: {line}")

    header_from_file(work)
    secrets_where_others_read_them(work)


def secrets_where_others_read_them(work):
    """Issue 25: a secret in a URL's query (it reaches proxy and server logs) is warned about,
    from the command line or the config file; so is a config file holding a secret that every
    user can read, until it is 0640."""
    p = run("--remote-write-url", f"http://127.0.0.1:9/api/v1/write?tenant=a&api_key={SECRET}",
            "--max-ticks", "1")
    assert p.returncode == 0, p.stderr
    warnings = [l for l in p.stderr.splitlines() if "in its query" in l]
    assert len(warnings) == 1 and "--remote-write-url" in warnings[0] and \
        "(api_key=)" in warnings[0], p.stderr
    assert SECRET not in p.stderr, f"a warning printed the secret:\n{p.stderr}"
    print(f"ok: warned: {warnings[0]}")

    config = os.path.join(work, "wattprobe.conf")
    with open(config, "w") as f:
        f.write(f"remote-write-url = http://127.0.0.1:9/api/v1/write?token={SECRET}\n"
                f"remote-write-header = X-Api-Key={SECRET}\n")
    for mode, warned in ((0o644, True), (0o640, False)):
        os.chmod(config, mode)
        p = run("--config", config, "--max-ticks", "1")
        assert p.returncode == 0, p.stderr
        assert any("in its query (token=)" in l for l in p.stderr.splitlines()), p.stderr
        line = [l for l in p.stderr.splitlines() if "every user can read it" in l]
        assert bool(line) == warned, f"mode {mode:o}: {p.stderr}"
        assert SECRET not in p.stderr, p.stderr
        if warned:
            assert "--remote-write-url, --remote-write-header X-Api-Key" in line[0] and \
                "chmod 0640" in line[0], line[0]
            print(f"ok: mode {mode:o}: warned: {line[0]}")
        else:
            print(f"ok: mode {mode:o}: no warning about the file")


def header_from_file(work):
    key = os.path.join(work, "api-key")
    with open(key, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(key, 0o600)  # root's only: the agent opens it before it drops privileges
    # As systemd's LoadCredential= gives it: the option names the credential, not the folder.
    os.environ["CREDENTIALS_DIRECTORY"] = work
    with RemoteWriteReceiver(lambda n, r: (204, {})) as rx:
        with start_agent("--sources", "model", "--accounting", "procfs", "--interval", "200ms",
                         "--remote-write-url", rx.url, "--remote-write-batch-interval", "100ms",
                         "--remote-write-header-file",
                         "X-Api-Key=$CREDENTIALS_DIRECTORY/api-key") as agent:
            deadline = time.time() + scaled(15)
            while time.time() < deadline and len(rx.seen()) < 2:
                time.sleep(0.1)
            with open(f"/proc/{agent.proc.pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{agent.proc.pid}/status") as f:
                uid = next(l.split()[1] for l in f if l.startswith("Uid:"))
            err = agent.stderr()
        seen = rx.seen()
    assert len(seen) >= 2, f"the receiver got {len(seen)} requests\n{err}"
    values = {r["headers"].get("X-Api-Key") for r in seen}
    assert values == {SECRET}, f"X-Api-Key values sent: {values}\n{err}"
    assert SECRET not in cmdline, "the secret is on the command line"
    assert "warning:" not in err, f"a file-borne secret was warned about:\n{err}"
    assert SECRET not in err
    print(f"ok: --remote-write-header-file: {len(seen)} requests carried X-Api-Key from a 0600 "
          f"root file ($CREDENTIALS_DIRECTORY/api-key) while the agent ran as uid {uid}; not in "
          f"/proc/PID/cmdline, no warning")

    del os.environ["CREDENTIALS_DIRECTORY"]
    p = run("--remote-write-url", "http://127.0.0.1:9/api/v1/write",
            "--remote-write-bearer-token-file", "$CREDENTIALS_DIRECTORY/token")
    assert p.returncode == 2 and "CREDENTIALS_DIRECTORY is not set" in p.stderr, p.stderr
    print(f"ok: $CREDENTIALS_DIRECTORY unset: exit 2: {p.stderr.strip()}")


if __name__ == "__main__":
    main()
    print("PASS")
