"""The Prometheus rules shipped in packaging/prometheus pass `promtool check rules` and their unit
tests (`promtool test rules`, synthetic series: a budget burn that fires and one that does not),
and every PromQL expression of the Grafana dashboard parses."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(SOURCE, "packaging", "prometheus")
DASHBOARD = os.path.join(SOURCE, "packaging", "grafana", "wattprobe-dashboard.json")


def promtool(*args):
    run = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
    print(f"$ promtool {' '.join(args)}\n{run.stdout}{run.stderr}")
    return run.returncode


def dashboard_queries(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def grafana_to_promql(expr):
    # Grafana fills these in before the query reaches Prometheus.
    return expr.replace("$__rate_interval", "5m").replace('"$instance"', '".*"')


def main():
    if shutil.which("promtool") is None:
        print("SKIPPED: promtool is not installed (Debian package prometheus)")
        return 77
    failures = []
    rule_files = sorted(glob.glob(os.path.join(RULES, "*.yml")))
    if len(rule_files) < 2:
        failures.append(f"expected recording and alert rule files in {RULES}, found {rule_files}")
    if rule_files and promtool("check", "rules", *rule_files) != 0:
        failures.append("promtool check rules failed")

    tests = sorted(glob.glob(os.path.join(RULES, "tests", "*.yml")))
    if not tests:
        failures.append(f"no promtool unit tests in {RULES}/tests")
    for test in tests:
        # promtool resolves rule_files relative to the test file's folder.
        if promtool("test", "rules", test) != 0:
            failures.append(f"promtool test rules {os.path.relpath(test, SOURCE)} failed")

    with open(DASHBOARD) as f:
        queries = list(dashboard_queries(json.load(f)))
    if not queries:
        failures.append("the dashboard has no queries")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard-queries.yml")
        with open(path, "w") as out:
            # JSON is YAML: a rules file whose records are the dashboard's queries.
            rules = [{"record": f"dashboard:query_{i}:check", "expr": grafana_to_promql(expr)}
                     for i, (_, expr) in enumerate(queries)]
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, out)
        if promtool("check", "rules", path) != 0:
            failures.append("a dashboard query does not parse as PromQL")

    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print(f"OK: {len(rule_files)} rule files, {len(tests)} unit-test files, "
              f"{len(queries)} dashboard queries")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
