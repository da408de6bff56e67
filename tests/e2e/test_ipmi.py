"""The `ipmi` source through the real binary.
- On a host without a BMC (CI has none): `run --sources ipmi` refuses with the device it looked
  for and how to get it, and `doctor` lists the source as not available with the same reason
  and the remedy.
- Over the LAN (--ipmi-host) to OpenIPMI's BMC simulator (ipmi_sim, Debian openipmi) with a
  module of ours that answers DCMI Get Power Reading (tests/support/ipmi_sim/dcmi_power.c):
  FreeIPMI's calls end to end. The platform energy counts, doctor finds it, the password is in no
  log; a BMC that stops answering (the simulator paused) is stalled while the ticks go on, and
  answers again. Skipped, with the reason, without ipmi_sim or the module."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

from wattprobe_e2e import BIN, TOOLS, scaled, series, start_agent, value, wait_metrics, with_user

PASSWORD = "e2e-ipmi-secret"


def tick_count(m):
    return value(m, "wattprobe_agent_tick_duration_seconds_count")


def info_state(m):
    s = series(m, "wattprobe_ipmi_info")
    return (s[0][0]["state"], s[0][0]["reason"]) if s else (None, None)


def over_the_lan():
    module = os.path.join(TOOLS, "ipmi_sim_dcmi_power.so")
    if not shutil.which("ipmi_sim"):
        print("skip: over the LAN: no ipmi_sim (Debian package openipmi)")
        return
    if not os.path.exists(module):
        print(f"skip: over the LAN: {module} was not built (Debian package libopenipmi-dev)")
        return
    folder = tempfile.mkdtemp(prefix="wattprobe-ipmi-sim-")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    auths = "none md2 md5 straight"
    with open(os.path.join(folder, "lan.conf"), "w") as f:
        f.write(f'''name "wattprobe"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback {auths}
    allowed_auths_user {auths}
    allowed_auths_operator {auths}
    allowed_auths_admin {auths}
    guid a123456789abcdefa123456789abcdef
  endlan
  loadlib "{module}" ""
user 1 true "" "" user 10 {auths}
user 2 true "wattprobe" "{PASSWORD}" user 10 {auths}
''')
    with open(os.path.join(folder, "bmc.emu"), "w") as f:
        f.write("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n"
                "mc_enable 0x20\n")
    os.makedirs(os.path.join(folder, "state"))
    for name, text in (("user", "wattprobe"), ("password", PASSWORD)):
        with open(os.path.join(folder, name), "w") as f:
            f.write(text + "\n")
    ipmi = ["--ipmi-host", f"127.0.0.1:{port}", "--ipmi-user-file", os.path.join(folder, "user"),
            "--ipmi-password-file", os.path.join(folder, "password"),
            # ipmi_sim hashes RMCP+ keys with the Open Session privilege (FreeIPMI's -W name).
            "--ipmi-workarounds", "opensesspriv"]
    sim = subprocess.Popen(["ipmi_sim", "-c", os.path.join(folder, "lan.conf"), "-f",
                            os.path.join(folder, "bmc.emu"), "-s", os.path.join(folder, "state"),
                            "-n"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with start_agent("--sources", "ipmi", "--interval", "500ms", *ipmi) as agent:
            m = wait_metrics(agent.url, lambda m: m if value(
                m, "wattprobe_node_energy_joules_total", source="ipmi", domain="platform") > 0
                else None, "platform energy from ipmi")
            watts = value(m, "wattprobe_node_power_watts", source="ipmi", domain="platform")
            assert 200 <= watts <= 5000, f"the simulator gives 250 W and up: {watts}"
            assert info_state(m) == ("ok", ""), info_state(m)
            print(f"ok: over the LAN: platform {watts:.0f} W from the simulator's DCMI readings")

            d = subprocess.run([BIN, "doctor", *with_user(ipmi)], capture_output=True, text=True,
                               timeout=scaled(60))
            line = [l for l in d.stdout.splitlines() if l.strip().startswith("ipmi:")]
            assert len(line) == 1 and "DCMI power reading" in line[0], d.stdout
            print(f"ok: doctor: {line[0].strip()}")

            # The BMC stops answering: the source is stalled, the ticks go on.
            sim.send_signal(signal.SIGSTOP)
            m = wait_metrics(agent.url, lambda m: m if info_state(m)[0] == "stalled" else None,
                             "ipmi stalled while the BMC does not answer")
            assert "has not answered" in info_state(m)[1], info_state(m)
            t0 = tick_count(m)
            wait_metrics(agent.url, lambda m: tick_count(m) >= t0 + 3, "ticks while stalled")
            print(f"ok: stalled ({info_state(m)[1]}), ticks go on")
            sim.send_signal(signal.SIGCONT)
            wait_metrics(agent.url, lambda m: info_state(m)[0] == "ok", "ipmi answers again",
                         timeout=40)
            print("ok: the BMC answers again")
            logs = agent.stderr() + agent.stdout()
        assert PASSWORD not in logs, "the BMC password reached the log"
        assert "ipmi: stalled" in logs and "answers again" in logs, logs
    finally:
        sim.send_signal(signal.SIGCONT)
        sim.kill()
        sim.wait()
        shutil.rmtree(folder, ignore_errors=True)


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

    over_the_lan()


if __name__ == "__main__":
    main()
