"""Shorter TTL for unstable members (`unstable_ttl`, `unstable_window_ms`) end to end: answers
carry the service TTL while its members are steady (coming up at start-up is not a flap); once a
member goes down, the answers of its service (and only of its service) carry unstable_ttl, and
the normal TTL returns by itself when the window after the last change has passed. TTLs are read
with dig and dnspython. Uses half-open monitors, so it needs root; skipped otherwise."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

INTERVAL_S = 0.1
RISE, FALL = 2, 2
TTL, UNSTABLE_TTL, WINDOW_S = 30, 2, 3.0


def config(port):
    return gtm_harness.ZONE_HEADER + f"""
options: {{unknown_health: down, unstable_ttl: {UNSTABLE_TTL}, unstable_window_ms: {int(WINDOW_S * 1000)}}}
monitors:
  - {{name: syn, type: tcp-half-open, port: {port}, interval_ms: {int(INTERVAL_S * 1000)},
      timeout_ms: 80, rise: {RISE}, fall: {FALL}}}
services:
  - name: www.gtm.example.
    ttl: {TTL}
    pools:
      - name: p
        method: return-all
        monitors: [syn]
        members:
          - {{name: a, address: 127.0.0.2}}
          - {{name: b, address: 127.0.0.3}}
  - name: calm.gtm.example.
    ttl: {TTL}
    pools:
      - name: p
        method: return-all
        monitors: [syn]
        members:
          - {{name: c, address: 127.0.0.4}}
"""


@unittest.skipUnless(os.geteuid() == 0, "half-open monitors need CAP_NET_RAW")
class UnstableTtlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        cls.port = gtm_harness.free_port_on(cls.addrs)
        cls.listeners = {a: gtm_harness.PassiveListener(a, cls.port) for a in cls.addrs}
        cls.config = gtm_harness.write_config(config(cls.port))
        cls.env = gtm_harness.GtmEnv(cls.config).start()

    @classmethod
    def tearDownClass(cls):
        problems = cls.env.close()
        for listener in cls.listeners.values():
            listener.close()
        os.unlink(cls.config)
        assert problems == [], problems

    def ttl(self, name="www.gtm.example."):
        """The TTL of the A answer, by dnspython."""
        resp = self.env.ask(name, "A")
        self.assertTrue(resp.answer, f"{name}: no answer")
        return resp.answer[0].ttl

    def dig_ttls(self, name="www.gtm.example."):
        return {ttl for _, ttl, _, _ in self.env.dig(name, "A").rrs("ANSWER", "A")}

    def test_ttl_drops_after_a_flap_and_returns_after_the_window(self):
        self.env.wait_answers("www.gtm.example.", {"127.0.0.2", "127.0.0.3"}, 5)
        self.env.wait_answers("calm.gtm.example.", {"127.0.0.4"}, 5)
        self.assertEqual(self.ttl(), TTL)  # coming up (unknown -> up) is not a flap
        self.assertEqual(self.dig_ttls(), {TTL})

        self.listeners["127.0.0.2"].close()
        self.env.wait_answers("www.gtm.example.", {"127.0.0.3"}, FALL * INTERVAL_S + 1)
        changed_at = time.monotonic()  # within ~20 ms after the publish that took a out
        self.assertEqual(self.ttl(), UNSTABLE_TTL)
        self.assertEqual(self.dig_ttls(), {UNSTABLE_TTL})
        self.assertEqual(self.ttl("calm.gtm.example."), TTL)  # another service: untouched

        # Short until the window has passed, then the normal TTL by itself (no probe changes).
        while True:
            ttl = self.ttl()
            elapsed = time.monotonic() - changed_at
            if ttl == TTL:
                break
            self.assertEqual(ttl, UNSTABLE_TTL)
            self.assertLess(elapsed, WINDOW_S + 1, "the normal TTL did not come back")
            time.sleep(0.05)
        print(f"normal TTL back {elapsed:.2f} s after the change (window {WINDOW_S:.1f} s)")
        self.assertGreater(elapsed, WINDOW_S - 0.3)
        self.assertEqual(self.dig_ttls(), {TTL})
        self.assertEqual(self.env.answers("www.gtm.example."), {"127.0.0.3"})

        # Coming back is a change too.
        self.listeners["127.0.0.2"] = gtm_harness.PassiveListener("127.0.0.2", self.port)
        self.env.wait_answers("www.gtm.example.", {"127.0.0.2", "127.0.0.3"}, RISE * INTERVAL_S + 1)
        self.assertEqual(self.dig_ttls(), {UNSTABLE_TTL})
        self.assertIn("unstable_ttl: a window ended, publishing the normal TTL",
                      self.env.control.log())


if __name__ == "__main__":
    gtm_harness.main()
