#!/usr/bin/env python3
"""Writes tests/data/nvml/synthetic-instep-50-30-20.jsonl: three workers in step with NVML's
sampling, the case no split from NVML's samples and utilisation can get right (issue 27). The
recorded in-step run is not among tests/data/nvml, so this one is made from the statistics of
those that are (tests/data/nvml/h200-*.jsonl; their keys in tests/support/fake_nvml/fake_nvml.cc
and docs/methodology.md, "GPU energy and its split"):

- one read every 100 ms; the energy counter moves every read: idle ~120 W, busy ~120 W + 5.5 W
  per point of utilisation (S1 of the phased trace: 679 W at 84.7 %, of the random one: 544 W at
  68.2 %);
- util_gpu busy ~80 % (the recorded in-step run: 79.9 %), with the traces' ±3 point noise;
- one per-process sample every ~200 ms, naming one process; its smUtil follows the device's
  utilisation with a ~6 s lag, as the recorded samples do (the phased trace's A climbs from 4 to
  86 over 14 s), which makes the phase mean of the named samples ~56 % (recorded: 56.4 of 79.9);
  idle context holders are named at 1 %;
- `matmuls`: ~3,600 identical matmuls per busy second at 80 % (the traces: 3,080 to 4,340), split
  50.2 / 30.0 / 19.8 (the recorded in-step run's truth).

Phases (the layout of the shared traces, so one replay covers all three): idle 5 s; S1 the three
in step, every sample naming B (the 30 % worker), 20 s; idle 5 s; S2 the same work, every sample
naming A (the 50 % worker), 20 s; idle 5 s. Deterministic (seeded): run it again and the file is
the same."""

import json
import math
import os
import random

OUT = os.path.join(os.path.dirname(__file__), "../../data/nvml/synthetic-instep-50-30-20.jsonl")
PIDS = {"A": 440, "B": 441, "C": 442}
SHARES = {"A": 0.502, "B": 0.300, "C": 0.198}
PHASES = {"idle0": [0, 5], "S1_instep_named_B": [5, 25], "idle1": [25, 30],
          "S2_instep_named_A": [30, 50], "idle2": [50, 55]}
NAMED = {"S1_instep_named_B": "B", "S2_instep_named_A": "A"}
TAU_S = 6.0           # lag of a process's smUtil behind the work
RATE_AT_80 = 3600.0   # matmuls per second at 80 % utilisation


def phase_of(t):
    for name, (a, b) in PHASES.items():
        if a <= t < b:
            return name
    return "idle2"


def main():
    rng = random.Random(27)
    header = {
        "format": "nvml-trace/1",
        "device": {"index": 0, "name": "NVIDIA H200",
                   "uuid": "GPU-00000000-0000-0000-0000-000000000027", "driver": "580.159.04",
                   "power_limit_mw": 700000, "mig_mode": 0, "accounting_mode": 0},
        "period_s": 0.1,
        "workers": {str(p): l for l, p in PIDS.items()},
        "truth": {"phases": PHASES,
                  "plan": "synthetic (tests/support/nvml_traces/make_instep_trace.py): three "
                          "workers busy 50/30/20 % of every 100 ms in step with the sampling; "
                          "every sample names B in S1 and A in S2",
                  "note": "matmuls is each worker's cumulative count of identical matmuls: a "
                          "phase's count deltas are the true shares of its dynamic GPU energy"}}
    energy = 2_961_097.0
    sm = {l: 1.0 for l in PIDS}
    count = {l: 0.0 for l in PIDS}
    power = 120.0
    next_sample = 0.0
    ts0 = 1_795_751_058_057_248
    lines = [json.dumps(header)]
    for k in range(551):
        t = round(k * 0.1 + 0.0001, 4)
        phase = phase_of(t)
        busy = phase in NAMED
        util = min(100, max(0, round(rng.gauss(80, 3)))) if busy else 0
        watts = 120 + 5.5 * util + rng.gauss(0, 8)
        power += (watts - power) * 0.1  # the 1 s average NVML's power_mw reports
        energy += watts * 100  # mJ over 100 ms
        if busy:
            for l, s in SHARES.items():
                count[l] += RATE_AT_80 * util / 80 * s * 0.1 * rng.uniform(0.97, 1.03)
        named = NAMED.get(phase, "B")
        for l in PIDS:
            target = util if (busy and l == named) else (1 if l == named else 0)
            sm[l] += (target - sm[l]) * (1 - math.exp(-0.1 / TAU_S))
        samples = []
        if t >= next_sample:
            next_sample = t + 0.15
            ts = ts0 + int(t * 1e6) + rng.randint(-300, 300)
            samples.append([PIDS[named], ts, max(1, round(sm[named])) if busy or named == "B" else 1,
                            0])
        lines.append(json.dumps({
            "t": t, "energy_mj": int(energy), "power_mw": int(power * 1000),
            "power_instant_mw": int(watts * 1000), "util_gpu": util,
            "running": list(PIDS.values()), "samples": samples,
            "matmuls": {l: int(c) for l, c in count.items()}}))
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
