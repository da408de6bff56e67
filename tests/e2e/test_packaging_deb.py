"""The .deb built by CPack installs with dpkg, ships the unit and the config as a conffile, starts
nothing, runs `wattprobe doctor` from the installed path, and dpkg removes and purges it cleanly."""

import glob
import os
import subprocess
import sys
import tempfile

BIN = os.environ.get("WATTPROBE_BIN", "build/wattprobe")
BUILD = os.path.dirname(os.path.abspath(BIN))
INSTALLED = ["/usr/bin/wattprobe", "/usr/lib/systemd/system/wattprobe.service",
             "/etc/wattprobe/wattprobe.conf"]
ENABLED_LINK = "/etc/systemd/system/multi-user.target.wants/wattprobe.service"

failures = []


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)
    print(f"$ {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}".rstrip())
    return r


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def installed():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "wattprobe"], capture_output=True,
                       text=True)
    return r.returncode == 0 and "installed" in r.stdout and "not-installed" not in r.stdout


def main():
    if os.geteuid() != 0:
        print("SKIPPED: dpkg -i needs root")
        return 77
    if not os.path.exists(os.path.join(BUILD, "CPackConfig.cmake")):
        print(f"FAIL: {BUILD} has no CPackConfig.cmake (is packaging/ part of this build?)")
        return 1
    if not check(os.access(BIN, os.X_OK), f"the binary {BIN} is built"):
        print(f"FAIL: {failures[-1]}")
        return 1
    if installed():
        print("SKIPPED: a wattprobe package is already installed on this machine; not touching it")
        return 77

    with tempfile.TemporaryDirectory() as out:
        r = run(["cpack", "-G", "DEB", "-B", out], cwd=BUILD, timeout=600)
        debs = glob.glob(os.path.join(out, "wattprobe_*.deb"))
        if not check(r.returncode == 0 and len(debs) == 1, f"cpack made one .deb: {debs}"):
            return report()
        deb = debs[0]
        contents = run(["dpkg-deb", "-c", deb]).stdout
        for path in INSTALLED:
            check(f".{path}\n" in contents + "\n", f"the package ships {path}")
        control = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
        check("libbpf" in control, f"Depends lists the runtime libraries (shlibdeps): {control!r}")
        info = run(["dpkg-deb", "-I", deb, "conffiles"]).stdout
        check("/etc/wattprobe/wattprobe.conf" in info, "the config is a conffile")

        try:
            r = run(["dpkg", "-i", deb])
            check(r.returncode == 0, "dpkg -i succeeds")
            for path in INSTALLED:
                check(os.path.exists(path), f"{path} exists after dpkg -i")
            check(os.path.isdir("/var/lib/wattprobe"), "postinst created /var/lib/wattprobe")
            check(not os.path.lexists(ENABLED_LINK), "postinst did not enable the service")
            check("systemctl enable --now wattprobe" in r.stdout + r.stderr,
                  "postinst tells how to start the service")
            active = subprocess.run(["systemctl", "is-active", "wattprobe.service"],
                                    capture_output=True, text=True)
            check(active.stdout.strip() != "active", "the service was not started")

            # doctor exits 0 (all good) or 1 (something missing, e.g. no RAPL here): both ran.
            doctor = run(["/usr/bin/wattprobe", "doctor"], timeout=60)
            check(doctor.returncode in (0, 1), f"wattprobe doctor ran (exit {doctor.returncode})")
            check((doctor.stdout + doctor.stderr).strip() != "", "wattprobe doctor printed a report")

            r = run(["dpkg", "-r", "wattprobe"])
            check(r.returncode == 0, "dpkg -r succeeds")
            check(not os.path.exists("/usr/bin/wattprobe"), "no /usr/bin/wattprobe after dpkg -r")
            check(not os.path.exists(INSTALLED[1]), "no unit file after dpkg -r")
            check(os.path.exists("/etc/wattprobe/wattprobe.conf"),
                  "dpkg -r keeps the conffile (Debian policy); purge removes it")
        finally:
            r = run(["dpkg", "--purge", "wattprobe"])
            check(r.returncode == 0, "dpkg --purge succeeds")
            for path in INSTALLED + ["/etc/wattprobe", "/var/lib/wattprobe"]:
                check(not os.path.exists(path), f"nothing left at {path} after purge")
    return report()


def report():
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print("OK: built, installed, ran doctor, removed and purged")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
