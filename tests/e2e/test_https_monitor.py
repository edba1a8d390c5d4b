"""HTTPS monitors end to end against a real TLS server with a certificate made for this test:
verification off -> up; verification against the test's CA file with the member address in the
certificate -> up; verification against the system store -> down, with the reason logged; the
certificate is checked for the configured host name."""
import http.server
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

ADDR = "127.0.0.6"

CONFIG = gtm_harness.ZONE_HEADER.replace("{", "{{").replace("}", "}}") + """
monitors:
  - {{name: noverify, type: https, port: {port}, verify: false, interval_ms: 100, rise: 1, fall: 1}}
  - {{name: ca, type: https, port: {port}, ca_file: "{ca}", path: /health, body_contains: ok,
      interval_ms: 100, rise: 1, fall: 1}}
  - {{name: system, type: https, port: {port}, interval_ms: 100, rise: 1, fall: 1}}
  - {{name: wronghost, type: https, port: {port}, ca_file: "{ca}", host: other.example,
      interval_ms: 100, rise: 1, fall: 1}}
services:
{services}
"""


def service(name, monitor):
    return (f"  - name: {name}.gtm.example.\n    ttl: 1\n    pools:\n      - name: p\n"
            f"        method: return-all\n        members:\n"
            f"          - {{name: m, address: {ADDR}, monitors: [{monitor}]}}\n"
            f"          - {{name: steady, address: 127.0.0.7, mode: always-up}}\n")


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class HttpsMonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gtm-https-")
        cls.cert, cls.key = os.path.join(cls.dir, "cert.pem"), os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=gtm-test", "-addext", f"subjectAltName=IP:{ADDR}",
                        "-keyout", cls.key, "-out", cls.cert], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, *args):
                pass  # failed handshakes of the verifying monitors are expected

        cls.server = Server((ADDR, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cls.cert, cls.key)
        cls.server.socket = ctx.wrap_socket(cls.server.socket, server_side=True)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        port = cls.server.server_address[1]
        config = os.path.join(cls.dir, "https.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=port, ca=cls.cert, services="".join(
                service(n, n) for n in ("noverify", "ca", "system", "wronghost"))))
        cls.env = gtm_harness.GtmEnv(config).start()

    @classmethod
    def tearDownClass(cls):
        problems = cls.env.close()
        cls.server.shutdown()
        cls.server.server_close()
        shutil.rmtree(cls.dir)
        assert problems == [], problems

    def settle(self, name, expected, limit=3.0):
        self.env.wait_answers(f"{name}.gtm.example.", expected, limit)

    def test_verification_off_is_up(self):
        self.settle("noverify", {ADDR, "127.0.0.7"})

    def test_ca_file_and_address_in_certificate_is_up(self):
        self.settle("ca", {ADDR, "127.0.0.7"})

    def test_system_store_rejects_self_signed(self):
        self.settle("system", {"127.0.0.7"})
        with open(os.path.join(self.env.run_dir, "control.log")) as f:
            self.assertIn("tls: certificate:", f.read())

    def test_host_name_is_checked(self):
        self.settle("wronghost", {"127.0.0.7"})


if __name__ == "__main__":
    gtm_harness.main()
