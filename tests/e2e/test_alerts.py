"""State-change events end to end: a change that takes members, pools or services in or out of the
answers, or a switch-policy transition between a rule's primary and secondary pool sets, is logged
by gtm-control and POSTed as JSON to the configured webhooks, with retries; a dead webhook never
holds up control. The receiver is a real HTTP server on a loopback port.
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402
from gtm_harness import answer_values, binary  # noqa: E402

DEMO = os.path.join(gtm_harness.SOURCE_DIR, "examples", "demo.yaml")
SERVICE = "www.gtm.example."


class Receiver:
    """Collects POSTed JSON bodies; answers 500 to the first `fail_first` requests."""

    def __init__(self, fail_first=0):
        self.bodies = []
        self.requests = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests += 1
                    fail = receiver.requests <= receiver.fail_first
                    if not fail:
                        receiver.bodies.append(json.loads(body))
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.bodies)):
                    return list(self.bodies)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"webhook bodies so far: {self.bodies}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# Site a is the primary set of the only rule and fails over below 2 usable members; it is
# preemptive, so it is back as soon as both are usable again.
SWITCH_CONFIG = """
zones:
  - name: gtm.example.
    soa: {mname: ns1.gtm.example., rname: hostmaster.gtm.example., serial: 1, minimum: 60}
    ns: [ns1.gtm.example.]
    records:
      - {name: ns1, type: A, data: 127.0.0.1}
services:
  - name: www.gtm.example.
    ttl: 30
    pools:
      - name: site-a
        method: return-all
        members:
          - {name: a1, address: 192.0.2.10}
          - {name: a2, address: 192.0.2.11}
      - name: site-b
        method: return-all
        members:
          - {name: b1, address: 198.51.100.10}
    access_policy:
      - {primary: site-a, secondary: site-b}
    switch_policy: {min_members: 2, failback: preemptive}
"""


def config_with_webhook(url, retries=2, base=None):
    if base is None:
        with open(DEMO) as f:
            text = f.read()
    else:
        text = base
    text += ("\nalerts:\n  webhooks:\n"
             f"    - {{url: \"{url}\", timeout_ms: 1000, retries: {retries}}}\n")
    fd, path = tempfile.mkstemp(prefix="gtm-alerts-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class AlertsTest(unittest.TestCase):
    def start(self, url, retries=2, base=None):
        self.config = config_with_webhook(url, retries, base)
        self.env = gtm_harness.GtmEnv(self.config).start()

    def tearDown(self):
        problems = self.env.close()
        os.unlink(self.config)
        self.assertEqual(problems, [], "daemons did not stop cleanly")

    def gtmctl(self, *args, expect_rc=0):
        p = subprocess.run([binary("gtmctl"), "--run-dir", self.env.run_dir, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(p.returncode, expect_rc, p.stdout)
        return p.stdout

    def control_status(self):
        return self.env.control_status()

    def test_member_pool_service_events_with_retry(self):
        rx = Receiver(fail_first=1)  # the first POST fails: the retry must deliver it
        try:
            self.start(f"http://127.0.0.1:{rx.port}/hook")
            self.gtmctl("member", "disable", SERVICE, "site-a", "a1")
            bodies = rx.wait_for(lambda b: len(b) >= 1)
            self.assertEqual(bodies[0]["event"], "member")
            self.assertEqual((bodies[0]["service"], bodies[0]["type"], bodies[0]["pool"],
                              bodies[0]["member"]), (SERVICE, "A", "site-a", "a1"))
            self.assertEqual((bodies[0]["from"], bodies[0]["to"]), ("up", "down"))
            self.assertIn("MEMBER disable", bodies[0]["reason"])
            self.assertGreaterEqual(rx.requests, 2)

            # Both pools of the A service down: member, pool and service events, in that order.
            self.gtmctl("pool", "disable", SERVICE, "site-a")
            self.gtmctl("pool", "disable", SERVICE, "site-b")
            bodies = rx.wait_for(lambda b: any(e["event"] == "service" and e["type"] == "A"
                                               for e in b))
            kinds = [(e["event"], e.get("pool"), e.get("member"), e["type"]) for e in bodies]
            self.assertIn(("pool", "site-a", None, "A"), kinds)
            self.assertIn(("pool", "site-b", None, "A"), kinds)
            self.assertLess(kinds.index(("pool", "site-b", None, "A")),
                            kinds.index(("service", None, None, "A")))
            # Every pool down: the fallback answers.
            self.assertEqual(set(answer_values(self.env.ask(SERVICE, "A"), "A")), {"203.0.113.1"})

            # Events of the same publish may still be on their way (the service event was awaited,
            # not the last one): every event control counted must arrive, and no more.
            status = self.control_status()
            bodies = rx.wait_for(lambda b: len(b) >= status["events"])
            time.sleep(0.3)
            self.assertEqual(len(rx.wait_for(lambda b: True)), status["events"])
            status = self.control_status()
            self.assertGreaterEqual(status["webhooks_delivered"], len(bodies))
            self.assertGreater(status["last_publish_us"], 0)
            with open(os.path.join(self.env.run_dir, "control.log")) as f:
                log = f.read()
            self.assertIn("event: member www.gtm.example. A site-a a1: up -> down", log)
        finally:
            rx.close()

    def test_switch_policy_events(self):
        rx = Receiver()
        try:
            self.start(f"http://127.0.0.1:{rx.port}/hook", base=SWITCH_CONFIG)
            self.assertEqual(set(answer_values(self.env.ask(SERVICE, "A"), "A")),
                             {"192.0.2.10", "192.0.2.11"})
            # One member of site a out: below its minimum, the rule switches to site b.
            self.gtmctl("member", "disable", SERVICE, "site-a", "a2")
            bodies = rx.wait_for(lambda b: any(e["event"] == "switch" for e in b))
            switch = [e for e in bodies if e["event"] == "switch"]
            self.assertEqual(len(switch), 1, bodies)
            self.assertEqual((switch[0]["service"], switch[0]["type"], switch[0]["rule"],
                              switch[0]["from"], switch[0]["to"], switch[0]["why"]),
                             (SERVICE, "A", 1, "primary", "secondary",
                              "primary below its minimum"))
            self.assertIn("MEMBER disable", switch[0]["reason"])
            self.assertEqual(set(answer_values(self.env.ask(SERVICE, "A"), "A")),
                             {"198.51.100.10"})

            self.gtmctl("member", "enable", SERVICE, "site-a", "a2")
            bodies = rx.wait_for(lambda b: sum(e["event"] == "switch" for e in b) >= 2)
            back = [e for e in bodies if e["event"] == "switch"][1]
            self.assertEqual((back["rule"], back["from"], back["to"], back["why"]),
                             (1, "secondary", "primary", "primary good again"))
            self.assertGreater(back["generation"], switch[0]["generation"])
            self.assertEqual(set(answer_values(self.env.ask(SERVICE, "A"), "A")),
                             {"192.0.2.10", "192.0.2.11"})
            with open(os.path.join(self.env.run_dir, "control.log")) as f:
                log = f.read()
            self.assertIn("switch: www.gtm.example. A rule 1: primary set -> secondary set "
                          "(primary below its minimum)", log)
            self.assertIn("switch: www.gtm.example. A rule 1: secondary set -> primary set "
                          "(primary good again)", log)
        finally:
            rx.close()

    def test_dead_webhook_does_not_block_control(self):
        # Nothing listens on this port: every attempt fails quickly, and control goes on.
        rx = Receiver()
        port = rx.port
        rx.close()
        self.start(f"http://127.0.0.1:{port}/hook", retries=1)
        started = time.monotonic()
        self.gtmctl("member", "disable", SERVICE, "site-a", "a1")
        self.gtmctl("member", "disable", SERVICE, "site-a", "a2")
        self.assertLess(time.monotonic() - started, 5.0)
        # Site-a has no usable member left: site-b answers.
        for _ in range(4):
            self.assertLessEqual(set(answer_values(self.env.ask(SERVICE, "A"), "A")),
                                 {"198.51.100.10", "198.51.100.11"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.control_status()["webhooks_failed"] < 3:
            time.sleep(0.1)
        self.assertGreaterEqual(self.control_status()["webhooks_failed"], 3)

    def test_bad_webhook_url_is_a_config_error(self):
        self.config = config_with_webhook("ftp://127.0.0.1/hook")
        p = subprocess.run([binary("gtmctl"), "check", self.config], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, r":\d+:\d+: 'url' must start with http:// or https://")
        self.env = gtm_harness.GtmEnv(DEMO, with_control=False)  # nothing to stop


if __name__ == "__main__":
    gtm_harness.main()
