"""The shipped systemd unit passes `systemd-analyze verify`, carries the hardening issues 7 and 16
name (dynamic user, PrivateMounts=, LoadCredential= for the secrets, no device and no
CAP_SYS_RAWIO unless the opt-in msr.conf drop-in is added), and `systemd-analyze security` rates
its exposure "OK" or better, with and without the drop-in."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(SOURCE, "packaging", "systemd", "wattprobe.service")
MSR = os.path.join(SOURCE, "packaging", "systemd", "msr.conf")
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
                "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
                "DynamicUser": "yes", "PrivateMounts": "yes", "PrivateDevices": "yes"}
    for key, value in expected.items():
        if d.get(key) != [value]:
            failures.append(f"{key}={value} expected, found {d.get(key)}")
    allowed = {"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"}
    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        caps = set(" ".join(d.get(key, [])).split())
        if not caps or not caps <= allowed:
            failures.append(f"{key} must be a subset of {sorted(allowed)}: {sorted(caps)}")
    exec_start = d.get("ExecStart", [""])[0]
    if not exec_start.startswith("/usr/bin/wattprobe run --config /etc/wattprobe/wattprobe.conf"):
        failures.append(f"ExecStart runs the installed binary with the shipped config: {exec_start}")
    creds = {c.split(":", 1)[0]: c.split(":", 1)[1] for c in d.get("LoadCredential", [])}
    for name in ("remote-write-token", "remote-write-password", "remote-write-api-key",
                 "grid-token"):
        if creds.get(name) != f"/etc/wattprobe/credentials/{name}":
            failures.append(f"LoadCredential={name}:/etc/wattprobe/credentials/{name} expected, "
                            f"found {creds}")
    with open(MSR) as f:
        msr_text = f.read()
    msr = directives(msr_text)
    if any("msr" in v for v in d.get("DeviceAllow", [])):
        failures.append("the unit allows /dev/cpu/N/msr by default; that is msr.conf's")
    for key, want in (("CapabilityBoundingSet", "CAP_SYS_RAWIO"),
                      ("AmbientCapabilities", "CAP_SYS_RAWIO"), ("PrivateDevices", "no"),
                      ("DevicePolicy", "closed"), ("DeviceAllow", "char-cpu/msr r")):
        if msr.get(key) != [want]:
            failures.append(f"msr.conf: {key}={want} expected, found {msr.get(key)}")
    # ProtectProc=invisible or ProcSubset=pid would hide other processes or /proc/stat.
    for key in ("ProtectProc", "ProcSubset"):
        if d.get(key, ["no"])[0] not in ("no", "default", "all"):
            failures.append(f"{key}={d[key][0]} would hide what the agent reads")

    with tempfile.TemporaryDirectory() as tmp:
        # verify insists that ExecStart exists; before installation it is the built binary.
        binary = os.environ.get("WATTPROBE_BIN", "")
        stand_in = binary if os.access(binary, os.X_OK) else shutil.which("true")
        # A drop-in's lines add to the unit's as if written at its end.
        for what, body in (("unit", text), ("unit + msr.conf", text + "\n" + msr_text)):
            unit = os.path.join(tmp, "wattprobe.service")
            with open(unit, "w") as f:
                f.write(body.replace("/usr/bin/wattprobe", stand_in))
            verify = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                                    text=True, timeout=60)
            print(f"$ systemd-analyze verify ({what})\n{verify.stdout}{verify.stderr}")
            if verify.returncode != 0 or verify.stderr.strip():
                failures.append(f"systemd-analyze verify reported problems ({what})")
            security = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit],
                                      capture_output=True, text=True, timeout=60)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", security.stdout)
            if not m:
                failures.append(f"no exposure level in systemd-analyze security output:\n"
                                f"{security.stdout}{security.stderr}")
            else:
                print(f"systemd-analyze security ({what}): exposure {m.group(1)} {m.group(2)}")
                if m.group(2) not in SAFE_ENOUGH:
                    failures.append(f"exposure {m.group(1)} {m.group(2)} is worse than OK "
                                    f"({what})")

    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
