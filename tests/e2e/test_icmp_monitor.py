"""ICMP echo monitors end to end: loopback addresses (IPv4 and IPv6) answer pings and are up; a site
in a network namespace leaves the answers within interval x fall + 1 s when its link goes down and
returns within interval x rise + 1 s when it comes back, for A and AAAA alike. Without CAP_NET_RAW,
gtm-control refuses such a configuration with a message that says so (at start and on reload) and
keeps serving the last good one. Needs root (raw sockets, namespaces); skipped otherwise."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

INTERVAL_S = 0.2
RISE, FALL = 2, 2
# Drops gtm-control's CAP_NET_RAW (from the bounding and inheritable sets: root keeps the rest).
NO_NET_RAW = ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"]


def config(site, ipv6):
    lo_v6 = '          - {name: lo6, address: "::1"}\n' if ipv6 else ""
    return gtm_harness.ZONE_HEADER + f"""
monitors:
  - {{name: ping, type: icmp, count: 3, max_loss_percent: 34, interval_ms: {int(INTERVAL_S * 1000)},
      timeout_ms: 150, rise: {RISE}, fall: {FALL}}}
services:
  - name: lo.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        monitors: [ping]
        members:
          - {{name: lo4, address: 127.0.0.2}}
{lo_v6}  - name: site.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        monitors: [ping]
        members:
          - {{name: s4, address: {site.v4}}}
          - {{name: s6, address: "{site.v6}"}}
          - {{name: steady, address: 127.0.0.9, mode: always-up}}
"""


@unittest.skipUnless(os.geteuid() == 0, "raw sockets and network namespaces need root")
class IcmpMonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.site = gtm_harness.NetnsSite("gtmic", 160).start()
        cls.ipv6 = gtm_harness.ipv6_loopback_available()
        try:
            cls.config = gtm_harness.write_config(config(cls.site, cls.ipv6))
            cls.env = gtm_harness.GtmEnv(cls.config).start()
        except BaseException:
            cls.site.close()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = cls.env.close()
        cls.site.close()
        os.unlink(cls.config)
        assert problems == [], problems

    def test_1_loopback_addresses_answer_pings(self):
        now = time.monotonic()
        self.env.wait_answers_within(now, "lo.gtm.example.", {"127.0.0.2"}, RISE * INTERVAL_S + 1)
        if self.ipv6:
            self.env.wait_answers_within(now, "lo.gtm.example.", {"::1"}, RISE * INTERVAL_S + 1, "AAAA")

    def test_2_site_leaves_and_returns(self):
        up4 = {self.site.v4, "127.0.0.9"}
        now = time.monotonic()
        self.env.wait_answers_within(now, "site.gtm.example.", up4, RISE * INTERVAL_S + 1)
        self.env.wait_answers_within(now, "site.gtm.example.", {self.site.v6}, RISE * INTERVAL_S + 1, "AAAA")

        down_at = time.monotonic()
        self.site.link(False)
        bound = FALL * INTERVAL_S + 1
        took4 = self.env.wait_answers_within(down_at, "site.gtm.example.", {"127.0.0.9"}, bound)
        took6 = self.env.wait_answers_within(down_at, "site.gtm.example.", set(), bound, "AAAA")
        print(f"removal: A {took4:.3f} s, AAAA {took6:.3f} s (bound {bound:.1f} s)")
        log = self.env.control.log()
        self.assertRegex(log, rf"health: {self.site.v4} \(ping\): down after 2 failures: ")

        up_at = time.monotonic()
        self.site.link(True)
        bound = RISE * INTERVAL_S + 1
        took4 = self.env.wait_answers_within(up_at, "site.gtm.example.", up4, bound)
        took6 = self.env.wait_answers_within(up_at, "site.gtm.example.", {self.site.v6}, bound, "AAAA")
        print(f"restore: A {took4:.3f} s, AAAA {took6:.3f} s (bound {bound:.1f} s)")
        self.assertIn(f"health: {self.site.v4} (ping): up after 2 successes: ", self.env.control.log())


@unittest.skipUnless(os.geteuid() == 0, "dropping a capability needs it first")
class WithoutNetRawTest(unittest.TestCase):
    def test_start_is_refused_with_a_clear_message(self):
        site = gtm_harness.NetnsSite("gtmnr", 161)  # only its addresses: nothing is set up
        path = gtm_harness.write_config(config(site, False))
        with gtm_harness.env(path, with_control=False) as e:
            control = gtm_harness.Daemon(
                "gtm-control",
                NO_NET_RAW + [gtm_harness.binary("gtm-control"), "--config", path, "--run-dir",
                              e.run_dir], os.path.join(e.run_dir, "control.log"), "ready")
            with self.assertRaises(RuntimeError):
                control.start()
            self.assertEqual(control.proc.wait(), 1)
            control._log.close()
            log = control.log()
            self.assertIn("raw ICMP socket: Operation not permitted", log)
            self.assertIn("CAP_NET_RAW", log)
        os.unlink(path)

    def test_reload_is_refused_and_the_old_configuration_serves(self):
        tcp_only = gtm_harness.ZONE_HEADER + """
services:
  - name: lo.gtm.example.
    ttl: 1
    pools:
      - name: p
        members:
          - {name: a, address: 127.0.0.7}
"""
        path = gtm_harness.write_config(tcp_only)
        with gtm_harness.env(path, with_control=False) as e:
            e.control = gtm_harness.Daemon(
                "gtm-control",
                NO_NET_RAW + [gtm_harness.binary("gtm-control"), "--config", path, "--run-dir",
                              e.run_dir], os.path.join(e.run_dir, "control.log"),
                "gtm-control: ready")
            e.control.start()
            self.assertEqual(e.answers("lo.gtm.example."), {"127.0.0.7"})
            with open(path, "w") as f:
                f.write(config(gtm_harness.NetnsSite("gtmnr", 161), False))
            reply = e._seqpacket("control.sock", "RELOAD")
            self.assertTrue(reply.startswith("ERR "), reply)
            self.assertIn("CAP_NET_RAW", reply)
            self.assertIn("CAP_NET_RAW", e.control_status()["last_error"])
            self.assertEqual(e.answers("lo.gtm.example."), {"127.0.0.7"})
            e.assert_alive()
        os.unlink(path)


if __name__ == "__main__":
    gtm_harness.main()
