"""Health monitors end to end: real TCP and HTTP listeners on loopback addresses are probed by
gtm-control; a failed member leaves the answers within interval x fall + 1 s and comes back within
interval x rise + 1 s, every pool down fails over to the next pool, an alternating member does not
flap the answers, and the change reaches the dataplane within milliseconds of the deciding probe.
"""
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

INTERVAL_S = 0.1
RISE, FALL = 2, 2


class TcpListener:
    """Accepts and closes connections on addr:port until stopped."""

    def __init__(self, addr, port):
        self.addr, self.port = addr, port
        self.sock = None

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, self.port))
        s.listen(64)
        s.settimeout(0.2)
        self.sock = s
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
                c.close()
            except OSError:
                continue

    def stop(self):
        self.running = False
        self.thread.join()
        self.sock.close()


class HttpBackend:
    """An HTTP health endpoint whose answers are scripted: `mode` is 'ok', 'fail' or 'alternate'."""

    def __init__(self, addr):
        self.mode = "ok"
        self.count = 0
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                backend.count += 1
                good = backend.mode == "ok" or (backend.mode == "alternate" and backend.count % 2)
                body = b"status: ok\n" if good else b"status: broken\n"
                self.send_response(200 if good else 503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((addr, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port_on(addrs):
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addrs[0], 0))
            port = s.getsockname()[1]
        try:
            for a in addrs:
                with socket.socket() as t:
                    t.bind((a, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


CONFIG = gtm_harness.ZONE_HEADER.replace("{", "{{").replace("}", "}}") + """
monitors:
  - {{name: tcp, type: tcp, port: {tcp_port}, interval_ms: 100, timeout_ms: 80, rise: {rise}, fall: {fall}}}
  - {{name: web, type: http, port: {http_port}, path: /health, expect_status: "200-299",
      body_contains: "status: ok", interval_ms: 100, timeout_ms: 80, rise: {rise}, fall: {fall}}}
services:
  - name: www.gtm.example.
    ttl: 1
    pools:
      - name: primary
        method: return-all
        monitors: [tcp]
        members:
          - {{name: a, address: 127.0.0.2}}
          - {{name: b, address: 127.0.0.3}}
      - name: backup
        method: return-all
        members:
          - {{name: dr, address: 127.0.0.9, mode: always-up}}
  - name: web.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        members:
          - {{name: h, address: 127.0.0.4, monitors: [web]}}
          - {{name: steady, address: 127.0.0.5, mode: always-up}}
"""


class HealthFailoverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tcp_port = free_port_on(["127.0.0.2", "127.0.0.3"])
        cls.listeners = {a: TcpListener(a, cls.tcp_port).start() for a in ("127.0.0.2", "127.0.0.3")}
        cls.web = HttpBackend("127.0.0.4")
        fd, cls.config = tempfile.mkstemp(prefix="gtm-health-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(CONFIG.format(tcp_port=cls.tcp_port, http_port=cls.web.port, rise=RISE,
                                  fall=FALL))
        cls.env = gtm_harness.GtmEnv(cls.config).start()

    @classmethod
    def tearDownClass(cls):
        problems = cls.env.close()
        for listener in cls.listeners.values():
            if listener.sock is not None and listener.sock.fileno() >= 0:
                listener.stop()
        cls.web.close()
        os.unlink(cls.config)
        assert problems == [], problems

    def answers(self, name="www.gtm.example."):
        return self.env.answers(name)

    def wait_answers(self, expected, limit_s, name="www.gtm.example."):
        took = self.env.wait_answers(name, expected, limit_s)
        self.assertLessEqual(took, limit_s)
        return took

    def control_status(self):
        return self.env.control_status()

    def test_1_failed_member_leaves_and_returns(self):
        both = {"127.0.0.2", "127.0.0.3"}
        self.wait_answers(both, RISE * INTERVAL_S + 1)
        self.listeners["127.0.0.2"].stop()
        took = self.wait_answers({"127.0.0.3"}, FALL * INTERVAL_S + 1)
        print(f"removal took {took:.3f} s (bound {FALL * INTERVAL_S + 1:.1f} s)")
        self.assertLessEqual(took, FALL * INTERVAL_S + 1)
        status = self.control_status()
        print(f"probe verdict -> dataplane ack: {status['last_health_publish_us']} us")
        self.assertGreater(status["last_health_publish_us"], 0)
        self.assertLess(status["last_health_publish_us"], 100000)
        # A health change rebuilds only what health decides: the configuration, zones and tables
        # of the first (full) build are reused.
        self.assertGreaterEqual(status["health_builds"], 1, status)
        self.assertGreaterEqual(status["health_publishes"], 1, status)
        self.assertEqual(status["full_builds"], 1, status)
        shown = subprocess.run([gtm_harness.binary("gtmctl"), "--run-dir", self.env.run_dir,
                                "status"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=30).stdout
        self.assertRegex(shown, r"control: last health publish: [1-9]\d* us from the deciding "
                                r"probe verdict to the dataplane's ack")
        self.assertRegex(shown, r"dataplane: last publish: \d+ us to validate and swap in \([1-9]")

        self.listeners["127.0.0.2"] = TcpListener("127.0.0.2", self.tcp_port).start()
        took = self.wait_answers(both, RISE * INTERVAL_S + 1)
        print(f"restore took {took:.3f} s (bound {RISE * INTERVAL_S + 1:.1f} s)")
        self.assertLessEqual(took, RISE * INTERVAL_S + 1)

    def test_2_whole_pool_down_fails_over(self):
        for a in ("127.0.0.2", "127.0.0.3"):
            self.listeners[a].stop()
        self.wait_answers({"127.0.0.9"}, FALL * INTERVAL_S + 1)
        # The events are logged right after the dataplane took the image: maybe just after the
        # answers changed.
        want = "event: pool www.gtm.example. A primary: up -> down (health: "
        deadline = time.monotonic() + 2
        while want not in self.env.control.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        log = self.env.control.log()
        self.assertIn(want, log)
        self.assertIn("Connection refused", log)
        for a in ("127.0.0.2", "127.0.0.3"):
            self.listeners[a] = TcpListener(a, self.tcp_port).start()
        self.wait_answers({"127.0.0.2", "127.0.0.3"}, RISE * INTERVAL_S + 1)

    def test_3_http_status_and_body(self):
        both = {"127.0.0.4", "127.0.0.5"}
        self.wait_answers(both, RISE * INTERVAL_S + 1, "web.gtm.example.")
        self.web.mode = "fail"
        self.wait_answers({"127.0.0.5"}, FALL * INTERVAL_S + 1, "web.gtm.example.")
        self.web.mode = "ok"
        self.wait_answers(both, RISE * INTERVAL_S + 1, "web.gtm.example.")

    def test_4_alternating_member_does_not_flap(self):
        both = {"127.0.0.4", "127.0.0.5"}
        self.wait_answers(both, RISE * INTERVAL_S + 1, "web.gtm.example.")
        events_before = self.control_status()["events"]
        # Good and bad answers alternate: never RISE or FALL in a row, so no state change.
        self.web.mode = "alternate"
        deadline = time.monotonic() + 20 * INTERVAL_S
        while time.monotonic() < deadline:
            self.assertEqual(self.answers("web.gtm.example."), both)
            time.sleep(0.05)
        self.assertEqual(self.control_status()["events"], events_before)
        self.web.mode = "ok"

    def test_5_control_crash_leaves_dataplane_answering(self):
        both = {"127.0.0.2", "127.0.0.3"}
        self.wait_answers(both, RISE * INTERVAL_S + 1)
        os.kill(self.env.control.proc.pid, signal.SIGKILL)
        self.env.control.proc.wait(timeout=10)
        # No control plane: the last snapshot keeps answering, health frozen as it was.
        for _ in range(20):
            self.assertEqual(self.answers(), both)
            time.sleep(0.02)
        # A new gtm-control takes over and probes again.
        self.env.control = gtm_harness.Daemon(
            "gtm-control",
            [gtm_harness.binary("gtm-control"), "--config", self.env.config_path, "--run-dir",
             self.env.run_dir], os.path.join(self.env.run_dir, "control2.log"),
            "gtm-control: ready")
        self.env.control.start()
        self.listeners["127.0.0.3"].stop()
        self.wait_answers({"127.0.0.2"}, FALL * INTERVAL_S + 1)
        self.listeners["127.0.0.3"] = TcpListener("127.0.0.3", self.tcp_port).start()
        self.wait_answers(both, RISE * INTERVAL_S + 1)


if __name__ == "__main__":
    gtm_harness.main()
