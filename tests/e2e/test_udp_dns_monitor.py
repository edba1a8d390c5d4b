"""UDP and DNS monitors end to end: a UDP echo server and a DNS responder (dnspython) on loopback
addresses; a member whose UDP port is closed is down (ICMP unreachable), a DNS server answering
SERVFAIL or the wrong address is down, and both come back when the answers are right again."""
import os
import socket
import sys
import tempfile
import threading
import unittest

import dns.message
import dns.rcode
import dns.rrset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402


class UdpServer:
    """Answers each datagram with handler(data) (None: no answer)."""

    def __init__(self, addr, handler, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            reply = self.handler(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


class DnsBehaviour:
    mode = "good"  # good | servfail | wrong


def dns_handler(data):
    q = dns.message.from_wire(data)
    r = dns.message.make_response(q)
    if DnsBehaviour.mode == "servfail":
        r.set_rcode(dns.rcode.SERVFAIL)
    else:
        addr = "192.0.2.53" if DnsBehaviour.mode == "good" else "192.0.2.99"
        r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A", addr))
    return r.to_wire()


CONFIG = gtm_harness.ZONE_HEADER.replace("{", "{{").replace("}", "}}") + """
monitors:
  - {{name: echo, type: udp, port: {udp_port}, send: ping, expect: pong, interval_ms: 100,
      rise: 1, fall: 2}}
  - {{name: resolver, type: dns, port: {dns_port}, query_name: probe.example., query_type: A,
      expect_rcode: NOERROR, expect_address: 192.0.2.53, interval_ms: 100, rise: 1, fall: 2}}
services:
  - name: udp.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        members:
          - {{name: live, address: 127.0.0.10, monitors: [echo]}}
          - {{name: closed, address: 127.0.0.12, monitors: [echo]}}
          - {{name: steady, address: 127.0.0.7, mode: always-up}}
  - name: dns.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        members:
          - {{name: ns, address: 127.0.0.11, monitors: [resolver]}}
          - {{name: steady, address: 127.0.0.7, mode: always-up}}
"""


class UdpDnsMonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = UdpServer("127.0.0.10", lambda d: b"pong" if d == b"ping" else None)
        cls.dns = UdpServer("127.0.0.11", dns_handler)
        fd, cls.config = tempfile.mkstemp(prefix="gtm-udp-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(CONFIG.format(udp_port=cls.echo.port, dns_port=cls.dns.port))
        cls.env = gtm_harness.GtmEnv(cls.config).start()

    @classmethod
    def tearDownClass(cls):
        problems = cls.env.close()
        cls.echo.close()
        cls.dns.close()
        os.unlink(cls.config)
        assert problems == [], problems

    def settle(self, name, expected, limit=3.0):
        self.env.wait_answers(f"{name}.gtm.example.", expected, limit)

    def test_udp_echo_and_closed_port(self):
        # 127.0.0.12 has nothing on the port: ICMP port unreachable -> refused -> down.
        self.settle("udp", {"127.0.0.10", "127.0.0.7"})
        with open(os.path.join(self.env.run_dir, "control.log")) as f:
            self.assertIn("(echo): down after 2 failures: udp: Connection refused", f.read())

    def test_dns_rcode_and_address(self):
        DnsBehaviour.mode = "good"
        self.settle("dns", {"127.0.0.11", "127.0.0.7"})
        DnsBehaviour.mode = "servfail"
        self.settle("dns", {"127.0.0.7"})
        DnsBehaviour.mode = "good"
        self.settle("dns", {"127.0.0.11", "127.0.0.7"})
        DnsBehaviour.mode = "wrong"
        self.settle("dns", {"127.0.0.7"})
        DnsBehaviour.mode = "good"
        self.settle("dns", {"127.0.0.11", "127.0.0.7"})


if __name__ == "__main__":
    gtm_harness.main()
