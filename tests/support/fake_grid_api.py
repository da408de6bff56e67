#!/usr/bin/env python3
"""A stand-in for the grid carbon intensity APIs, on 127.0.0.1, for wattprobe's tests.

Serves payloads shaped like the providers' documented responses:
  Electricity Maps v3  GET /v3/carbon-intensity/latest?zone=Z, /forecast?zone=Z, and
                       /v3/power-breakdown/latest?zone=Z (fossilFreePercentage)  (auth-token header)
  WattTime v3          GET /login (Basic auth) -> {"token"}, /v3/forecast?region=R&signal_type=co2_moer
                       (Authorization: Bearer); values in lbs_co2_per_mwh
  GB carbonintensity   GET /intensity, /intensity/{from}/fw24h, /generation (the generation mix:
                       nuclear 15, wind 30, solar 8, hydro 2, biomass 5, gas 30, imports 8, coal 1,
                       other 1 %; carbon-free 55 %)
Control (tests only): GET /__mode/<mode>, /__value/<g_per_kwh>, /__stats,
  /__forecast/<v0,v1,...>: the forecasts become these values, one per period from the current
  period (Electricity Maps hourly, GB half-hourly) instead of the default rising three.
  /__cfe/<percent|null>: Electricity Maps' fossilFreePercentage (default 62.5).
Modes: ok malformed_json wrong_types missing_fields negative absurd nan http401 http429 http500
       hang huge huge_chunked login401
Prints the port on the first line of stdout. --https serves TLS with a fresh self-signed
certificate, which a verifying client must refuse.
"""
import argparse
import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

TOKEN = "em-test-token-SECRET"
WT_USER = "wt-user"
WT_PASSWORD = "wt-password-SECRET"
WT_TOKEN = "wt-jwt-SECRET"
LBS_PER_G = 1 / 0.45359237

state = {"mode": "ok", "value": 300.0, "stats": {}, "forecast": None, "cfe": 62.5}
GB_MIX = [("biomass", 5.0), ("coal", 1.0), ("imports", 8.0), ("gas", 30.0), ("nuclear", 15.0),
          ("other", 1.0), ("hydro", 2.0), ("solar", 8.0), ("wind", 30.0)]
lock = threading.Lock()


def iso(t, ms=True):
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return s + (".000Z" if ms else "Z")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, code, obj=None, body=None, headers=()):
        data = body if body is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        path, query = url.path, parse_qs(url.query)
        with lock:
            state["stats"][path] = state["stats"].get(path, 0) + 1
            mode, value, forecast = state["mode"], state["value"], state["forecast"]
        if path.startswith("/__mode/"):
            with lock:
                state["mode"] = path[len("/__mode/"):]
            return self.send_json(200, {"mode": state["mode"]})
        if path.startswith("/__value/"):
            with lock:
                state["value"] = float(path[len("/__value/"):])
            return self.send_json(200, {"value": state["value"]})
        if path.startswith("/__forecast/"):
            with lock:
                state["forecast"] = [float(v) for v in path[len("/__forecast/"):].split(",")]
            return self.send_json(200, {"forecast": state["forecast"]})
        if path.startswith("/__cfe/"):
            v = path[len("/__cfe/"):]
            with lock:
                state["cfe"] = None if v == "null" else float(v)
            return self.send_json(200, {"cfe": state["cfe"]})
        if path == "/__stats":
            with lock:
                return self.send_json(200, state["stats"])

        if path == "/login":
            if mode == "login401":
                return self.send_json(401, {"error": "invalid credentials"})
            want = "Basic " + base64.b64encode(f"{WT_USER}:{WT_PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.send_json(401, {"error": "invalid credentials"})
            return self.send_json(200, {"token": WT_TOKEN})

        # Authentication first, as the real services do.
        if path.startswith("/v3/carbon-intensity/") or path.startswith("/v3/power-breakdown/"):
            if self.headers.get("auth-token") != TOKEN:
                return self.send_json(401, {"message": "Invalid auth-token"})
        elif path.startswith("/v3/forecast"):
            if self.headers.get("Authorization") != "Bearer " + WT_TOKEN:
                return self.send_json(401, {"error": "invalid token"})
        elif not path.startswith("/intensity") and path != "/generation":
            return self.send_json(404, {"error": "not found"})

        if mode == "http401":
            return self.send_json(401, {"message": "Unauthorized"})
        if mode == "http429":
            return self.send_json(429, {"message": "Too many requests"}, headers=[("Retry-After", "120")])
        if mode == "http500":
            return self.send_json(500, {"message": "Internal error"})
        if mode == "hang":
            time.sleep(30)
            return
        if mode == "huge":
            size = 50 * 1024 * 1024
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.stream(size)
            return
        if mode == "huge_chunked":
            # No length announced: only the client's running count can stop it.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.stream(50 * 1024 * 1024)
            return
        if mode == "malformed_json":
            return self.send_json(200, body=b'{"zone": "DE", "carbonIntensity": 30')
        if mode == "nan":
            return self.send_json(200, body=b'{"carbonIntensity": NaN, "datetime": "2024-01-01T00:00:00.000Z", "data": NaN}')
        if mode == "negative":
            value = -42.0
        if mode == "absurd":
            value = 99999.0

        now = int(time.time()) // 3600 * 3600
        if path == "/v3/carbon-intensity/latest":
            doc = {"zone": query.get("zone", ["DE"])[0], "carbonIntensity": value,
                   "datetime": iso(now), "updatedAt": iso(time.time()), "createdAt": iso(now - 86400),
                   "emissionFactorType": "lifecycle", "isEstimated": True, "estimationMethod": "TIME_SLICER_AVERAGE"}
            if mode == "wrong_types":
                doc["carbonIntensity"] = str(value)
            if mode == "missing_fields":
                del doc["carbonIntensity"]
            return self.send_json(200, doc)
        if path == "/v3/power-breakdown/latest":
            with lock:
                cfe = state["cfe"]
            doc = {"zone": query.get("zone", ["DE"])[0], "datetime": iso(now), "updatedAt": iso(time.time()),
                   "powerConsumptionBreakdown": {"nuclear": 1200, "wind": 9000, "solar": 2100, "gas": 4100,
                                                 "coal": 2500, "biomass": 900},
                   "fossilFreePercentage": cfe, "renewablePercentage": None if cfe is None else cfe - 5,
                   "powerConsumptionTotal": 19800, "isEstimated": False}
            if mode == "wrong_types":
                doc["fossilFreePercentage"] = "most"
            return self.send_json(200, doc)
        if path == "/generation":
            half = int(time.time()) // 1800 * 1800
            doc = {"data": {"from": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(half)),
                            "to": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(half + 1800)),
                            "generationmix": [{"fuel": f, "perc": p} for f, p in GB_MIX]}}
            return self.send_json(200, doc)
        if path == "/v3/carbon-intensity/forecast":
            doc = {"zone": query.get("zone", ["DE"])[0], "updatedAt": iso(time.time()),
                   "forecast": [{"carbonIntensity": value + 10 * i, "datetime": iso(now + 3600 * i)} for i in range(1, 4)]}
            if forecast is not None:
                doc["forecast"] = [{"carbonIntensity": v, "datetime": iso(now + 3600 * i)}
                                   for i, v in enumerate(forecast)]
            if mode == "wrong_types":
                doc["forecast"] = "soon"
            if mode == "missing_fields":
                del doc["forecast"]
            return self.send_json(200, doc)
        if path == "/v3/forecast":
            now5 = int(time.time()) // 300 * 300
            doc = {"data": [{"point_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now5 + 300 * i)),
                             "value": round(value * LBS_PER_G + i, 6)} for i in range(0, 4)],
                   "meta": {"data_point_period_seconds": 300, "region": query.get("region", ["CAISO_NORTH"])[0],
                            "warnings": [], "signal_type": "co2_moer", "model": {"date": "2023-03-01"},
                            "units": "lbs_co2_per_mwh", "generated_at_period_seconds": 300,
                            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now5))}}
            if mode == "wrong_types":
                doc["data"][0]["value"] = "high"
            if mode == "missing_fields":
                del doc["data"]
            return self.send_json(200, doc)
        if path == "/intensity" or path.startswith("/intensity/"):
            half = int(time.time()) // 1800 * 1800
            n = 1 if path == "/intensity" else 4
            values = [value + i for i in range(n)]
            if forecast is not None and n > 1:
                n, values = len(forecast), forecast
            rows = []
            for i in range(n):
                t = half + 1800 * i
                rows.append({"from": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(t)),
                             "to": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(t + 1800)),
                             "intensity": {"forecast": values[i], "actual": value if i == 0 and n == 1 else None,
                                           "index": "moderate"}})
            doc = {"data": rows}
            if mode == "wrong_types":
                rows[0]["intensity"]["actual"] = "263"
            if mode == "missing_fields":
                del rows[0]["intensity"]
            return self.send_json(200, doc)
        return self.send_json(404, {"error": "not found"})

    def stream(self, size):
        chunk = b" " * 65536
        try:
            sent = 0
            while sent < size:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--https", action="store_true")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.https:
        d = tempfile.mkdtemp()
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
