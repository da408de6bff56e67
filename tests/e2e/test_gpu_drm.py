"""hwmon GPUs (amdgpu, i915, xe) split by the kernel's DRM busy time, end to end (issue 14): the
real binary with `--sources rapl_powercap,hwmon` on a fixture sysfs that has an amdgpu hwmon
chip (power1_average in µW, its `device` link naming the PCI address), and a procfs root whose
processes are two live burners in test-made cgroups: their `cgroup` and `comm` are the real
files, and each holds a DRM file (fd → /dev/dri/renderD128) whose fdinfo the test advances as
the kernel would, 75 % and 25 % of the GPU's busy time.
- the GPU's dynamic energy goes to the burners' workloads 3:1, labelled source="hwmon",
  split="busy_time", never by their CPU time (which the test makes 1:3, the other way round);
- idle + workloads + unattributed = measured for the gpu domain;
- when no process adds busy time, the GPU's dynamic energy is unattributed and
  wattprobe_gpu_split_info says why."""

import os
import shutil
import subprocess
import tempfile
import threading
import time

from wattprobe_e2e import (Cgroups, near, scrape, series, start_agent, start_driver, TOOLS,
                           value, wait_ticks)

PDEV = "0000:03:00.0"
GPU_WATTS = 60.0
GPU_IDLE = 20.0
GPU_CAP = 203.0  # power1_cap; power1_cap_max (the largest cap one may set) is higher


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def amdgpu_chip(sysfs):
    """An amdgpu hwmon chip as the kernel lays it out: power1_average and its power cap
    (power1_cap, power1_cap_max) in µW, a label, and the `device` link to its PCI device."""
    dev = os.path.join(sysfs, "sys/devices/pci0000:00", PDEV)
    hw = os.path.join(dev, "hwmon/hwmon3")
    os.makedirs(hw)
    write_atomic(os.path.join(hw, "name"), "amdgpu\n")
    write_atomic(os.path.join(hw, "power1_average"), f"{int(GPU_WATTS * 1e6)}\n")
    write_atomic(os.path.join(hw, "power1_label"), "PPT\n")
    write_atomic(os.path.join(hw, "power1_cap"), f"{int(GPU_CAP * 1e6)}\n")
    write_atomic(os.path.join(hw, "power1_cap_max"), f"{int(241 * 1e6)}\n")
    os.symlink("../../../" + PDEV, os.path.join(hw, "device"))
    cls = os.path.join(sysfs, "sys/class/hwmon")
    os.makedirs(cls, exist_ok=True)
    os.symlink(os.path.relpath(hw, cls), os.path.join(cls, "hwmon3"))


def fdinfo(client, busy_ns):
    # amdgpu's fdinfo (Documentation/gpu/drm-usage-stats.rst): busy ns per engine.
    return (f"pos:\t0\nflags:\t02100002\nmnt_id:\t25\ndrm-driver:\tamdgpu\n"
            f"drm-pdev:\t{PDEV}\ndrm-client-id:\t{client}\n"
            f"drm-engine-gfx:\t{busy_ns} ns\ndrm-engine-compute:\t0 ns\n")


class FakeProcfs:
    """A procfs root: every non-process entry of the real /proc linked in (stat, self, ...),
    and for each given live pid its real cgroup and comm plus one DRM file whose busy time
    advances by `rates[pid]` ns per ns while `busy` is set."""

    def __init__(self, pids):
        self.root = tempfile.mkdtemp(prefix="wattprobe-procfs-")
        proc = os.path.join(self.root, "proc")
        os.mkdir(proc)
        for name in os.listdir("/proc"):
            if not name.isdigit():
                os.symlink(os.path.join("/proc", name), os.path.join(proc, name))
        self.busy_ns = {}
        self.files = {}
        for i, pid in enumerate(pids):
            d = os.path.join(proc, str(pid))
            os.makedirs(os.path.join(d, "fd"))
            os.makedirs(os.path.join(d, "fdinfo"))
            for f in ("cgroup", "comm", "stat", "status"):
                os.symlink(f"/proc/{pid}/{f}", os.path.join(d, f))
            os.symlink("/dev/dri/renderD128", os.path.join(d, "fd", "5"))
            self.files[pid] = (os.path.join(d, "fdinfo", "5"), 40 + i)
            self.busy_ns[pid] = 1_000_000
            write_atomic(self.files[pid][0], fdinfo(40 + i, self.busy_ns[pid]))
        self.rates = {}
        self.busy = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._advance, daemon=True)
        self.thread.start()

    def _advance(self):
        step = 0.05
        while not self.done.wait(step):
            if not self.busy.is_set():
                continue
            for pid, rate in self.rates.items():
                self.busy_ns[pid] += int(rate * step * 1e9)
                path, client = self.files[pid]
                write_atomic(path, fdinfo(client, self.busy_ns[pid]))

    def close(self):
        self.done.set()
        self.thread.join()
        shutil.rmtree(self.root, ignore_errors=True)


def gpu_sum(m, name, **kw):
    return sum(v for _, v in series(m, name, domain="gpu", **kw))


def main():
    sysfs = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    groups = Cgroups("render.service", "encode.service")
    burners = []
    procfs = None
    try:
        # CPU 1:3 against GPU 3:1, so a split by CPU time would be visibly wrong.
        for name, ratio in (("render.service", "0.2"), ("encode.service", "0.6")):
            burners.append(subprocess.Popen(
                [os.path.join(TOOLS, "cpu_burner"), "--busy-ratio", ratio, "--seconds", "300",
                 "--cgroup", groups.paths[name]]))
        time.sleep(0.3)
        render, encode = (b.pid for b in burners)
        procfs = FakeProcfs([render, encode])
        procfs.rates = {render: 0.6, encode: 0.2}
        with start_driver(sysfs, "--scenario", "one_socket", "--watts", "package=20"):
            amdgpu_chip(sysfs)
            with start_agent("--sysfs-root", sysfs, "--procfs-root", procfs.root, "--sources",
                             "rapl_powercap,hwmon", "--interval", "1s", "--idle-watts",
                             f"gpu={GPU_IDLE}") as agent:
                procfs.busy.set()
                wait_ticks(agent, 2)  # a tick wholly inside the busy stretch
                m0 = scrape(agent.url)
                wait_ticks(agent, 6)
                m1 = scrape(agent.url)

                def delta(name, **kw):
                    return (sum(v for _, v in series(m1, name, **kw)) -
                            sum(v for _, v in series(m0, name, **kw)))

                r = delta("wattprobe_workload_gpu_energy_joules_total", workload="render.service",
                          source="hwmon", device="0", split="busy_time")
                e = delta("wattprobe_workload_gpu_energy_joules_total", workload="encode.service",
                          source="hwmon", device="0", split="busy_time")
                print(f"gpu energy by DRM busy time: render {r:.2f} J, encode {e:.2f} J")
                assert r > 0 and e > 0, "the burners got no GPU energy"
                near(r / e, 3.0, 0.05, "GPU energy ratio vs DRM busy-time ratio 3:1")
                node = delta("wattprobe_node_energy_joules_total", domain="gpu", source="hwmon")
                workloads = delta("wattprobe_workload_energy_joules_total", domain="gpu")
                idle = delta("wattprobe_node_idle_energy_joules_total", domain="gpu")
                unattributed = delta("wattprobe_node_unattributed_energy_joules_total",
                                     domain="gpu")
                near(workloads + idle + unattributed, node, 1e-9,
                     "gpu idle + workloads + unattributed vs measured")
                near(idle, node * GPU_IDLE / GPU_WATTS, 0.02, "gpu idle share at --idle-watts")
                near(r + e, node - idle, 0.05, "the busy GPU's dynamic energy went to its clients")
                assert value(m1, "wattprobe_gpu_split_info", source="hwmon", device="0",
                             split="busy_time") == 1
                assert value(m1, "wattprobe_agent_conservation_violations_total") == 0
                cap = value(m1, "wattprobe_gpu_power_limit_watts", source="hwmon", device="0")
                assert cap == GPU_CAP, f"power limit {cap} W, power1_cap says {GPU_CAP} W"
                print(f"ok: wattprobe_gpu_power_limit_watts is power1_cap's {cap:.0f} W")

                # Nobody adds busy time: the dynamic energy is unattributed, and said why.
                procfs.busy.clear()
                wait_ticks(agent, 3)
                m2 = scrape(agent.url)
                wait_ticks(agent, 3)
                m3 = scrape(agent.url)
                split = [l for l, _ in series(m3, "wattprobe_gpu_split_info", source="hwmon")]
                assert split and split[0]["split"] == "none" and "busy time" in split[0]["why"], \
                    split
                gave = (sum(v for _, v in series(m3, "wattprobe_workload_gpu_energy_joules_total")) -
                        sum(v for _, v in series(m2, "wattprobe_workload_gpu_energy_joules_total")))
                un = (gpu_sum(m3, "wattprobe_node_unattributed_energy_joules_total") -
                      gpu_sum(m2, "wattprobe_node_unattributed_energy_joules_total"))
                print(f"idle GPU: {gave:.3f} J to workloads, {un:.2f} J unattributed")
                assert gave == 0, "an idle GPU's energy was split by something else"
                assert un > 0
                print(f"ok: {split[0]['why']}")
    finally:
        for b in burners:
            b.kill()
            b.wait()
        if procfs:
            procfs.close()
        groups.close()
        shutil.rmtree(sysfs, ignore_errors=True)


if __name__ == "__main__":
    main()
