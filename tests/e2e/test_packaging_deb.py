"""The .deb built by CPack installs with dpkg, ships the unit and the config as a conffile, starts
nothing, runs `wattprobe doctor` from the installed path, and dpkg removes and purges it cleanly.

A test must not delete state it did not create, and purging the package removes /var/lib/wattprobe
and /etc/wattprobe (issue 12). So dpkg runs in an isolated root: in a private mount namespace, an
overlay whose lower layer is this machine's / and whose changes go to a tmpfs that vanishes with
the test, with a fresh /run (so the maintainer scripts see no systemd and cannot reach this
machine's). Where the kernel refuses the overlay, the test runs on this machine only if none of
the paths the package installs or its purge removes exist yet, and otherwise says it is skipped
and why."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

BIN = os.environ.get("WATTPROBE_BIN", "build/wattprobe")
BUILD = os.path.dirname(os.path.abspath(BIN))
INSTALLED = ["/usr/bin/wattprobe", "/usr/lib/systemd/system/wattprobe.service",
             "/etc/wattprobe/wattprobe.conf"]
ENABLED_LINK = "/etc/systemd/system/multi-user.target.wants/wattprobe.service"
# Everything dpkg -i creates or --purge removes (postrm), on this machine or in the root.
TOUCHED = INSTALLED + ["/etc/wattprobe", "/var/lib/wattprobe", "/var/lib/private/wattprobe",
                       ENABLED_LINK]
NAMESPACE_ENV = "WATTPROBE_DEB_TEST_NAMESPACE"

failures = []
root = ""  # the isolated root, or "" for this machine's
root_base = ""  # the tmpfs holding it


def at(path):
    """`path` as this process sees it inside the root dpkg works on."""
    return root + path


def in_root(args):
    return ["chroot", root, *args] if root else args


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


def make_isolated_root():
    """Builds the overlay root in this process's private mount namespace; returns its path, or
    "" with the reason printed when the kernel or the sandbox refuses."""
    global root_base
    base = root_base = tempfile.mkdtemp(prefix="wattprobe-deb-root-")
    top = os.path.join(base, "root")
    steps = [["mount", "-t", "tmpfs", "-o", "mode=0755", "wattprobe-deb-test", base],
             ["mkdir", "-p", f"{base}/upper", f"{base}/work", top],
             ["mount", "-t", "overlay", "wattprobe-deb-test", "-o",
              f"lowerdir=/,upperdir={base}/upper,workdir={base}/work", top],
             ["mount", "--rbind", "/proc", f"{top}/proc"],
             ["mount", "--rbind", "/sys", f"{top}/sys"],
             ["mount", "--rbind", "/dev", f"{top}/dev"],
             ["mount", "-t", "tmpfs", "-o", "mode=0755", "wattprobe-deb-test-run", f"{top}/run"]]
    for step in steps:
        r = subprocess.run(step, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"note: no isolated root ({' '.join(step)}: {r.stderr.strip()})")
            return ""
    # The root starts as this machine is; it must start without the package's paths, so the
    # checks below see what dpkg did. Removing them here touches only the overlay.
    for path in TOUCHED:
        if os.path.lexists(top + path):
            print(f"note: {path} exists on this machine; removed in the isolated root only")
            if os.path.isdir(top + path) and not os.path.islink(top + path):
                shutil.rmtree(top + path)
            else:
                os.unlink(top + path)
    return top


def enter_private_namespace():
    """Re-runs this test in a private mount namespace, where its mounts are its own and vanish
    with it. Returns only when that is impossible (then the test goes on here, unisolated)."""
    if os.environ.get(NAMESPACE_ENV):
        return
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"note: no private mount namespace: {probe.stderr.strip()}")
        return
    sys.stdout.flush()
    env = dict(os.environ, **{NAMESPACE_ENV: "1"})
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                           sys.executable, os.path.abspath(__file__)], env)


def main():
    global root
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
    enter_private_namespace()
    if os.environ.get(NAMESPACE_ENV):
        root = make_isolated_root()
    if root:
        print(f"dpkg works in an isolated root at {root}; this machine is not touched")
    else:
        existing = [p for p in TOUCHED if os.path.lexists(p)]
        if existing:
            print(f"SKIPPED: no isolated root here, and {', '.join(existing)} already exist(s) on "
                  f"this machine: installing and purging the package would change or delete "
                  f"state this test did not create")
            return 77
        print("note: no isolated root; nothing of the package exists here, so the test installs "
              "and purges on this machine and removes only what it created")

    # postinst adds a system account, which purge keeps (Debian's practice for files it may
    # still own); on this machine the test removes the one it made.
    account_existed = subprocess.run(in_root(["getent", "passwd", "wattprobe"]),
                                     capture_output=True).returncode == 0
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
        check("adduser" in control, f"Depends lists adduser, which postinst runs: {control!r}")
        check("./usr/share/wattprobe/systemd/msr.conf\n" in contents,
              "the package ships the opt-in msr.conf drop-in, outside wattprobe.service.d")
        check("wattprobe.service.d" not in contents, "no drop-in is active by default")
        conf = [l for l in contents.splitlines() if l.endswith("./etc/wattprobe/wattprobe.conf")]
        check(conf and conf[0].startswith("-rw-r----- root/root"),
              f"the config file is root's, 0640 (it may hold a secret): {conf}")
        info = run(["dpkg-deb", "-I", deb, "conffiles"]).stdout
        check("/etc/wattprobe/wattprobe.conf" in info, "the config is a conffile")

        if root:
            os.makedirs(at("/tmp"), exist_ok=True)
            shutil.copy(deb, at("/tmp"))
            deb = "/tmp/" + os.path.basename(deb)
        try:
            r = run(in_root(["dpkg", "-i", deb]))
            check(r.returncode == 0, "dpkg -i succeeds")
            for path in INSTALLED:
                check(os.path.exists(at(path)), f"{path} exists after dpkg -i")
            check(os.path.isdir(at("/var/lib/wattprobe")), "postinst created /var/lib/wattprobe")
            user = subprocess.run(in_root(["getent", "passwd", "wattprobe"]), capture_output=True,
                                  text=True).stdout.strip()
            print(f"wattprobe account: {user!r}")
            fields = user.split(":")
            if check(len(fields) == 7, "postinst created the wattprobe account"):
                uid = int(fields[2])
                check(0 < uid < 1000, f"wattprobe is a system account (uid {uid})")
                check(fields[6] in ("/usr/sbin/nologin", "/bin/false"),
                      f"wattprobe has no login shell: {fields[6]}")
                st = os.stat(at("/var/lib/wattprobe"))
                check(st.st_uid == uid and st.st_mode & 0o777 == 0o700,
                      f"/var/lib/wattprobe is wattprobe's, 0700: uid {st.st_uid}, "
                      f"mode {oct(st.st_mode & 0o777)}")
            creds = at("/etc/wattprobe/credentials")
            check(os.path.isdir(creds) and os.stat(creds).st_mode & 0o777 == 0o700,
                  "postinst created /etc/wattprobe/credentials, 0700")
            for name in ("remote-write-token", "remote-write-password", "remote-write-api-key",
                         "grid-token"):
                path = os.path.join(creds, name)
                check(os.path.isfile(path) and os.stat(path).st_mode & 0o777 == 0o600 and
                      os.stat(path).st_uid == 0, f"{path}: root's, 0600, for LoadCredential=")
            check(not os.path.lexists(at(ENABLED_LINK)), "postinst did not enable the service")
            check("systemctl enable --now wattprobe" in r.stdout + r.stderr,
                  "postinst tells how to start the service")
            active = subprocess.run(in_root(["systemctl", "is-active", "wattprobe.service"]),
                                    capture_output=True, text=True)
            check(active.stdout.strip() != "active", "the service was not started")

            # doctor exits 0 (all good) or 1 (something missing, e.g. no RAPL here): both ran.
            doctor = run(in_root(["/usr/bin/wattprobe", "doctor"]), timeout=60)
            check(doctor.returncode in (0, 1), f"wattprobe doctor ran (exit {doctor.returncode})")
            check((doctor.stdout + doctor.stderr).strip() != "", "wattprobe doctor printed a report")

            r = run(in_root(["dpkg", "-r", "wattprobe"]))
            check(r.returncode == 0, "dpkg -r succeeds")
            check(not os.path.exists(at("/usr/bin/wattprobe")), "no /usr/bin/wattprobe after dpkg -r")
            check(not os.path.exists(at(INSTALLED[1])), "no unit file after dpkg -r")
            check(os.path.exists(at("/etc/wattprobe/wattprobe.conf")),
                  "dpkg -r keeps the conffile (Debian policy); purge removes it")
        finally:
            # Nothing of the package existed before (checked above, or removed in the isolated
            # root), so the purge removes only what this test created.
            r = run(in_root(["dpkg", "--purge", "wattprobe"]))
            check(r.returncode == 0, "dpkg --purge succeeds")
            if not root and not account_existed:
                run(["deluser", "--system", "--quiet", "wattprobe"])
            for path in INSTALLED + ["/etc/wattprobe", "/var/lib/wattprobe"]:
                check(not os.path.exists(at(path)), f"nothing left at {path} after purge")
    return report()


def report():
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        where = "in an isolated root" if root else "on this machine"
        print(f"OK: built, installed, ran doctor, removed and purged, {where}")
    return 1 if failures else 0


def remove_isolated_root():
    """The mounts would vanish with the namespace; the folder they were on would not."""
    if root_base:
        subprocess.run(["umount", "--recursive", "--lazy", root_base], capture_output=True)
        try:
            os.rmdir(root_base)
        except OSError as e:
            print(f"note: cannot remove {root_base}: {e}")


if __name__ == "__main__":
    try:
        code = main()
    finally:
        remove_isolated_root()
    sys.exit(code)
