"""gtm-control end to end: publish, reload (RELOAD and SIGHUP), refused configurations, restarts of
either daemon, and the gtmctl commands, against a real gtm-dataplane on a loopback port.

Each test gets its own run directory and port; processes are stopped by their own PID only.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402
from gtm_harness import Daemon, answer_values, binary, make_query, dns_query  # noqa: E402

DEMO = os.path.join(gtm_harness.SOURCE_DIR, "examples", "demo.yaml")
SITE_A_V4 = {"192.0.2.10", "192.0.2.11"}
CTL_TIMEOUT_S = 30.0
WAIT_S = 10.0  # generous for the sanitizer build


class Stack:
    """A run directory with a config copy, a port, and restartable dataplane/control daemons."""

    def __init__(self):
        self.run_dir = tempfile.mkdtemp(prefix="gtm-e2e-control-")
        self.config = os.path.join(self.run_dir, "config.yaml")
        shutil.copyfile(DEMO, self.config)
        self.port = gtm_harness.pick_free_port()
        self.dataplane = None
        self.control = None
        self._starts = 0
        # Registered so the harness dumps our daemons' logs next to a failure.
        gtm_harness._live_envs.append(self)

    def _log(self, name):
        self._starts += 1
        return os.path.join(self.run_dir, f"{name}.{self._starts}.log")

    def start_dataplane(self):
        self.dataplane = Daemon(
            "gtm-dataplane",
            [binary("gtm-dataplane"), "--listen", f"127.0.0.1:{self.port}", "--run-dir",
             self.run_dir], self._log("dataplane"), "gtm-dataplane: ready")
        self.dataplane.start()

    def control_daemon(self, config=None):
        return Daemon("gtm-control",
                      [binary("gtm-control"), "--config", config or self.config, "--run-dir",
                       self.run_dir], self._log("control"), "gtm-control: ready")

    def start_control(self):
        self.control = self.control_daemon()
        self.control.start()

    def close(self):
        for d in (self.control, self.dataplane):
            if d is not None:
                d.stop()
        if self in gtm_harness._live_envs:
            gtm_harness._live_envs.remove(self)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def describe(self):
        return "\n".join(d.describe() for d in (self.dataplane, self.control) if d is not None)

    # -- clients --

    def gtmctl(self, *args):
        return subprocess.run([binary("gtmctl"), "--run-dir", self.run_dir] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=CTL_TIMEOUT_S)

    def request(self, sock_name, text):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(5.0)
            s.connect(os.path.join(self.run_dir, sock_name))
            s.send(text.encode())
            return s.recv(65536).decode()

    def dataplane_generation(self):
        return json.loads(self.request("dataplane.sock", "STATUS"))["generation"]

    def control_status(self):
        return json.loads(self.request("control.sock", "STATUS"))

    def answers(self, name="www.gtm.example.", rdtype="A", rounds=8):
        """Union of the answers over several queries (ratio pools rotate between members)."""
        seen = set()
        for _ in range(rounds):
            resp = dns_query(make_query(name, rdtype), "127.0.0.1", self.port)
            seen.update(answer_values(resp, rdtype))
        return seen

    def edit_config(self, old, new):
        with open(self.config) as f:
            text = f.read()
        assert old in text, old
        with open(self.config, "w") as f:
            f.write(text.replace(old, new))

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)


def wait_until(predicate, timeout=WAIT_S, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def new_site_a(text):
    return text.replace("192.0.2.10,", "192.0.2.110,").replace("192.0.2.11,", "192.0.2.111,")


SYNTAX_ERROR = "zones:\n  - name: gtm.example.\n    soa: {mname: ns1\n"
FILE_LINE_COL = r"config\.yaml:\d+:\d+: "


class ControlReloadTest(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.close)

    def start_both(self):
        self.stack.start_dataplane()
        self.stack.start_control()

    def test_publishes_at_start_and_reload_applies_an_edit(self):
        s = self.stack
        self.start_both()
        self.assertRegex(s.control.log(),
                         r"gtm-control: published generation 1 \(\d+ bytes, \d+ us; full build")
        self.assertEqual(s.answers(), SITE_A_V4)
        dig = gtm_harness.dig(s.port, "www.gtm.example.", "A")
        self.assertEqual(dig.status, "NOERROR")
        self.assertTrue({r[3] for r in dig.rrs()} <= SITE_A_V4)
        gen = s.dataplane_generation()

        with open(s.config) as f:
            s.write_config(new_site_a(f.read()))
        r = s.gtmctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), f"OK {gen + 1}")
        # The reply comes after the dataplane's acknowledgement: no waiting needed.
        self.assertEqual(s.answers(), {"192.0.2.110", "192.0.2.111"})
        self.assertEqual(s.answers(rdtype="AAAA"), {"2001:db8:a::10"})
        self.assertEqual(s.dataplane_generation(), gen + 1)
        st = s.control_status()
        self.assertEqual(st["generation"], gen + 1)
        self.assertEqual(st["acked_generation"], gen + 1)
        self.assertEqual(st["last_error"], "")
        self.assertEqual(st["config"], s.config)

    def test_broken_configs_are_refused_and_old_answers_stay(self):
        s = self.stack
        self.start_both()
        good = open(s.config).read()
        gen = s.dataplane_generation()
        cases = {
            "syntax": SYNTAX_ERROR,
            "semantic": good.replace("192.0.2.10,", "192.0.2.300,"),
            "unknown method": good.replace("method: round-robin", "method: fastest-ever"),
        }
        for what, text in cases.items():
            with self.subTest(what):
                s.write_config(text)
                r = s.gtmctl("reload")
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertRegex(r.stdout + r.stderr, r"^ERR .*" + FILE_LINE_COL)
                self.assertEqual(s.answers(), SITE_A_V4)
                self.assertEqual(s.dataplane_generation(), gen)
                self.assertRegex(s.control_status()["last_error"], FILE_LINE_COL)
                self.assertRegex(s.control.log(), "gtm-control: reload refused: .*" + FILE_LINE_COL)
                # `gtmctl check` reports the same place without a daemon.
                c = s.gtmctl("check", s.config)
                self.assertEqual(c.returncode, 1)
                self.assertRegex(c.stderr, FILE_LINE_COL)
        self.assertIn("192.0.2.300", s.control_status()["last_error"] + s.control.log())

        s.write_config(new_site_a(good))
        r = s.gtmctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(s.answers(), {"192.0.2.110", "192.0.2.111"})
        self.assertEqual(s.control_status()["last_error"], "")
        self.assertTrue(s.control.alive())

    def test_sighup_reloads_and_refuses_broken_config(self):
        s = self.stack
        self.start_both()
        good = open(s.config).read()
        gen = s.dataplane_generation()

        s.write_config(new_site_a(good))
        s.control.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: s.dataplane_generation() == gen + 1),
                        s.control.log())
        self.assertEqual(s.answers(), {"192.0.2.110", "192.0.2.111"})

        s.write_config(SYNTAX_ERROR)
        s.control.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload refused" in s.control.log()), s.control.log())
        self.assertRegex(s.control.log(), "gtm-control: reload refused: .*" + FILE_LINE_COL)
        self.assertEqual(s.answers(), {"192.0.2.110", "192.0.2.111"})
        self.assertEqual(s.dataplane_generation(), gen + 1)
        self.assertTrue(s.control.alive())

    def test_restarts_keep_serving_and_generation_rises(self):
        s = self.stack
        self.start_both()
        with open(s.config) as f:
            s.write_config(new_site_a(f.read()))
        self.assertEqual(s.gtmctl("reload").returncode, 0)
        gen = s.dataplane_generation()

        # SIGTERM: a clean exit that removes its socket.
        self.assertEqual(s.control.stop(), 0)
        self.assertFalse(os.path.exists(os.path.join(s.run_dir, "control.sock")))

        # The dataplane alone comes back with the last image it was given.
        s.dataplane.stop()
        s.start_dataplane()
        self.assertEqual(s.answers(), {"192.0.2.110", "192.0.2.111"})
        self.assertEqual(s.dataplane_generation(), gen)
        st = s.gtmctl("status")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn(f"dataplane generation: {gen}", st.stdout)
        self.assertIn("control: not running", st.stdout)

        # Control republishes (its own config file, unchanged) above the dataplane's generation.
        s.start_control()
        self.assertGreater(s.dataplane_generation(), gen)
        st = s.gtmctl("status", "--json")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertEqual(json.loads(st.stdout)["generation"], gen + 1)
        self.assertRegex(s.control.log(), rf"published generation {gen + 1} ")

        # A dataplane that lost its image (no snapshot.bin) is noticed and refilled.
        s.dataplane.stop()
        os.unlink(os.path.join(s.run_dir, "snapshot.bin"))
        s.start_dataplane()
        self.assertTrue(wait_until(lambda: s.dataplane_generation() == gen + 2), s.control.log())
        self.assertEqual(s.answers(), {"192.0.2.110", "192.0.2.111"})
        self.assertIn("behind ours", s.control.log())

    def test_control_started_first_waits_for_dataplane(self):
        s = self.stack
        control = s.control_daemon()
        control.ready_text = "gtm-control: waiting for the dataplane"
        s.control = control
        control.start()
        time.sleep(0.5)  # a few 200 ms retries, which must stay quiet
        self.assertTrue(control.alive())
        s.start_dataplane()
        self.assertTrue(wait_until(lambda: "gtm-control: ready" in control.log()), control.log())
        self.assertEqual(control.log().count("waiting for the dataplane"), 1)
        self.assertEqual(s.answers(), SITE_A_V4)
        self.assertEqual(s.dataplane_generation(), 1)

    def test_bad_config_at_start_is_fatal(self):
        s = self.stack
        s.write_config(SYNTAX_ERROR)
        p = subprocess.run([binary("gtm-control"), "--config", s.config, "--run-dir", s.run_dir],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"^gtm-control: .*" + FILE_LINE_COL)
        p = subprocess.run([binary("gtm-control"), "--run-dir", s.run_dir],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--config", p.stderr)

    def test_gtmctl_status_query_and_unreachable(self):
        s = self.stack
        r = s.gtmctl("status")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not reachable", r.stderr)
        r = s.gtmctl("reload")
        self.assertEqual(r.returncode, 1)

        self.start_both()
        s.answers(rounds=3)
        r = s.gtmctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("dataplane generation: 1", r.stdout)
        self.assertRegex(r.stdout, r"control: config .*config\.yaml, generation 1 \(acknowledged 1\)")
        self.assertRegex(r.stdout, r"(?m)^counter\s+w0/udp\s.*total$")
        totals = json.loads(s.request("dataplane.sock", "STATUS"))["totals"]
        self.assertGreaterEqual(totals["queries"], 3)
        for name in ("queries", "responses", "gslb_answers", "no_snapshot"):
            self.assertRegex(r.stdout, rf"(?m)^{name}\s+\d+")
        # The total column of "queries" is the last number on that row.
        row = re.search(r"(?m)^queries\s+(.*)$", r.stdout).group(1).split()
        self.assertGreaterEqual(int(row[-1]), 3)

        q = s.gtmctl("query", "www.gtm.example.", "A")
        self.assertEqual(q.returncode, 0, q.stderr)
        self.assertRegex(q.stdout, r"www\.gtm\.example\.\s+30\s+IN\s+A\s+192\.0\.2\.1[01]")
        explain = [l for l in q.stdout.splitlines() if l.startswith("explain: ")]
        self.assertTrue(explain, q.stdout)
        self.assertTrue(any("site-a" in l for l in explain), q.stdout)

        q = s.gtmctl("query", "www.gtm.example.", "AAAA", "--config", s.config, "--ecs",
                     "10.1.2.0/24", "--client", "127.0.0.1", "--tcp")
        self.assertEqual(q.returncode, 0, q.stderr)
        self.assertRegex(q.stdout, r"www\.gtm\.example\.\s+30\s+IN\s+AAAA\s+2001:db8:a::10")
        self.assertIn("explain: ", q.stdout)

        out = os.path.join(s.run_dir, "compiled.bin")
        c = s.gtmctl("compile", s.config, out)
        self.assertEqual(c.returncode, 0, c.stderr)
        q = s.gtmctl("query", "nope.gtm.example.", "A", "--snapshot", out)
        self.assertEqual(q.returncode, 0, q.stderr)
        self.assertIn("NXDOMAIN", q.stdout)


if __name__ == "__main__":
    gtm_harness.main()
