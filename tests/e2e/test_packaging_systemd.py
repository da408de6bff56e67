"""The shipped systemd unit passes `systemd-analyze verify`, carries the hardening issue 7 names,
and `systemd-analyze security` rates its exposure "OK" or better."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(SOURCE, "packaging", "systemd", "wattprobe.service")
SAFE_ENOUGH = ("PERFECT", "SAFE", "OK")


def directives(text):
    values = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if m:
            values.setdefault(m.group(1), []).append(m.group(2).strip())
    return values


def main():
    if shutil.which("systemd-analyze") is None:
        print("SKIPPED: systemd-analyze is not installed (Debian package systemd)")
        return 77
    failures = []
    with open(UNIT) as f:
        text = f.read()
    d = directives(text)
    expected = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "PrivateTmp": "yes", "StateDirectory": "wattprobe", "Restart": "on-failure",
                "ProtectControlGroups": "yes", "ProtectKernelTunables": "yes",
                "SystemCallArchitectures": "native", "LockPersonality": "yes",
                "MemoryDenyWriteExecute": "yes", "RestrictNamespaces": "yes",
                "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}
    for key, value in expected.items():
        if d.get(key) != [value]:
            failures.append(f"{key}={value} expected, found {d.get(key)}")
    allowed = {"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYS_RAWIO"}
    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        caps = set(" ".join(d.get(key, [])).split())
        if not caps or not caps <= allowed:
            failures.append(f"{key} must be a subset of {sorted(allowed)}: {sorted(caps)}")
    exec_start = d.get("ExecStart", [""])[0]
    if not exec_start.startswith("/usr/bin/wattprobe run --config /etc/wattprobe/wattprobe.conf"):
        failures.append(f"ExecStart runs the installed binary with the shipped config: {exec_start}")
    # ProtectProc=invisible or ProcSubset=pid would hide other processes or /proc/stat.
    for key in ("ProtectProc", "ProcSubset", "PrivateDevices"):
        if d.get(key, ["no"])[0] not in ("no", "default", "all"):
            failures.append(f"{key}={d[key][0]} would hide what the agent reads")

    with tempfile.TemporaryDirectory() as tmp:
        # verify insists that ExecStart exists; before installation it is the built binary.
        binary = os.environ.get("WATTPROBE_BIN", "")
        stand_in = binary if os.access(binary, os.X_OK) else shutil.which("true")
        unit = os.path.join(tmp, "wattprobe.service")
        with open(unit, "w") as f:
            f.write(text.replace("/usr/bin/wattprobe", stand_in))
        verify = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                                text=True, timeout=60)
        print(f"$ systemd-analyze verify\n{verify.stdout}{verify.stderr}")
        if verify.returncode != 0 or verify.stderr.strip():
            failures.append("systemd-analyze verify reported problems")
        security = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit],
                                  capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", security.stdout)
        if not m:
            failures.append(f"no exposure level in systemd-analyze security output:\n"
                            f"{security.stdout}{security.stderr}")
        else:
            print(f"systemd-analyze security: exposure {m.group(1)} {m.group(2)}")
            if m.group(2) not in SAFE_ENOUGH:
                failures.append(f"exposure {m.group(1)} {m.group(2)} is worse than OK")

    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
