"""`wattprobe top` (issue 8) in a real terminal emulator, tmux, against the real agent on a driven
powercap tree, with CPU burners in a test-made cgroup:
- reading the agent's /metrics: the burners' workload is among the top rows by watts, with its
  CO2e rate, CPU share and measured mark; keys change the sort and the header's mark; a resize
  redraws for the new width; `q` exits 0 and leaves the terminal as it found it (main screen,
  cursor shown, canonical mode and echo on);
- with no agent at the URL the screen says so and hints at --standalone; Ctrl-C exits 0, restored;
- --standalone measures in this process from the same tree; SIGTERM exits 143, restored."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

from wattprobe_e2e import (BIN, TOOLS, Cgroups, Tmux, free_port, scaled, skip, start_agent,
                           start_driver, wait_ticks)

BURNER = "top-burner.service"


class Top:
    """`wattprobe top ARGS` in an 80x24 tmux pane, through a shell that records the exit status
    and the terminal modes (stty) top leaves behind."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="wattprobe-e2e-top-")
        self.status_file = os.path.join(self.dir, "status")
        self.modes_file = os.path.join(self.dir, "stty")
        command = " ".join(shlex.quote(a) for a in [BIN, "top", *args])
        # The shell stays after top: tmux hides the cursor of a dead pane, so the state top left
        # is read while the pane still lives.
        self.tmux = Tmux(f"{command}; echo $? > {self.status_file}; "
                         f"stty -a > {self.modes_file}.new; mv {self.modes_file}.new "
                         f"{self.modes_file}; sleep 600")

    def text(self, rows):
        return "\n".join(rows)

    def table(self, rows):
        """(header, [(name, cells)]) of the workload table on the screen."""
        at = next((i for i, r in enumerate(rows) if "WORKLOAD" in r and "KIND" in r), None)
        if at is None:
            return "", []
        out = []
        for r in rows[at + 1:]:
            if "q quit" in r or not r.strip():
                break
            cells = r.split()
            out.append((cells[0], cells))
        return rows[at], out

    def pid(self):
        """top's pid: the child of the pane's shell."""
        shell = self.tmux.show("#{pane_pid}")
        with open(f"/proc/{shell}/task/{shell}/children") as f:
            children = f.read().split()
        assert len(children) == 1, f"expected one child of the pane's shell, found {children}"
        return int(children[0])

    def ended_restored(self, want_status):
        """Waits for top to end; checks its status and that the terminal is as it was."""
        deadline = time.time() + scaled(10)
        while not os.path.exists(self.modes_file):
            assert time.time() < deadline, "top did not end; the screen was:\n" + "\n".join(
                self.tmux.screen())
            time.sleep(0.1)
        with open(self.status_file) as f:
            status = int(f.read())
        assert status == want_status, f"top exited {status}, expected {want_status}"
        with open(self.modes_file) as f:
            modes = f.read().split()
        for mode in ("icanon", "echo", "isig", "icrnl", "ixon"):
            assert mode in modes and f"-{mode}" not in modes, f"{mode} not restored: {modes}"
        assert self.tmux.show("#{alternate_on}") == "0", "top left the alternate screen on"
        assert self.tmux.show("#{cursor_flag}") == "1", "top left the cursor hidden"
        print(f"ok: top exited {status}; main screen, cursor shown, icanon echo isig back on")

    def close(self):
        self.tmux.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def burner_row(top, rows, within):
    header, table = top.table(rows)
    names = [n for n, _ in table[:within]]
    if BURNER not in names:
        return None
    cells = dict(table)[BURNER]
    # name kind watts co2e cpu src: a row with rates has numbers in every column.
    if len(cells) != 6 or "-" in cells[2:5]:
        return None
    return cells


def read_agent(agent_url):
    with Top("--url", agent_url) as top:
        rows = top.tmux.wait_for(lambda rows: burner_row(top, rows, 3) is not None, timeout=20,
                                 what=f"{BURNER} among the top 3 rows, with its rates")
        cells = burner_row(top, rows, 3)
        header, table = top.table(rows)
        print("\n".join(rows))
        assert "*WATTS" in header, header
        watts, co2e, cpu = (float(c) for c in cells[2:5])
        assert watts > 0 and co2e > 0 and cpu > 0, cells
        assert cells[5] == "meas", f"the powercap tree is a measurement: {cells}"
        assert re.search(r"host +[0-9.]+ W measured \(package\)", top.text(rows)), rows[1]
        print(f"ok: {BURNER} in the top 3 by watts: {watts} W, {co2e} g/h, {cpu} % CPU, measured")

        top.tmux.keys("n")
        rows = top.tmux.wait_for(lambda rows: "*WORKLOAD" in top.table(rows)[0], what="name sort")
        names = [n for n, _ in top.table(rows)[1]]
        assert names == sorted(names), f"not in name order: {names}"
        top.tmux.keys("c")
        rows = top.tmux.wait_for(lambda rows: "*CPU %" in top.table(rows)[0], what="CPU sort")
        shares = [float(c[4]) for _, c in top.table(rows)[1] if c[4] != "-"]
        assert shares == sorted(shares, reverse=True), f"not by CPU share: {shares}"
        print(f"ok: n sorts by name {names}, c by CPU share {shares}")

        top.tmux.resize(60, 16)
        rows = top.tmux.wait_for(
            lambda rows: len(rows) == 16 and top.table(rows)[0].rstrip().endswith("SRC")
            and any("q quit" in r for r in rows), what="a frame redrawn for 60x16")
        print("ok: redrawn for 60x16 after the resize")

        top.tmux.keys("q")
        top.ended_restored(0)


def unreachable():
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with Top("--url", url, "--interval", "500ms") as top:
        rows = top.tmux.wait_for(
            lambda rows: "cannot read" in " ".join(rows) and "--standalone" in " ".join(rows),
            what="the unreachable agent's message")
        print("ok: " + " ".join(r.strip() for r in rows if r.strip())[:200])
        top.tmux.keys("C-c")
        top.ended_restored(0)


def standalone(root, state):
    with Top("--standalone", "--sysfs-root", root, "--sources", "rapl_powercap",
             "--state-dir", state, "--interval", "500ms") as top:
        rows = top.tmux.wait_for(lambda rows: burner_row(top, rows, 3) is not None, timeout=20,
                                 what=f"{BURNER} among the top 3 rows in standalone mode")
        assert "standalone" in rows[0], rows[0]
        assert re.search(r"host +[0-9.]+ W measured \(package\)", top.text(rows)), rows[1]
        print(f"ok: standalone shows {BURNER}: {burner_row(top, rows, 3)}")
        os.kill(top.pid(), signal.SIGTERM)
        top.ended_restored(128 + signal.SIGTERM)


def usage():
    """Bad options stop top before it takes the terminal: exit 2 and a line naming them."""
    for args, needles in ((["--interval", "50ms"], ["--interval", '"50ms"', "100ms"]),
                          (["--sort", "joules"], ["--sort", '"joules"', "watts, cpu, co2e or name"]),
                          (["--url", "ftp://host/metrics"], ["--url", "http://"]),
                          (["--sysfs-root", "/tmp"], ["--sysfs-root", "--standalone"]),
                          (["--standalone", "--url", "http://127.0.0.1:1/metrics"], ["exclude"]),
                          (["--standalone", "--listen", "127.0.0.1:0"], ["--listen"]),
                          (["--standalone", "--sysfs-root", "/does/not/exist"], ["/does/not/exist"])):
        r = subprocess.run([BIN, "top", *args], capture_output=True, text=True, timeout=scaled(10))
        assert r.returncode == 2, f"top {args}: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.stderr.count("\n") == 1 and all(n in r.stderr for n in needles), r.stderr
    r = subprocess.run([BIN, "top", "--help"], capture_output=True, text=True, timeout=scaled(10))
    assert r.returncode == 0 and all(o in r.stdout for o in ("--url", "--standalone", "--interval",
                                                               "--sort")), r.stdout
    r = subprocess.run([BIN, "top"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=scaled(10))
    assert r.returncode == 1 and "needs a terminal" in r.stderr, (r.returncode, r.stderr)
    print("ok: bad options exit 2 naming the option; --help lists the options; no terminal exits 1")


def main():
    if os.geteuid() != 0:
        skip("needs root: creates a cgroup (and loads eBPF for accounting)")
    if shutil.which("tmux") is None:
        skip("tmux is not installed (Debian package tmux)")
    started = time.time()
    usage()
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    try:
        with Cgroups(BURNER) as groups, \
             start_driver(root, "--scenario", "one_socket", "--watts", "package=20",
                          "--follow-load", "idle=20,k=60", "--period-ms", "50"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap") as agent:
            # Two busy processes, so the burners' workload stands out on a shared host too.
            # Killed below; long enough to outlast all three parts on a slow host.
            burners = [subprocess.Popen([os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", "1",
                                         "--seconds", "600", "--cgroup", groups.paths[BURNER]])
                       for _ in range(2)]
            try:
                # top's rates need two of the agent's ticks with the burners running.
                wait_ticks(agent, 2)
                read_agent(agent.url)
                unreachable()
                standalone(root, state)
            finally:
                for b in burners:
                    b.kill()
                    b.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    print(f"1 passed, 0 failed ({time.time() - started:.1f} s)")


if __name__ == "__main__":
    main()
