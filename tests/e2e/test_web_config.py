"""--web-config-file (issue 16), in the Prometheus exporter-toolkit format, with real bcrypt hashes
made by htpasswd: /metrics answers 401 without a password, with a wrong one and for an unknown
user, gzip or not, 200 with the right one, and a gzip answer decodes to the plain one's text
(issue 18: the page is cached and gzipped per snapshot); /healthz answers without one. tls_server_config is parsed and
checked (real certificates made by openssl) but refused with exit 2: Debian's civetweb 1.15
crashes on the first TLS connection with OpenSSL 3 (README, Security). A bad config stops the
agent with exit 2 naming the file and the field, never a hash."""

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import base64
import gzip

from wattprobe_e2e import USER_ARGS, BIN, Process, skip

PASSWORD = "correct horse battery staple"


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate."""
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
       "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
           "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext + "\n")
        sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey",
           f"{d}/ca.key", "-CAcreateserial", "-days", "1", "-extfile", f"{d}/{name}.ext",
           "-out", f"{d}/{name}.crt")


def bcrypt(password):
    out = subprocess.run(["htpasswd", "-nbB", "-C", "5", "u", password], check=True,
                         capture_output=True, text=True).stdout.strip()
    return out.split(":", 1)[1]


def start(config):
    state = tempfile.mkdtemp(prefix="wattprobe-state-")
    p = Process([BIN, "run", "--listen", "127.0.0.1:0", "--state-dir", state, "--sources", "model",
                 "--accounting", "procfs", "--interval", "200ms", "--web-config-file", config,
                 *USER_ARGS])
    p.url = p.wait_for(r"serving metrics at (https?://\S+/metrics)").group(1)
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

    # A valid tls_server_config (real certificates) is refused with the reason, exit 2.
    with open(config, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    p = subprocess.run([BIN, "run", "--listen", "127.0.0.1:0", "--web-config-file", config],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "TLS is not available" in p.stderr, (p.returncode, p.stderr)
    print(f"ok: TLS refused: {p.stderr.strip()}")

    # Bad configs: exit 2, naming the file and the field.
    for text, field in (("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: x\n",
                         "tls_server_config.cert_file"),
                        ("basic_auth_users:\n  u: plaintext-password\n", "basic_auth_users.u"),
                        ("tls_server_config:\n  cert_file: a\n  bogus: 1\n", "tls_server_config.bogus")):
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
