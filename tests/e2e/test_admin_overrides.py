"""Operator overrides end to end: `gtmctl member|pool enable|disable|drain` change the answers of
the real dataplane at once, survive a reload and a gtm-control restart, and bad names are refused.

Uses examples/demo.yaml: www.gtm.example. has pool site-a (a1 192.0.2.10, a2 192.0.2.11, ratio)
and pool site-b (b1 198.51.100.10, b2 198.51.100.11, round-robin).
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402
from gtm_harness import Daemon, answer_values, binary  # noqa: E402

DEMO = os.path.join(gtm_harness.SOURCE_DIR, "examples", "demo.yaml")
SITE_A = {"192.0.2.10", "192.0.2.11"}
SITE_B = {"198.51.100.10", "198.51.100.11"}
SERVICE = "www.gtm.example."


class AdminOverridesTest(unittest.TestCase):
    def setUp(self):
        self.env = gtm_harness.GtmEnv(DEMO, dataplane_args=["--workers", "1"]).start()

    def tearDown(self):
        problems = self.env.close()
        self.assertEqual(problems, [], "daemons did not stop cleanly")

    def gtmctl(self, *args, expect_rc=0):
        p = subprocess.run([binary("gtmctl"), "--run-dir", self.env.run_dir, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(p.returncode, expect_rc, p.stdout)
        return p.stdout

    def answers(self, n=8):
        seen = set()
        for _ in range(n):
            seen |= set(answer_values(self.env.ask(SERVICE, "A"), "A"))
        return seen

    def test_member_disable_and_enable(self):
        self.assertEqual(self.answers(), SITE_A)
        self.gtmctl("member", "disable", SERVICE, "site-a", "a1")
        self.assertEqual(self.answers(), {"192.0.2.11"})
        # Both members of site-a out: the next pool answers.
        self.gtmctl("member", "drain", SERVICE, "site-a", "a2")
        self.assertEqual(self.answers(), SITE_B)
        status = self.gtmctl("status")
        self.assertIn("member a1 disabled", status)
        self.assertIn("member a2 draining", status)
        self.gtmctl("member", "enable", SERVICE, "site-a", "a1")
        self.gtmctl("member", "enable", SERVICE, "site-a", "a2")
        self.assertEqual(self.answers(), SITE_A)
        self.assertNotIn("override", self.gtmctl("status"))

    def test_pool_disable_applies_to_both_families(self):
        self.gtmctl("pool", "disable", SERVICE, "site-a")
        self.assertEqual(self.answers(), SITE_B)
        aaaa = set(answer_values(self.env.ask(SERVICE, "AAAA"), "AAAA"))
        self.assertEqual(aaaa, {"2001:db8:b::10"})
        self.gtmctl("pool", "enable", SERVICE, "site-a")
        self.assertEqual(self.answers(), SITE_A)

    def test_overrides_survive_reload_and_control_restart(self):
        self.gtmctl("pool", "disable", SERVICE, "site-a")
        self.gtmctl("reload")
        self.assertEqual(self.answers(), SITE_B)
        # A new gtm-control on the same run directory reads the saved overrides.
        self.assertEqual(self.env.control.stop(), 0)
        self.env.control = Daemon(
            "gtm-control",
            [binary("gtm-control"), "--config", self.env.config_path, "--run-dir",
             self.env.run_dir], os.path.join(self.env.run_dir, "control2.log"),
            "gtm-control: ready")
        self.env.control.start()
        self.assertEqual(self.answers(), SITE_B)
        self.assertIn("pool site-a disabled", self.gtmctl("status"))

    def test_unknown_names_and_actions_are_refused(self):
        out = self.gtmctl("member", "disable", SERVICE, "site-a", "nope", expect_rc=1)
        self.assertIn("no member 'nope'", out)
        out = self.gtmctl("pool", "disable", "other.gtm.example.", "site-a", expect_rc=1)
        self.assertIn("no pool 'site-a'", out)
        out = self.gtmctl("pool", "drain", SERVICE, "site-a", expect_rc=1)
        self.assertIn("unknown action", out)
        self.gtmctl("member", "disable", SERVICE, expect_rc=2)
        self.assertEqual(self.answers(), SITE_A)


if __name__ == "__main__":
    gtm_harness.main()
