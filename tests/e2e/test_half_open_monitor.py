"""Half-open TCP monitors end to end (a SYN from a raw socket; SYN-ACK = up, RST = down, nothing =
down at the timeout): listeners on loopback (IPv4 and IPv6) are up and never see a connection
reach their accept queue; a closed port is down within interval x fall + 1 s ("rst") and back
within interval x rise + 1 s; a site in a network namespace whose link goes down is down by
timeout within the same bound. Needs root (raw sockets, namespaces); skipped otherwise."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

INTERVAL_S = 0.2
RISE, FALL = 2, 2


def config(port, site, ipv6):
    lo_v6 = '          - {name: lo6, address: "::1"}\n' if ipv6 else ""
    return gtm_harness.ZONE_HEADER + f"""
monitors:
  - {{name: syn, type: tcp-half-open, port: {port}, interval_ms: {int(INTERVAL_S * 1000)},
      timeout_ms: 150, rise: {RISE}, fall: {FALL}}}
services:
  - name: lo.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        monitors: [syn]
        members:
          - {{name: lo4, address: 127.0.0.2}}
          - {{name: steady, address: 127.0.0.9, mode: always-up}}
{lo_v6}  - name: site.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        monitors: [syn]
        members:
          - {{name: s4, address: {site.v4}}}
          - {{name: steady, address: 127.0.0.9, mode: always-up}}
"""


@unittest.skipUnless(os.geteuid() == 0, "raw sockets and network namespaces need root")
class HalfOpenMonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ipv6 = gtm_harness.ipv6_loopback_available()
        cls.lo_addrs = ["127.0.0.2"] + (["::1"] if cls.ipv6 else [])
        cls.port = gtm_harness.free_port_on(cls.lo_addrs)
        cls.listeners = {a: gtm_harness.PassiveListener(a, cls.port) for a in cls.lo_addrs}
        cls.site = gtm_harness.NetnsSite("gtmho", 162).start()
        try:
            cls.site.popen(["/usr/bin/python3", "-c",
                            "import socket, time\n"
                            f"s = socket.create_server(('{cls.site.v4}', {cls.port}))\n"
                            "time.sleep(3600)\n"])
            cls.config = gtm_harness.write_config(config(cls.port, cls.site, cls.ipv6))
            cls.env = gtm_harness.GtmEnv(cls.config).start()
        except BaseException:
            cls.site.close()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = cls.env.close()
        cls.site.close()
        for listener in cls.listeners.values():
            listener.close()
        os.unlink(cls.config)
        assert problems == [], problems

    def test_1_listeners_are_up_and_see_no_connection(self):
        now = time.monotonic()
        self.env.wait_answers_within(now, "lo.gtm.example.", {"127.0.0.2", "127.0.0.9"}, RISE * INTERVAL_S + 1)
        if self.ipv6:
            self.env.wait_answers_within(now, "lo.gtm.example.", {"::1"}, RISE * INTERVAL_S + 1, "AAAA")
        time.sleep(5 * INTERVAL_S)  # several more probes
        for addr, listener in self.listeners.items():
            self.assertTrue(listener.accepted_nothing(), f"a probe of {addr} completed a handshake")
        self.assertIn(f"health: 127.0.0.2:{self.port} (syn): up after 2 successes: syn-ack",
                      self.env.control.log())

    def test_2_closed_port_is_down_by_rst_and_returns(self):
        for addr in self.lo_addrs:
            rdtype = "AAAA" if ":" in addr else "A"
            up = {addr} | ({"127.0.0.9"} if rdtype == "A" else set())
            down = up - {addr}
            self.env.wait_answers("lo.gtm.example.", up, RISE * INTERVAL_S + 1, rdtype)
            closed_at = time.monotonic()
            self.listeners[addr].close()
            took = self.env.wait_answers_within(closed_at, "lo.gtm.example.", down, FALL * INTERVAL_S + 1,
                                   rdtype)
            print(f"{addr}: removal {took:.3f} s")
            endpoint = f"[{addr}]:{self.port}" if ":" in addr else f"{addr}:{self.port}"
            self.assertIn(f"health: {endpoint} (syn): down after 2 failures: rst: port closed",
                          self.env.control.log())
            opened_at = time.monotonic()
            self.listeners[addr] = gtm_harness.PassiveListener(addr, self.port)
            took = self.env.wait_answers_within(opened_at, "lo.gtm.example.", up, RISE * INTERVAL_S + 1, rdtype)
            print(f"{addr}: restore {took:.3f} s")

    def test_3_unreachable_site_is_down_by_timeout(self):
        up = {self.site.v4, "127.0.0.9"}
        self.env.wait_answers("site.gtm.example.", up, 5)  # the namespace's listener starting
        down_at = time.monotonic()
        self.site.link(False)
        took = self.env.wait_answers_within(down_at, "site.gtm.example.", {"127.0.0.9"}, FALL * INTERVAL_S + 1)
        print(f"site: removal {took:.3f} s")
        self.assertIn(f"health: {self.site.v4}:{self.port} (syn): down after 2 failures: timeout",
                      self.env.control.log())
        up_at = time.monotonic()
        self.site.link(True)
        took = self.env.wait_answers_within(up_at, "site.gtm.example.", up, RISE * INTERVAL_S + 1)
        print(f"site: restore {took:.3f} s")


if __name__ == "__main__":
    gtm_harness.main()
