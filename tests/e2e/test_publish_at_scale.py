"""A health change at scale, end to end: 10,000 members, 3,000 static records and the full-scale
country database (../shared/geo/full), as in bench/publish-scale.sh. A member whose health endpoint
closes leaves the answers of a client of its region (EDNS Client Subnet from Japan) and comes
back, each change published as a health-only build (no recompile of zones and geo tables) that
the dataplane validates reusing the checks of the unchanged sections. Timing is the bench's job;
this test asserts what is published and answered.
"""
import os
import socket
import sys
import tempfile
import threading
import time
import unittest

import dns.edns

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench"))
import publish_scale_config  # noqa: E402

GEO_DB = os.path.normpath(os.path.join(REPO, "..", "shared", "geo", "full",
                                       "geo-whois-asn-country.mmdb"))
FLAPPER = "127.2.0.1"  # member flap0 of service s0, pool site-a (publish_scale_config.py)
SERVICE = "s0.scale.example."
JAPAN = dns.edns.ECSOption("133.0.0.0", 24)  # a JP network of the database: site-a is primary
ROTATION = 2 * (publish_scale_config.PER_SERVICE // 2 + 1)  # round-robin: twice over the pool
LIMIT_S = 5.0


class Listener:
    """The flapper's health endpoint: accepts and closes connections while open."""

    def __init__(self, addr, port):
        self.addr, self.port, self.sock, self.thread = addr, port, None, None

    def open(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, self.port))
        s.listen(64)
        s.settimeout(0.05)
        self.sock, self.running = s, True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                self.sock.accept()[0].close()
            except OSError:
                continue

    def close(self):
        if self.sock is None:
            return
        self.running = False
        self.thread.join()
        self.sock.close()
        self.sock = None


class PublishAtScale(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gtm-e2e-scale-")
        cls.flap_port = gtm_harness.pick_free_port()
        cls.config = os.path.join(cls.tmp, "scale.yaml")
        publish_scale_config.write(cls.config, 10000, 3000, 1, 0, cls.flap_port, GEO_DB)
        cls.flapper = Listener(FLAPPER, cls.flap_port)
        cls.flapper.open()
        cls.env = gtm_harness.GtmEnv(cls.config)
        cls.env.start()

    @classmethod
    def tearDownClass(cls):
        cls.flapper.close()
        problems = cls.env.close()
        for name in os.listdir(cls.tmp):
            os.unlink(os.path.join(cls.tmp, name))
        os.rmdir(cls.tmp)
        if problems:
            raise AssertionError("\n".join(problems))

    def rotation(self):
        """The addresses a Japanese client gets over two turns of the round-robin pool."""
        seen = set()
        for _ in range(ROTATION):
            resp = self.env.ask(SERVICE, "A", options=[JAPAN])
            seen.update(gtm_harness.answer_values(resp, "A"))
        return seen

    def wait_flapper(self, present):
        deadline = time.monotonic() + LIMIT_S
        while True:
            seen = self.rotation()
            if (FLAPPER in seen) == present or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    def test_health_change_at_scale(self):
        env = self.env
        seen = self.wait_flapper(True)
        self.assertIn(FLAPPER, seen, env.describe())
        self.assertEqual(len(seen), publish_scale_config.PER_SERVICE // 2 + 1, seen)
        self.assertTrue(all(a.startswith("127.1.") or a == FLAPPER for a in seen), seen)
        before = env.control_status()
        self.assertEqual(before["full_builds"], 1, before)
        self.assertEqual(env.status()["generation"], before["acked_generation"])

        self.flapper.close()
        seen = self.wait_flapper(False)
        self.assertNotIn(FLAPPER, seen, env.describe())
        self.assertEqual(len(seen), publish_scale_config.PER_SERVICE // 2, seen)
        down = env.control_status()
        self.assertEqual(down["full_builds"], 1, "a health change recompiled everything")
        self.assertGreater(down["health_builds"], before["health_builds"])
        self.assertGreater(down["acked_generation"], before["acked_generation"])
        self.assertGreater(down["last_health_publish_us"], 0)
        last = env.status()["last_publish"]
        self.assertGreater(last["checks_skipped"], 0, last)  # geo/LPM checks reused
        self.assertGreater(last["sections_same"], 0, last)
        # Only an overlay of the health sections travelled; the base (names, zones, LPM tables)
        # was the one in service, shared rather than mapped and compared again.
        self.assertEqual(last["overlay"], 1, last)
        self.assertEqual(last["base_shared"], 1, last)
        self.assertLess(last["received_bytes"] * 4, last["bytes"], last)
        self.assertGreater(last["sections_shared"], 0, last)

        self.flapper.open()
        seen = self.wait_flapper(True)
        self.assertIn(FLAPPER, seen, env.describe())
        self.assertEqual(env.control_status()["full_builds"], 1)
        # Clients outside the access policy's regions keep getting site-b, the default rule.
        resp = env.ask(SERVICE, "A")
        self.assertTrue(gtm_harness.answer_values(resp, "A"))
        self.assertNotIn(FLAPPER, gtm_harness.answer_values(resp, "A"))
        env.assert_alive()


if __name__ == "__main__":
    unittest.main(verbosity=2)
