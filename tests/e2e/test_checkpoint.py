"""Durable totals with the real binary on a driven powercap tree (issue 6):
- SIGTERM, then restart: the restarted agent's first tick shows every restored _total exactly as
  it was at stop, and the totals grow on from there;
- kill -9 at random moments, several rounds, restart each time: every total after restart is at
  least its value in the last checkpoint, and no checkpointed total ever goes down;
- a bit-flipped checkpoint at start: the agent starts on checkpoint.pb.prev (exactly its totals),
  counts the damage, and keeps the bad file aside;
- a checkpoint of a newer format: the agent refuses to start and leaves the file alone.
The checkpoint's figures are read with `wattprobe checkpoint-dump`, which prints them as the
/metrics series they continue."""

import glob
import os
import random
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib

from wattprobe_e2e import (USER_ARGS, BIN, parse_metrics, scaled, scrape, start_agent, start_driver,
                           value, wait_checkpoint, wait_ticks)

TICK = "200ms"


def restored(metrics):
    """{(name, labels without `measured`): value} of the totals a checkpoint carries: every
    wattprobe _total except the agent's own process counters (wattprobe_agent_*) and the opt-in
    per-process series, which belong to one run of the agent."""
    out = {}
    for name, labels, v in metrics:
        if (name.startswith("wattprobe_") and name.endswith("_total")
                and not name.startswith(("wattprobe_agent_", "wattprobe_process_"))):
            key = (name, tuple(sorted((k, x) for k, x in labels.items() if k != "measured")))
            out[key] = v
    return out


def dump(state):
    p = subprocess.run([BIN, "checkpoint-dump", "--state-dir", state], capture_output=True,
                       text=True, timeout=scaled(30))
    assert p.returncode == 0, f"checkpoint-dump: exit {p.returncode}: {p.stderr}"
    totals = restored(parse_metrics(p.stdout))
    assert totals, f"checkpoint-dump printed no totals:\n{p.stdout}"
    return totals


def first_snapshot(agent):
    """The first published snapshot (start_agent has seen it published; with a long interval it
    is still the one served)."""
    deadline = time.time() + scaled(10)
    while time.time() < deadline:
        m = scrape(agent.url)
        if any(n == "wattprobe_node_energy_joules_total" for n, _, _ in m):
            return m
        time.sleep(0.02)
    raise AssertionError("no tick within 10 s")


def at_least(after, before, what):
    """Every series of `before` is in `after` with a value >= its value there."""
    for key, v in before.items():
        assert key in after, f"{what}: {key} is gone"
        assert after[key] >= v, f"{what}: {key} went down from {v!r} to {after[key]!r}"


def agent_args(root, interval=TICK):
    return ["--sysfs-root", root, "--sources", "rapl_powercap", "--accounting", "procfs",
            "--interval", interval, "--checkpoint-interval", "1s"]


def sigterm_continues_exactly(root, state):
    with start_agent(*agent_args(root), state_dir=state) as agent:
        wait_ticks(agent, 10)
        wait_checkpoint(agent)
        before = restored(scrape(agent.url))
        t0 = time.time()
        assert agent.stop(signal.SIGTERM) == 0, agent.stderr()
        stop_s = time.time() - t0
    at_stop = dump(state)
    # The last write happens after the loop ends, so it holds the last tick's totals.
    at_least(at_stop, before, "checkpoint at SIGTERM vs the last scrape")
    node = ("wattprobe_node_energy_joules_total",
            (("domain", "package"), ("socket", "0"), ("source", "rapl_powercap")))
    assert at_stop[node] > 0, at_stop
    kinds = {name for name, _ in at_stop}
    for want in ("wattprobe_node_energy_joules_total", "wattprobe_node_idle_energy_joules_total",
                 "wattprobe_workload_energy_joules_total", "wattprobe_workload_cpu_seconds_total",
                 "wattprobe_workload_operational_co2e_grams_total",
                 "wattprobe_workload_embodied_co2e_grams_total",
                 "wattprobe_node_idle_embodied_co2e_grams_total"):
        assert want in kinds, f"{want} is not in the checkpoint: {sorted(kinds)}"
    print(f"ok: SIGTERM stopped in {stop_s:.2f} s; the checkpoint holds {len(at_stop)} totals, "
          f"each >= the last scrape")

    # A long interval keeps the first tick's snapshot in place while it is read. That tick only
    # primes the counters (no energy, no CPU time): every total must be exactly the checkpoint's.
    with start_agent(*agent_args(root, interval="5s"), state_dir=state) as agent:
        first = restored(first_snapshot(agent))
        for key, v in at_stop.items():
            assert key in first, f"{key} was not restored"
            assert first[key] == v, f"{key}: restored {first[key]!r}, checkpoint {v!r}"
        print(f"ok: after restart all {len(at_stop)} totals equal the checkpoint exactly "
              f"(e.g. node package {first[node]:.6f} J)")
        assert agent.stop(signal.SIGTERM) == 0, agent.stderr()

    t0 = time.time()
    with start_agent(*agent_args(root), state_dir=state) as agent:
        # The first tick primes the counters; two more each add an interval's energy at least.
        wait_ticks(agent, 2)
        later = restored(scrape(agent.url))
        lived = time.time() - t0
        at_least(later, at_stop, "two ticks after restart")
        grew = later[node] - at_stop[node]
        # 30 W for at least one tick and at most the agent's life (the driver's 20 ms steps
        # aside): the total continues, not restarts.
        assert 30 * 0.2 * 0.9 <= grew <= 30 * (lived * 1.1 + 0.05), \
            f"node package grew {grew} J in {lived:.2f} s"
        print(f"ok: node package continued from {at_stop[node]:.3f} J, +{grew:.3f} J in "
              f"{lived:.2f} s")
        assert agent.stop(signal.SIGTERM) == 0, agent.stderr()


def kill9_never_loses_a_checkpoint(root, state, rounds=6):
    seed = int(os.environ.get("WATTPROBE_TEST_SEED", time.time()))
    rng = random.Random(seed)
    print(f"kill -9 rounds with seed {seed} (WATTPROBE_TEST_SEED reproduces them)")
    last = dump(state)
    for r in range(rounds):
        with start_agent(*agent_args(root), state_dir=state) as agent:
            first = restored(first_snapshot(agent))
            at_least(first, last, f"round {r}: first tick after restart vs the last checkpoint")
            # Random moments: inside a tick, inside a checkpoint write, between them.
            deadline = time.time() + rng.uniform(0.2, 2.6)
            prev = first
            while time.time() < deadline:
                time.sleep(min(rng.uniform(0.05, 0.4), max(0, deadline - time.time())))
                now = restored(scrape(agent.url))
                at_least(now, prev, f"round {r}: scrape vs the one before")
                prev = now
            agent.proc.kill()
            agent.proc.wait()
        leftovers = sorted(os.path.basename(p) for p in glob.glob(os.path.join(state, "checkpoint*")))
        ckpt = dump(state)
        at_least(ckpt, last, f"round {r}: checkpoint after kill -9 vs the one before")
        print(f"ok: round {r}: killed after {agent_lived(first, ckpt):.3f} J of package energy; "
              f"files {leftovers}")
        last = ckpt
    with start_agent(*agent_args(root), state_dir=state) as agent:
        at_least(restored(first_snapshot(agent)), last, "after the last kill -9")
        assert agent.stop(signal.SIGTERM) == 0, agent.stderr()
    print(f"ok: {rounds} kill -9 rounds: no checkpointed total went down, and every restart "
          f"continued from the last checkpoint")


def agent_lived(first, ckpt):
    key = ("wattprobe_node_energy_joules_total",
           (("domain", "package"), ("socket", "0"), ("source", "rapl_powercap")))
    return ckpt.get(key, 0) - first.get(key, 0)


def corrupt_current_uses_prev(root, state):
    current = os.path.join(state, "checkpoint.pb")
    prev = current + ".prev"
    assert os.path.exists(current) and os.path.exists(prev), os.listdir(state)
    scratch = tempfile.mkdtemp(prefix="wattprobe-state-prev-")
    try:
        shutil.copy(prev, os.path.join(scratch, "checkpoint.pb"))
        want = dump(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with open(current, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x04
    with open(current, "wb") as f:
        f.write(data)

    with start_agent(*agent_args(root, interval="5s"), state_dir=state) as agent:
        m = first_snapshot(agent)
        first = restored(m)
        for key, v in want.items():
            assert first.get(key) == v, f"{key}: restored {first.get(key)!r}, .prev has {v!r}"
        errors = value(m, "wattprobe_agent_checkpoint_errors_total", reason="checksum")
        assert errors == 1, f"checksum errors: {errors}"
        err = agent.stderr()
        assert f"{current} is unusable: checksum" in err, err
        assert "using the previous good one" in err, err
        aside = glob.glob(current + ".corrupt-*")
        assert len(aside) == 1, os.listdir(state)
        with open(aside[0], "rb") as f:
            assert f.read() == bytes(data), "the file kept aside is not the damaged one"
        assert agent.stop(signal.SIGTERM) == 0, agent.stderr()
    print(f"ok: a bit-flipped checkpoint: started on .prev ({len(want)} totals exactly), "
          f"counted reason=checksum, kept as {os.path.basename(aside[0])}")


def newer_format_refuses_start(root, state):
    current = os.path.join(state, "checkpoint.pb")
    with open(current, "rb") as f:
        data = f.read()
    payload = data[20:]
    version = struct.unpack("<I", data[4:8])[0] + 1  # one past what this agent writes
    head = struct.pack("<IQ", version, len(payload))
    newer = b"WPCK" + head + struct.pack("<I", zlib.crc32(head + payload)) + payload
    with open(current, "wb") as f:
        f.write(newer)
    p = subprocess.run([BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state,
                        *agent_args(root), *USER_ARGS], capture_output=True, text=True,
                       timeout=scaled(30))
    assert p.returncode == 1, f"exit {p.returncode}: {p.stderr}"
    assert f"format version {version}" in p.stderr and "refusing to start" in p.stderr, p.stderr
    with open(current, "rb") as f:
        assert f.read() == newer, "the newer checkpoint was touched"
    print("ok: a newer-format checkpoint: exit 1, " +
          [l for l in p.stderr.splitlines() if "refusing" in l][0])


def main():
    started = time.time()
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    try:
        with start_driver(root, "--scenario", "one_socket", "--watts", "package=30",
                          "--period-ms", "20"):
            sigterm_continues_exactly(root, state)
            kill9_never_loses_a_checkpoint(root, state)
            # A clean stop after at least two checkpoints leaves both files.
            with start_agent(*agent_args(root), state_dir=state) as agent:
                wait_checkpoint(agent)
                assert agent.stop(signal.SIGTERM) == 0, agent.stderr()
            corrupt_current_uses_prev(root, state)
            newer_format_refuses_start(root, state)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    print(f"ok: checkpoint e2e in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
