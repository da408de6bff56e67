"""The `ipmi` source through the real binary on a host without a BMC (CI has none): `run
--sources ipmi` refuses with the device it looked for and how to get it, and `doctor` lists the
source as not available with the same reason and the remedy. The readings themselves (a power
reading, "not supported", timeouts) are tested through the library seam in
tests/collectors/energy/ipmi_test.cc; no e2e test can reach a BMC here."""

import os
import subprocess
import tempfile

from wattprobe_e2e import BIN, scaled, with_user


def main():
    root = tempfile.mkdtemp(prefix="wattprobe-ipmi-")
    os.makedirs(os.path.join(root, "dev"))
    device = os.path.join(root, "dev", "ipmi0")

    r = subprocess.run([BIN, "run", "--listen", "127.0.0.1:0", "--dev-root", root, "--state-dir",
                        tempfile.mkdtemp(prefix="wattprobe-state-"),
                        *with_user(["--sources", "ipmi"])],
                       capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "source ipmi is not available" in r.stderr and device in r.stderr, r.stderr
    assert "ipmi_devintf" in r.stderr, r.stderr
    print(f"ok: run --sources ipmi without a BMC refuses: {r.stderr.strip().splitlines()[-1]}")

    d = subprocess.run([BIN, "doctor", "--dev-root", root, *with_user([])], capture_output=True,
                       text=True, timeout=scaled(60))
    lines = [l for l in d.stdout.splitlines() if l.strip().startswith("ipmi:")]
    assert len(lines) == 1 and "not available" in lines[0] and device in lines[0], d.stdout
    assert "modprobe ipmi_si ipmi_devintf" in d.stdout, d.stdout
    print(f"ok: doctor: {lines[0].strip()}")

    # A device node that is no BMC: the agent opens libfreeipmi at run time (it is not linked,
    # to keep it out of every agent's RSS) and FreeIPMI itself refuses the open.
    with open(device, "w"):
        pass
    r = subprocess.run([BIN, "run", "--listen", "127.0.0.1:0", "--dev-root", root, "--state-dir",
                        tempfile.mkdtemp(prefix="wattprobe-state-"),
                        *with_user(["--sources", "ipmi"])],
                       capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "ipmi_ctx_open_inband" in r.stderr and "cannot load" not in r.stderr, r.stderr
    print(f"ok: libfreeipmi loaded at run time: {r.stderr.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
