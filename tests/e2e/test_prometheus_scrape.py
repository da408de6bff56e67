"""A real Prometheus server scrapes the agent running on a driven fixture tree; PromQL
rate(wattprobe_node_energy_joules_total[...]) returns the driver's wattage within 2 % (issue 2).
Prometheus scrapes with gzip, which the agent sends as one gzip member joined from two pieces
(issue 18): both the per-scrape exposer_* lines and the snapshot's must arrive."""

import shutil
import tempfile
import time

from wattprobe_e2e import PrometheusServer, near, start_agent, start_driver


def main():
    root = tempfile.mkdtemp(prefix="wattprobe-sysfs-")
    try:
        with start_driver(root, "--scenario", "two_socket_with_dram", "--watts",
                          "package=42,dram=7", "--period-ms", "20"), \
             start_agent("--sysfs-root", root, "--sources", "rapl_powercap", "--interval", "500ms",
                         "--accounting", "procfs") as agent:
            target = agent.url.split("//")[1].split("/")[0]
            with PrometheusServer([target], scrape_interval="1s") as prom:
                deadline = time.time() + 60
                result = []
                while time.time() < deadline:
                    result = prom.query(
                        'rate(wattprobe_node_energy_joules_total{domain="package"}[8s])')
                    if len(result) == 2 and time.time() > deadline - 45:
                        break
                    time.sleep(1)
                assert len(result) == 2, f"expected two package series, got {result}"
                for r in result:
                    near(float(r["value"][1]), 42.0, 0.02,
                         f"PromQL rate of package socket {r['metric']['socket']}")
                dram = prom.query(
                    'sum(rate(wattprobe_node_energy_joules_total{domain="dram"}[8s]))')
                near(float(dram[0]["value"][1]), 14.0, 0.02, "PromQL rate of dram, both sockets")
                scrapes = prom.query('exposer_scrapes_total{job="wattprobe"}')
                assert len(scrapes) == 1 and float(scrapes[0]["value"][1]) > 0, scrapes
                print(f"ok: Prometheus read exposer_scrapes_total {scrapes[0]['value'][1]} "
                      "and the snapshot's series from the same gzip body")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
