"""A real Prometheus server scrapes the agent running on a driven fixture tree; PromQL
rate(wattprobe_node_energy_joules_total[...]) returns the driver's wattage within 2 % (issue 2).
Prometheus scrapes with gzip, which the agent sends as one gzip member joined from two pieces
(issue 18): both the per-scrape exposer_* lines and the snapshot's must arrive."""

import shutil
import tempfile

from wattprobe_e2e import PrometheusServer, near, start_agent, start_driver, wait_ticks, wait_until


def main():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    try:
        with start_driver(root, "--scenario", "two_socket_with_dram", "--watts",
                          "package=42,dram=7", "--period-ms", "20"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval", "500ms",
                         "--accounting", "procfs") as agent:
            target = agent.url.split("//")[1].split("/")[0]
            with PrometheusServer([target], scrape_interval="1s") as prom:
                # The rate's 8 s window full of the agent's ticks and of Prometheus's scrapes;
                # counted, not timed, so a busy host only makes the wait longer.
                wait_ticks(agent, 16, timeout=40)

                def window_full():
                    counts = prom.query('count_over_time(wattprobe_node_energy_joules_total'
                                        '{domain="package"}[8s])')
                    return len(counts) == 2 and all(float(c["value"][1]) >= 7 for c in counts)
                wait_until(window_full, 60, "8 s of scrapes of both package series in Prometheus")
                # One tick delayed by a busy host moves the one rate whose window edge it sits
                # on: the median of rates read a scrape apart is what a dashboard shows.
                package, dram = {}, []
                for _ in range(5):
                    wait_ticks(agent, 2)
                    result = prom.query(
                        'rate(wattprobe_node_energy_joules_total{domain="package"}[8s])')
                    assert len(result) == 2, f"expected two package series, got {result}"
                    for r in result:
                        package.setdefault(r["metric"]["socket"], []).append(float(r["value"][1]))
                    got = prom.query(
                        'sum(rate(wattprobe_node_energy_joules_total{domain="dram"}[8s]))')
                    dram.append(float(got[0]["value"][1]))
                for socket, rates in sorted(package.items()):
                    print(f"package socket {socket} rates: {[round(r, 3) for r in rates]}")
                    near(sorted(rates)[len(rates) // 2], 42.0, 0.02,
                         f"PromQL rate of package socket {socket} (median of {len(rates)})")
                print(f"dram rates: {[round(r, 3) for r in dram]}")
                near(sorted(dram)[len(dram) // 2], 14.0, 0.02,
                     f"PromQL rate of dram, both sockets (median of {len(dram)})")
                scrapes = prom.query('exposer_scrapes_total{job="wattprobe"}')
                assert len(scrapes) == 1 and float(scrapes[0]["value"][1]) > 0, scrapes
                print(f"ok: Prometheus read exposer_scrapes_total {scrapes[0]['value'][1]} "
                      "and the snapshot's series from the same gzip body")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
