"""A BMC in the shape of DMTF's Redfish mockup (tests/data/redfish), served over HTTPS with a CA
of its own, whose power follows a known profile so a test knows the true energy at any time.

Layouts (how vendors lay the same resources out):
- "1U":       the mockup itself; its chassis-wide TotalEnergy sensor (EnergykWh, with
              ReadingTime) is the reading, stepping every `refresh` seconds; the supplies' metrics
              give the power between steps;
- "1":        Chassis/1 with PowerSubsystem/PowerSupplies/*/Metrics.InputPowerWatts (two supplies);
- "System.Embedded.1": older firmware: only Power, with PowerSupplies[].PowerInputWatts and
              PowerControl;
- "Self":     OpenBMC: Sensors with a Power sensor of ElectricalContext Total (ReadingTime);
- "multi":    two blades, each with EnvironmentMetrics.PowerWatts.
Faults, set while it runs: hang, 503, malformed, huge; sessions (token expiring every
`token_uses` requests), or basic auth only."""

import base64
import copy
import http.server
import json
import os
import ssl
import subprocess
import threading
import time

DATA = os.environ.get("WATTPROBE_TEST_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
MOCKUP = os.path.join(DATA, "redfish", "public-rackmount1")
USER, PASSWORD = "reader", "s3cret-Pa55"


def make_ca(folder):
    """A CA and a server certificate for 127.0.0.1 made with the openssl CLI: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (os.path.join(folder, n) for n in
                                  ("ca.key", "ca.pem", "bmc.key", "bmc.csr", "bmc.pem"))
    ext = os.path.join(folder, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=wattprobe test BMC CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
        "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", ext)
    for p in (ca, cert):
        os.chmod(p, 0o644)
    return ca, cert, key


class Profile:
    """Power in W as a function of time: `base` W, and during a burst a step every `step` s
    through `levels`. energy(t) is its exact integral since `t0`."""

    def __init__(self, base=300.0, levels=(260, 340, 280, 320, 250, 350, 300, 270), step=3.0):
        self.base, self.levels, self.step = base, levels, step
        self.t0 = time.time()
        self.burst_start = None

    def start_burst(self, at):
        self.burst_start = at

    def burst_end(self):
        return self.burst_start + self.step * len(self.levels)

    def power(self, t):
        if self.burst_start is None or t < self.burst_start or t >= self.burst_end():
            return self.base
        return float(self.levels[int((t - self.burst_start) // self.step)])

    def energy(self, t):
        if self.burst_start is None or t <= self.burst_start:
            return self.base * (t - self.t0)
        e = self.base * (self.burst_start - self.t0)
        a = self.burst_start
        for i, level in enumerate(self.levels):
            b = min(t, self.burst_start + (i + 1) * self.step)
            if b <= a:
                break
            e += level * (b - a)
            a = b
        if t > a:
            e += self.base * (t - a)
        return e


def _load(rel):
    with open(os.path.join(MOCKUP, rel, "index.json")) as f:
        return json.load(f)


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class FakeBmc:
    def __init__(self, layout, folder, sessions=True, refresh=2.0, profile=None, token_uses=7):
        self.layout, self.sessions, self.refresh = layout, sessions, refresh
        self.profile = profile or Profile()
        self.token_uses = token_uses
        self.fault = None  # None, "hang", "503", "malformed", "huge"
        self.refuse_next_logins = 0
        self.tokens = {}  # token → uses left
        self.logins = self.logouts = self.unauthorised = 0
        self.lock = threading.Lock()
        self.ca, cert, key = make_ca(folder)
        bmc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                bmc.handle(self, "GET")

            def do_POST(self):
                bmc.handle(self, "POST")

            def do_DELETE(self):
                bmc.handle(self, "DELETE")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client that hangs up on the huge answer is what the test wants, not an error.
        self.server.handle_error = lambda *a: None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # --- the tree ---------------------------------------------------------------------------
    def chassis_ids(self):
        return {"1U": ["1U"], "1": ["1"], "System.Embedded.1": ["System.Embedded.1"],
                "Self": ["Self"], "multi": ["Blade1", "Blade2"]}[self.layout]

    def stepped_energy(self, now):
        """The counter as a BMC refreshing every `refresh` s shows it: (joules, reading time)."""
        step_at = self.profile.t0 + self.refresh * int((now - self.profile.t0) // self.refresh)
        return self.profile.energy(step_at), step_at

    def doc(self, path, now):
        p = path.rstrip("/")
        v1 = "/redfish/v1"
        if p == v1:
            root = _load("")
            if not self.sessions:
                root.pop("SessionService", None)
                root.get("Links", {}).pop("Sessions", None)
            return root
        if p == v1 + "/Chassis":
            return {"@odata.id": p, "Members": [{"@odata.id": f"{p}/{c}"} for c in self.chassis_ids()],
                    "Members@odata.count": len(self.chassis_ids())}
        watts = self.profile.power(now)
        if self.layout == "1U":
            if not p.startswith(v1 + "/Chassis/1U"):
                return None
            rel = p[len(v1) + 1:]
            try:
                d = _load(rel)
            except OSError:
                return None
            if rel == "Chassis/1U/Sensors/TotalEnergy":
                joules, at = self.stepped_energy(now)
                d["Reading"] = joules / 3.6e6
                d["ReadingTime"] = _iso(at)
            elif rel == "Chassis/1U/PowerSubsystem/PowerSupplies/Bay1/Metrics":
                d["InputPowerWatts"]["Reading"] = watts
            return d
        for c in self.chassis_ids():
            base = f"{v1}/Chassis/{c}"
            if p == base:
                d = {"@odata.id": base, "Id": c, "Name": c}
                if self.layout == "1":
                    d["PowerSubsystem"] = {"@odata.id": base + "/PowerSubsystem"}
                elif self.layout == "System.Embedded.1":
                    d["Power"] = {"@odata.id": base + "/Power"}
                elif self.layout == "Self":
                    d["Sensors"] = {"@odata.id": base + "/Sensors"}
                else:
                    d["EnvironmentMetrics"] = {"@odata.id": base + "/EnvironmentMetrics"}
                return d
            if self.layout == "1":
                if p == base + "/PowerSubsystem":
                    return {"PowerSupplies": {"@odata.id": base + "/PowerSubsystem/PowerSupplies"}}
                if p == base + "/PowerSubsystem/PowerSupplies":
                    return {"Members": [{"@odata.id": f"{p}/PSU{i}"} for i in (1, 2)]}
                for i in (1, 2):
                    psu = f"{base}/PowerSubsystem/PowerSupplies/PSU{i}"
                    if p == psu:
                        return {"Id": f"PSU{i}", "Metrics": {"@odata.id": psu + "/Metrics"}}
                    if p == psu + "/Metrics":
                        # The two supplies share the load 60:40.
                        return {"InputPowerWatts": {"Reading": watts * (0.6 if i == 1 else 0.4)}}
            if self.layout == "System.Embedded.1" and p == base + "/Power":
                return {"PowerControl": [{"PowerConsumedWatts": round(watts * 0.9)}],
                        "PowerSupplies": [{"PowerInputWatts": watts / 2},
                                          {"PowerInputWatts": watts / 2},
                                          {"PowerInputWatts": None}]}
            if self.layout == "Self":
                if p == base + "/Sensors":
                    return {"Members": [{"@odata.id": f"{p}/{n}"} for n in
                                        ("inlet_temp", "cpu0_power", "total_power")]}
                if p == base + "/Sensors/inlet_temp":
                    return {"ReadingType": "Temperature", "Reading": 24}
                if p == base + "/Sensors/cpu0_power":
                    return {"ReadingType": "Power", "PhysicalContext": "CPU", "Reading": 90}
                if p == base + "/Sensors/total_power":
                    return {"ReadingType": "Power", "ElectricalContext": "Total",
                            "Reading": watts, "ReadingTime": _iso(self.last_change(now))}
            if self.layout == "multi" and p == base + "/EnvironmentMetrics":
                return {"PowerWatts": {"Reading": watts / 2}}
        return None

    def last_change(self, now):
        prof = self.profile
        if prof.burst_start is None or now < prof.burst_start:
            return prof.t0
        if now >= prof.burst_end():
            return prof.burst_end()
        return prof.burst_start + prof.step * int((now - prof.burst_start) // prof.step)

    # --- HTTP -------------------------------------------------------------------------------
    def authorised(self, req):
        if self.sessions:
            token = req.headers.get("X-Auth-Token")
            with self.lock:
                left = self.tokens.get(token, 0)
                if left <= 0:
                    self.tokens.pop(token, None)
                    return False
                self.tokens[token] = left - 1
                return True
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return req.headers.get("Authorization") == want

    def handle(self, req, method):
        now = time.time()
        path = req.path
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if method == "POST" and self.sessions and path == "/redfish/v1/SessionService/Sessions":
            creds = json.loads(body or b"{}")
            with self.lock:
                if self.refuse_next_logins > 0 or creds != {"UserName": USER, "Password": PASSWORD}:
                    self.refuse_next_logins -= 1
                    return req.send(401)
                self.logins += 1
                token = f"tok{self.logins}-{os.getpid()}"
                self.tokens[token] = self.token_uses
            return req.send(201, b"{}", [("X-Auth-Token", token),
                                         ("Location", f"/redfish/v1/SessionService/Sessions/{self.logins}")])
        if method == "DELETE":
            with self.lock:
                self.logouts += 1
            return req.send(204)
        if method != "GET":
            return req.send(405)
        if path.rstrip("/") != "/redfish/v1" and not self.authorised(req):
            with self.lock:
                self.unauthorised += 1
            return req.send(401)
        fault = self.fault
        if fault == "hang":
            time.sleep(4)
            return req.send(503)
        if fault == "503":
            return req.send(503, b"busy")
        if fault == "malformed":
            return req.send(200, b'{"PowerWatts": {"Reading": ', [("Content-Type", "application/json")])
        if fault == "huge":
            big = json.dumps({"Padding": "x" * (3 << 20)}).encode()
            return req.send(200, big, [("Content-Type", "application/json")])
        d = self.doc(path, now)
        if d is None:
            return req.send(404)
        return req.send(200, json.dumps(d).encode(), [("Content-Type", "application/json")])
