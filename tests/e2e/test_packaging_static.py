"""Static checks of what cannot be run on this machine: the container recipe (no container
engine), the Kubernetes objects (no cluster) and the Grafana dashboard (no Grafana). Each object
must carry what issue 7 asks of it; the dashboard may only query metrics of the metric contract."""

import json
import os
import re
import sys

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGING = os.path.join(SOURCE, "packaging")

# The metric contract (docs/metrics.md and the agent's option list). A dashboard query naming
# anything else would show an empty panel.
CONTRACT = {
    "wattprobe_node_energy_joules_total", "wattprobe_node_power_watts",
    "wattprobe_node_idle_energy_joules_total", "wattprobe_node_unattributed_energy_joules_total",
    "wattprobe_energy_source_info", "wattprobe_workload_energy_joules_total",
    "wattprobe_workload_power_watts", "wattprobe_workload_cpu_seconds_total",
    "wattprobe_workload_operational_co2e_grams_total",
    "wattprobe_workload_embodied_co2e_grams_total",
    "wattprobe_process_energy_joules_total", "wattprobe_gpu_split_info",
    "wattprobe_grid_carbon_intensity_grams_per_kwh", "wattprobe_grid_carbon_intensity_age_seconds",
    "wattprobe_grid_carbon_intensity_forecast_grams_per_kwh",
    "wattprobe_device_embodied_co2e_grams", "wattprobe_device_age_seconds",
    "wattprobe_device_expected_lifetime_seconds", "wattprobe_device_amortized_ratio",
    "wattprobe_workload_carbon_budget_grams", "wattprobe_workload_carbon_budget_consumed_grams",
    "wattprobe_agent_tick_duration_seconds", "wattprobe_agent_collector_errors_total",
    "wattprobe_agent_conservation_violations_total", "wattprobe_agent_accounting_mode",
    "wattprobe_agent_bpf_records_lost_total", "wattprobe_agent_remote_write_queue_samples",
    "wattprobe_agent_remote_write_samples_dropped_total", "wattprobe_agent_cpu_seconds_total",
    "wattprobe_agent_resident_memory_bytes",
    "wattprobe_node_idle_operational_co2e_grams_total",
    "wattprobe_node_unattributed_operational_co2e_grams_total",
    "wattprobe_device_battery_capacity_ratio", "wattprobe_device_storage_wear_ratio",
    "wattprobe_device_thermal_throttle_events_total", "wattprobe_device_temperature_max_celsius",
    # Per unit of work (README "Per unit of work").
    "wattprobe_workload_functional_units_total", "wattprobe_workload_energy_per_unit_joules",
    "wattprobe_workload_co2e_per_unit_grams", "wattprobe_workload_energy_per_unit_stable",
    "wattprobe_agent_unit_scrape_errors_total",
}

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def check_containerfile():
    path = os.path.join(PACKAGING, "container", "Containerfile")
    with open(path) as f:
        text = f.read()
    # Continuation lines belong to their instruction.
    lines = [l.strip() for l in text.replace("\\\n", " ").splitlines()
             if l.strip() and not l.strip().startswith("#")]
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    check(len(froms) >= 2, f"Containerfile: multi-stage needs two FROM lines, found {froms}")
    stages = [re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", l, re.I) for l in froms]
    check(all(s and "bookworm" in s.group(1) for s in stages),
          f"Containerfile: every stage is Debian bookworm: {froms}")
    check(stages and stages[0].group(2), "Containerfile: the build stage is named (FROM … AS build)")
    check(froms and "slim" in froms[-1], f"Containerfile: the runtime stage is slim: {froms[-1:]}")
    build_name = stages[0].group(2) if stages and stages[0] else None
    copy_from = [l for l in lines if l.upper().startswith("COPY") and "--from=" in l]
    check(any(f"--from={build_name}" in l for l in copy_from),
          "Containerfile: the runtime stage copies from the build stage (COPY --from=build)")
    check(any("cmake" in l and l.upper().startswith("RUN") for l in lines),
          "Containerfile: the build stage runs cmake")
    check(any("cpack" in l for l in lines), "Containerfile: the build stage packages with cpack")
    check(not any("privileged" in l.lower() for l in lines),
          "Containerfile: no instruction asks for a privileged container")
    runtime = text[text.rfind("FROM "):]
    check("build-essential" not in runtime and "-dev" not in runtime,
          "Containerfile: the runtime stage installs no compilers or -dev packages")
    check(re.search(r"^ENTRYPOINT\s+\[\"/usr/bin/wattprobe\"", text, re.M) is not None,
          "Containerfile: ENTRYPOINT is the installed binary")
    check("--user=" in runtime, "Containerfile: the agent switches to an unprivileged user (--user)")


def load_kubernetes():
    import yaml
    objects = {}
    folder = os.path.join(PACKAGING, "kubernetes")
    for name in sorted(os.listdir(folder)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(folder, name)) as f:
                for doc in yaml.safe_load_all(f):
                    if doc:
                        check("namespace" not in doc.get("metadata", {}),
                              f"{name}: {doc['kind']} is namespace-agnostic")
                        objects[doc["kind"]] = doc
    return objects


def check_kubernetes():
    objects = load_kubernetes()
    for kind in ("DaemonSet", "ServiceAccount", "Service", "ServiceMonitor"):
        check(kind in objects, f"kubernetes: a {kind} exists")
    np = objects.get("NetworkPolicy")
    if check(np is not None, "kubernetes: a NetworkPolicy exists"):
        ds_labels = objects.get("DaemonSet", {}).get("spec", {}).get("template", {}).get(
            "metadata", {}).get("labels", {})
        check(np["spec"]["podSelector"]["matchLabels"].items() <= ds_labels.items(),
              "NetworkPolicy: selects the DaemonSet's pods")
        ports = [p["port"] for rule in np["spec"]["ingress"] for p in rule.get("ports", [])]
        check(ports == [9887], "NetworkPolicy: admits the metrics port only")
        # Issue 25: a pod selector alone, or beside an empty namespace selector, admits any pod
        # that sets the label on itself. Every peer names its namespace (by the label the API
        # server sets and no one can change) and Prometheus' label, in the same element.
        peers = [peer for rule in np["spec"]["ingress"] for peer in rule.get("from", [])]
        check(peers and all(rule.get("from") for rule in np["spec"]["ingress"]),
              "NetworkPolicy: every ingress rule names whom it admits (no rule open to all)")
        for peer in peers:
            ns = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            pods = (peer.get("podSelector") or {}).get("matchLabels") or {}
            check(bool(ns.get("kubernetes.io/metadata.name")),
                  f"NetworkPolicy: a peer admits by namespace name, not any namespace: {peer}")
            check(pods.get("app.kubernetes.io/name") == "prometheus",
                  f"NetworkPolicy: the same peer admits only Prometheus' pods: {peer}")
            check("ipBlock" not in peer, f"NetworkPolicy: no ipBlock peer: {peer}")
    ds = objects.get("DaemonSet")
    if not ds:
        return
    pod = ds["spec"]["template"]["spec"]
    meta = ds["spec"]["template"]["metadata"]
    check(ds["spec"]["selector"]["matchLabels"].items() <= meta["labels"].items(),
          "DaemonSet: the selector matches the pod labels")
    check(pod.get("serviceAccountName") == objects.get("ServiceAccount", {}).get(
        "metadata", {}).get("name"), "DaemonSet: runs as the shipped ServiceAccount")
    check(pod.get("hostPID") is True, "DaemonSet: hostPID: true")
    ann = meta.get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true", "DaemonSet: prometheus.io/scrape annotation")
    check(ann.get("prometheus.io/port") == "9887", "DaemonSet: prometheus.io/port annotation")
    agent = next((c for c in pod["containers"] if c["name"] == "wattprobe"), None)
    if not check(agent, "DaemonSet: a container named wattprobe"):
        return
    sc = agent.get("securityContext", {})
    check(sc.get("privileged") in (None, False), "DaemonSet: not privileged")
    check(sc.get("allowPrivilegeEscalation") is False, "DaemonSet: allowPrivilegeEscalation false")
    check(sc.get("readOnlyRootFilesystem") is True, "DaemonSet: read-only root file system")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], "DaemonSet: capabilities drop ALL")
    check({"BPF", "PERFMON", "DAC_READ_SEARCH"} <= set(caps.get("add", [])),
          f"DaemonSet: adds BPF, PERFMON, DAC_READ_SEARCH explicitly: {caps.get('add')}")
    check(not {"SYS_ADMIN", "ALL"} & set(caps.get("add", [])), "DaemonSet: no SYS_ADMIN or ALL")
    for c in pod.get("initContainers", []):
        check(not c.get("securityContext", {}).get("privileged"), f"{c['name']}: not privileged")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = agent.get(probe, {}).get("httpGet", {})
        check(http.get("path") == "/healthz", f"DaemonSet: {probe} is httpGet /healthz")
    res = agent.get("resources", {})
    check({"cpu", "memory"} <= set(res.get("requests", {})) and
          {"cpu", "memory"} <= set(res.get("limits", {})),
          "DaemonSet: cpu and memory requests and limits")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in agent.get("volumeMounts", [])}
    host = {v.get("hostPath", {}).get("path"): name for name, v in volumes.items()}
    for path in ("/sys", "/proc", "/var/log/pods"):
        name = host.get(path)
        if check(name, f"DaemonSet: hostPath {path}"):
            check(mounts.get(name, {}).get("readOnly") is True, f"DaemonSet: {path} mounted read-only")
    state = host.get("/var/lib/wattprobe")
    if check(state, "DaemonSet: hostPath state folder /var/lib/wattprobe"):
        check(not mounts.get(state, {}).get("readOnly"), "DaemonSet: the state folder is writable")
    args = " ".join(agent.get("args", []))
    for option in ("--procfs-root=/host", "--sysfs-root=/host", "--pods-log-root=/host",
                   "--state-dir=/var/lib/wattprobe"):
        check(option in args, f"DaemonSet: agent argument {option}")
    ports = [p.get("containerPort") for p in agent.get("ports", [])]
    check(9887 in ports, "DaemonSet: container port 9887")
    # A uid of the agent's own, not nobody (65534), which other pods on the node may share; the
    # state folder is handed to the same uid, and the image's wattprobe account has it.
    user = re.search(r"--user=(\S+)", args)
    uid = user.group(1) if user else ""
    check(uid.isdigit() and uid not in ("0", "65534"),
          f"DaemonSet: --user is a dedicated numeric uid, not root or nobody: {uid!r}")
    init = " ".join(" ".join(c.get("command", [])) for c in pod.get("initContainers", []))
    check(f"chown -R {uid}:{uid} /var/lib/wattprobe" in init,
          f"DaemonSet: the init container hands the state folder to uid {uid}: {init!r}")
    with open(os.path.join(PACKAGING, "container", "Containerfile")) as f:
        containerfile = f.read()
    check(f"--uid {uid} " in containerfile and f"--user={uid}" in containerfile,
          f"Containerfile: the wattprobe account has uid {uid} and the agent switches to it")

    svc = objects.get("Service", {})
    check(svc.get("spec", {}).get("clusterIP") == "None", "Service: headless (clusterIP: None)")
    check(svc.get("spec", {}).get("selector", {}).items() <= meta["labels"].items(),
          "Service: selects the DaemonSet's pods")
    port_names = {p.get("name") for p in svc.get("spec", {}).get("ports", [])}
    sm = objects.get("ServiceMonitor", {})
    check(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor: prometheus-operator API")
    endpoints = sm.get("spec", {}).get("endpoints", [])
    check(endpoints and all(e.get("port") in port_names for e in endpoints),
          "ServiceMonitor: endpoints name the Service's port")
    check(sm.get("spec", {}).get("selector", {}).get("matchLabels", {}).items()
          <= svc.get("metadata", {}).get("labels", {}).items(), "ServiceMonitor: selects the Service")


def dashboard_metric_names(dashboard):
    names = set()
    texts = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        q = var.get("query")
        texts.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))
    for text in texts:
        names |= set(re.findall(r"\bwattprobe_[a-z0-9_]+", text))
    return names, texts


def check_dashboard():
    with open(os.path.join(PACKAGING, "grafana", "wattprobe-dashboard.json")) as f:
        dashboard = json.load(f)
    names, texts = dashboard_metric_names(dashboard)
    unknown = names - CONTRACT
    check(not unknown, f"dashboard: metrics outside the contract: {sorted(unknown)}")
    for text in texts:
        if text and not text.startswith("prometheus"):
            check("wattprobe_" in text, f"dashboard: a query names no wattprobe metric: {text}")
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("power by domain and source", "top workloads by power", "top workloads by co2e",
                  "idle share", "grid carbon intensity and forecast", "embodied", "device age",
                  "measured versus estimated", "agent cpu", "agent resident memory",
                  "battery health", "storage wear", "break-even"):
        check(topic in titles, f"dashboard: a panel about {topic!r}")
    # The GPU panels (issue 14): watts by device and by workload, from the gpu domain.
    gpu = [p for p in dashboard["panels"] if p["title"].lower().startswith("gpu power by")]
    check({p["title"].lower() for p in gpu} == {"gpu power by device", "gpu power by workload"},
          "dashboard: GPU power panels by device and by workload")
    for p in gpu:
        check(all('domain="gpu"' in t["expr"] for t in p.get("targets", [])),
              f"dashboard: every query of {p['title']!r} reads the gpu domain")
    ids = [p["id"] for p in dashboard["panels"]]
    check(len(ids) == len(set(ids)), "dashboard: panel ids are unique")


def check_config_mode():
    """Issue 25: the packaged config may hold a secret (a header, a URL's credentials), so the
    package installs it 0640, and an upgrade from a 0644 one makes it 0640."""
    with open(os.path.join(PACKAGING, "CMakeLists.txt")) as f:
        cmake = f.read()
    rule = re.search(r"install\(FILES wattprobe\.conf[^)]*\)", cmake)
    check(rule and "PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)" in rule.group(0),
          f"packaging/CMakeLists.txt: wattprobe.conf is installed 0640: {rule and rule.group(0)}")
    with open(os.path.join(PACKAGING, "debian", "postinst")) as f:
        postinst = f.read()
    check("chmod 0640 /etc/wattprobe/wattprobe.conf" in postinst,
          "postinst: a config left 0644 by an older package becomes 0640")


def main():
    try:
        import yaml  # noqa: F401
    except ImportError:
        print("SKIPPED: python3-yaml is not installed (Debian package python3-yaml)")
        return 77
    check_containerfile()
    check_kubernetes()
    check_dashboard()
    check_config_mode()
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print("OK: Containerfile, Kubernetes objects and dashboard")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
