"""--web-config-file (issue 16), in the Prometheus exporter-toolkit format, with real bcrypt hashes
made by htpasswd: /metrics answers 401 without a password, with a wrong one and for an unknown
user, gzip or not, 200 with the right one, and a gzip answer decodes to the plain one's text
(issue 18: the page is cached and gzipped per snapshot); /healthz answers without one.

TLS (issue 25, real certificates made by openssl): with bcrypt basic auth, 200 with the password
and 401 without or with a wrong one; plain HTTP sent to the TLS port is closed at once; a client
certificate required and verified (mTLS) refuses a client without one or with one from another
CA; min_version TLS13 refuses a TLS 1.2 client; a certificate replaced on disk is served within
10 s without a restart; 32 connections that never start a handshake leave /healthz answering
over TLS within 2 s. A bad config stops the agent with exit 2 naming the file and the field,
never a hash."""

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import base64
import gzip
import socket
import ssl
import time

from wattprobe_e2e import USER_ARGS, BIN, Process, skip, wait_first_tick, wait_until

PASSWORD = "correct horse battery staple"


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def make_certs(d, ca="ca", names=(("server", "subjectAltName=IP:127.0.0.1"),
                                   ("client", "extendedKeyUsage=clientAuth"))):
    """A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate."""
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-days", "1", "-subj", f"/CN=test-{ca}", "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.crt")
    for name, ext in names:
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-subj", f"/CN={name}", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext + "\n")
        sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.crt", "-CAkey",
           f"{d}/{ca}.key", "-CAcreateserial", "-days", "1", "-extfile", f"{d}/{name}.ext",
           "-out", f"{d}/{name}.crt")
    # The agent reads them after dropping root (README, Security), as the wattprobe user would.
    for name in [ca] + [n for n, _ in names]:
        os.chmod(f"{d}/{name}.key", 0o644)


def client_context(d, cert=None, ca="ca", version=None):
    ctx = ssl.create_default_context(cafile=f"{d}/{ca}.crt")
    if cert:
        ctx.load_cert_chain(f"{d}/{cert}.crt", f"{d}/{cert}.key")
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_get(url, ctx, auth=None, timeout=10):
    """(status, body) over TLS; an ssl or connection error raises."""
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def refused(url, ctx):
    """The reason a TLS request failed, or None when it was answered."""
    try:
        tls_get(url, ctx)
        return None
    except (ssl.SSLError, ConnectionError, urllib.error.URLError, OSError) as e:
        return repr(e)


def served_serial(host, port, d):
    """The serial number of the certificate the server presents now."""
    ctx = ssl.create_default_context(cafile=f"{d}/ca.crt")
    with socket.create_connection((host, port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as s:
        der = s.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, check=True,
                         capture_output=True, text=True).stdout
    return out.strip()


def host_port(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port


def tls_tests(d, config):
    # TLS with bcrypt basic auth.
    with open(config, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
                f"basic_auth_users:\n  prometheus: '{bcrypt(PASSWORD)}'\n")
    with start(config) as agent:
        assert agent.url.startswith("https://"), agent.url
        base = agent.url[:-len("/metrics")]
        ctx = client_context(d)
        status, _ = tls_get(agent.url, ctx)
        assert status == 401, f"TLS, no password: {status}"
        status, _ = tls_get(agent.url, ctx, auth="prometheus:wrong")
        assert status == 401, f"TLS, wrong password: {status}"
        status, body = tls_get(agent.url, ctx, auth="prometheus:" + PASSWORD)
        assert status == 200 and "wattprobe_" in body, f"TLS, right password: {status}"
        with urllib.request.urlopen(urllib.request.Request(base + "/healthz"), timeout=10,
                                    context=ctx) as r:
            assert r.headers.get("X-Content-Type-Options") == "nosniff", dict(r.headers)
        print("ok: TLS + basic auth: 401 without and with a wrong password, 200 with it; "
              "http_server_config.headers sent")
        # Plain HTTP to the TLS port: closed at once, no answer.
        host, port = host_port(agent.url)
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            start_t = time.monotonic()
            s.settimeout(3)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            took = time.monotonic() - start_t
        assert data == b"" and took < 1.0, f"plain HTTP to TLS: {data!r} after {took:.2f}s"
        print(f"ok: plain HTTP to the TLS port closed in {took * 1000:.0f} ms")

        # 32 connections that never start a handshake: /healthz over TLS within 2 s.
        silent = [socket.create_connection((host, port), timeout=5) for _ in range(32)]
        try:
            time.sleep(0.3)
            t0 = time.monotonic()
            status, _ = tls_get(base + "/healthz", ctx)
            took = time.monotonic() - t0
            assert status in (200, 503) and took < 2.0, f"/healthz {status} in {took:.2f}s"
            print(f"ok: /healthz over TLS in {took * 1000:.0f} ms beside 32 silent connections")
        finally:
            for s in silent:
                s.close()

        # A certificate replaced on disk is served within 10 s, without a restart.
        before = served_serial(host, port, d)
        sh("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey",
           f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/server.ext",
           "-out", f"{d}/server.crt.new")
        os.replace(f"{d}/server.crt.new", f"{d}/server.crt")
        t0 = time.monotonic()
        while served_serial(host, port, d) == before:
            assert time.monotonic() - t0 < 10, "the replaced certificate was not served in 10 s"
            time.sleep(0.2)
        print(f"ok: the replaced certificate is served {time.monotonic() - t0:.1f} s later")

        # A pair caught half-written (a new certificate whose key is not there yet) keeps the
        # certificate served; the pair completed is then taken.
        served = served_serial(host, port, d)
        shutil.copyfile(f"{d}/client.crt", f"{d}/server.crt.new")
        os.replace(f"{d}/server.crt.new", f"{d}/server.crt")
        t0 = time.monotonic()
        while "keeping the previous certificate" not in agent.stderr():
            assert time.monotonic() - t0 < 10, f"no refusal logged: {agent.stderr()}"
            time.sleep(0.1)
        assert served_serial(host, port, d) == served, "a half-written pair was served"
        sh("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey",
           f"{d}/ca.key", "-CAcreateserial", "-days", "3", "-extfile", f"{d}/server.ext",
           "-out", f"{d}/server.crt.new")
        os.replace(f"{d}/server.crt.new", f"{d}/server.crt")
        t0 = time.monotonic()
        while served_serial(host, port, d) == served:
            assert time.monotonic() - t0 < 10, "the completed pair was not served in 10 s"
            time.sleep(0.2)
        print("ok: a half-written pair keeps the served certificate; the completed pair is taken")

    # mTLS: a client certificate required and verified.
    make_certs(d, ca="other", names=(("stranger", "extendedKeyUsage=clientAuth"),))
    with open(config, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n")
    with start(config, client=client_context(d, cert="client")) as agent:
        status, body = tls_get(agent.url, client_context(d, cert="client"))
        assert status == 200 and "wattprobe_" in body, status
        why = refused(agent.url, client_context(d))
        assert why, "mTLS: answered without a client certificate"
        print(f"ok: mTLS: 200 with the client certificate, refused without one ({why[:60]})")
        why = refused(agent.url, client_context(d, cert="stranger"))
        assert why, "mTLS: answered with a certificate from another CA"
        print("ok: mTLS: refused with a certificate from another CA")

    # VerifyClientCertIfGiven, the mode for kubelet's HTTPS probes: no certificate is served,
    # a certificate from another CA is refused.
    with open(config, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n")
    with start(config) as agent:
        base = agent.url[:-len("/metrics")]
        status, _ = tls_get(base + "/healthz", client_context(d))
        assert status in (200, 503), status
        status, _ = tls_get(agent.url, client_context(d, cert="client"))
        assert status == 200, status
        assert refused(agent.url, client_context(d, cert="stranger")), \
            "VerifyClientCertIfGiven answered a certificate from another CA"
        print("ok: VerifyClientCertIfGiven: served without a certificate (probes) and with a "
              "good one, refused with one from another CA")

    # min_version TLS13 refuses a TLS 1.2 client.
    with open(config, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                "  min_version: TLS13\n")
    with start(config) as agent:
        why = refused(agent.url, client_context(d, version=ssl.TLSVersion.TLSv1_2))
        assert why, "min_version TLS13 answered a TLS 1.2 client"
        status, _ = tls_get(agent.url, client_context(d, version=ssl.TLSVersion.TLSv1_3))
        assert status == 200, status
        print("ok: min_version TLS13: a TLS 1.2 client refused, a TLS 1.3 one served")


def bcrypt(password):
    out = subprocess.run(["htpasswd", "-nbB", "-C", "5", "u", password], check=True,
                         capture_output=True, text=True).stdout.strip()
    return out.split(":", 1)[1]


def start(config, client=None):
    """The agent serving with CONFIG, after its first tick (a scrape before it is answered 200
    with no wattprobe_ family yet). CLIENT: the TLS context /healthz needs under mTLS."""
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    p = Process([BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state, "--sources", "model",
                 "--accounting", "procfs", "--interval", "200ms", "--web-config-file", config,
                 *USER_ARGS])
    p.url = p.wait_for(r"serving metrics at (https?://\S+/metrics)").group(1)
    p.interval = 0.2
    if client is None:
        wait_first_tick(p)
    else:
        healthz = p.url[:-len("/metrics")] + "/healthz"
        wait_until(lambda: "no tick yet" not in tls_get(healthz, client)[1], 30,
                   f"the first tick (stderr: {p.stderr()})")
    return p


def get(url, auth=None, accept_gzip=False):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    if accept_gzip:
        req.add_header("Accept-Encoding", "gzip")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            if r.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            else:
                assert not accept_gzip or r.status != 200, "gzip asked for, plain sent"
            return r.status, body.decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def without_server_lines(text):
    """The snapshot's part of /metrics: prometheus-cpp's exposer_* lines change on every scrape."""
    return "".join(l for l in text.splitlines(True) if "exposer_" not in l)


def same_text_gzip_and_plain(url, auth):
    """A gzip scrape decodes to the plain text of the same snapshot. Ticks every 200 ms may fall
    between two scrapes, so a pair is taken as the same snapshot when the plain scrapes around
    the gzip one agree."""
    for _ in range(50):
        _, before = get(url, auth=auth)
        status, zipped = get(url, auth=auth, accept_gzip=True)
        _, after = get(url, auth=auth)
        assert status == 200, f"gzip scrape: {status}"
        if without_server_lines(before) == without_server_lines(after):
            assert without_server_lines(zipped) == without_server_lines(before), \
                f"gzip text differs:\n{zipped}\n---\n{before}"
            return len(before.splitlines())
    raise AssertionError("no two plain scrapes of the same snapshot in 50 tries")


def main():
    for tool in ("openssl", "htpasswd"):
        if not shutil.which(tool):
            skip(f"{tool} is not installed (Debian packages openssl, apache2-utils)")
    d = tempfile.mkdtemp(prefix="wattprobe-e2e-web-")
    make_certs(d)
    config = f"{d}/web.yml"

    # Basic auth over plain HTTP (TLS is refused below: the packaged civetweb crashes with it).
    with open(config, "w") as f:
        f.write(f"basic_auth_users:\n  prometheus: '{bcrypt(PASSWORD)}'\n")
    with start(config) as agent:
        base = agent.url[:-len("/metrics")]
        status, _ = get(agent.url)
        assert status == 401, f"no password: {status}"
        print("ok: /metrics without a password: 401")
        status, _ = get(agent.url, auth="prometheus:wrong")
        assert status == 401, f"wrong password: {status}"
        print("ok: /metrics with a wrong password: 401")
        status, _ = get(agent.url, auth="prometheus:wrong", accept_gzip=True)
        assert status == 401, f"wrong password, gzip: {status}"
        print("ok: /metrics with a wrong password, gzip: 401")
        status, _ = get(agent.url, auth="nobody:" + PASSWORD)
        assert status == 401, f"unknown user: {status}"
        print("ok: /metrics for an unknown user: 401")
        status, body = get(agent.url, auth="prometheus:" + PASSWORD)
        assert status == 200 and "wattprobe_" in body, f"right password: {status}"
        print("ok: /metrics with the right password: 200")
        lines = same_text_gzip_and_plain(agent.url, "prometheus:" + PASSWORD)
        print(f"ok: a gzip scrape decodes to the plain scrape's {lines} lines")
        status, body = get(base + "/healthz")
        assert status in (200, 503), f"/healthz without a password: {status} {body!r}"
        print(f"ok: /healthz without a password: {status}")

    tls_tests(d, config)

    # Bad configs: exit 2, naming the file and the field.
    for text, field in (("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: x\n",
                         "tls_server_config.cert_file"),
                        ("basic_auth_users:\n  u: plaintext-password\n", "basic_auth_users.u"),
                        ("tls_server_config:\n  cert_file: a\n  bogus: 1\n", "tls_server_config.bogus"),
                        ("basic_auth_users:\n  u: '$2y$15$" + "a" * 53 + "'\n", "basic_auth_users.u"),
                        ("tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
                         "key_file"),
                        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                         "  cipher_suites: [TLS_FOO]\n", "tls_server_config.cipher_suites")):
        with open(config, "w") as f:
            f.write(text)
        p = subprocess.run([BIN, "run", "--listen", "127.0.0.1:0", "--web-config-file", config],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert config in p.stderr and field in p.stderr, p.stderr
        assert "plaintext-password" not in p.stderr, p.stderr
        print(f"ok: refused: {p.stderr.strip()}")


if __name__ == "__main__":
    main()
    print("PASS")
