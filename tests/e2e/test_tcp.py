"""End-to-end DNS over TCP (RFC 7766) against the real gtm-dataplane: pipelining, messages split
over segments, the idle timeout, the connection limit and malformed length-framed input.
Config: examples/demo.yaml.
"""

import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness as h  # noqa: E402

import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

CONFIG = os.path.join(h.SOURCE_DIR, "examples", "demo.yaml")
IDLE_MS = 500
MAX_CONNS = 4

# (name, type, rcode, answer values) over the demo config.
PIPELINE = [
    ("mail.gtm.example.", "A", dns.rcode.NOERROR, ["192.0.2.25"]),
    ("sip.gtm.example.", "A", dns.rcode.NOERROR, ["192.0.2.26"]),
    ("gtm.example.", "MX", dns.rcode.NOERROR, ["10 mail.gtm.example."]),
    ("gtm.example.", "TXT", dns.rcode.NOERROR, ['"v=spf1 -all"']),
    ("ns2.gtm.example.", "AAAA", dns.rcode.NOERROR, ["::1"]),
    ("x.apps.gtm.example.", "A", dns.rcode.NOERROR, ["192.0.2.99"]),
    ("nope.gtm.example.", "A", dns.rcode.NXDOMAIN, []),
    ("mail.gtm.example.", "MX", dns.rcode.NOERROR, []),
    ("example.org.", "A", dns.rcode.REFUSED, []),
    ("_sip._udp.gtm.example.", "SRV", dns.rcode.NOERROR, ["10 60 5060 sip.gtm.example."]),
]


def query_wire(name, rdtype, qid, **kw):
    return h.make_query(name, rdtype, want_id=qid, **kw).to_wire()


class TcpTestBase(unittest.TestCase):
    env = None
    dataplane_args = []

    @classmethod
    def setUpClass(cls):
        cls.env = h.GtmEnv(CONFIG, dataplane_args=cls.dataplane_args).start()

    @classmethod
    def tearDownClass(cls):
        if cls.env is not None:
            cls.env.close_checked()  # also fails on an unclean exit (sanitizer report, crash)

    def tearDown(self):
        self.env.assert_alive()

    def connect(self, v6=False):
        return h.tcp_connect(self.env.port, self.env.addr(v6))

    def roundtrip(self, s, name="mail.gtm.example.", rdtype="A", qid=0x5151):
        s.sendall(h.frame(query_wire(name, rdtype, qid)))
        resp = dns.message.from_wire(h.recv_frame(s))
        self.assertEqual(resp.id, qid)
        return resp

    def assert_server_answers(self):
        """A fresh connection still gets a correct answer (the server survived)."""
        with self.connect() as s:
            resp = self.roundtrip(s)
            self.assertEqual(h.answer_values(resp), ["192.0.2.25"])


class TcpBehaviourTest(TcpTestBase):
    dataplane_args = ["--tcp-idle-ms", str(IDLE_MS), "--tcp-max-conns", "64"]

    def test_pipelined_queries_answered_by_id(self):
        for v6 in ((False, True) if self.env.ipv6 else (False,)):
            with self.subTest(v6=v6), self.connect(v6) as s:
                ids = {}
                batch = b""
                for i, case in enumerate(PIPELINE):
                    qid = 0x1000 + i * 7
                    ids[qid] = case
                    batch += h.frame(query_wire(case[0], case[1], qid))
                s.sendall(batch)  # every query before reading any answer
                seen = set()
                for _ in PIPELINE:
                    resp = dns.message.from_wire(h.recv_frame(s))
                    self.assertIn(resp.id, ids)
                    self.assertNotIn(resp.id, seen, "answered twice")
                    seen.add(resp.id)
                    name, rdtype, rcode, values = ids[resp.id]
                    self.assertEqual(resp.question[0].name.to_text(), name)
                    self.assertEqual(resp.rcode(), rcode, resp.to_text())
                    self.assertEqual(h.answer_values(resp), sorted(values))
                self.assertEqual(seen, set(ids))
                # The connection stays usable after the batch.
                self.assertEqual(h.answer_values(self.roundtrip(s, qid=0x2222)), ["192.0.2.25"])

    def test_many_pipelined_queries(self):
        with self.connect() as s:
            count = 200
            s.sendall(b"".join(h.frame(query_wire("sip.gtm.example.", "A", qid))
                               for qid in range(1, count + 1)))
            got = set()
            for _ in range(count):
                resp = dns.message.from_wire(h.recv_frame(s))
                self.assertEqual(h.answer_values(resp), ["192.0.2.26"])
                got.add(resp.id)
            self.assertEqual(got, set(range(1, count + 1)))

    def test_query_split_across_segments(self):
        wire = h.frame(query_wire("mail.gtm.example.", "A", 0x3131))
        with self.connect() as s:
            # Length split in the middle, then the message in three pieces, with pauses so each
            # piece is its own segment (TCP_NODELAY) and the server sees partial reads.
            for piece in (wire[:1], wire[1:5], wire[5:20], wire[20:]):
                s.sendall(piece)
                time.sleep(0.06)
            resp = dns.message.from_wire(h.recv_frame(s))
            self.assertEqual(resp.id, 0x3131)
            self.assertEqual(h.answer_values(resp), ["192.0.2.25"])
            # Two messages in one segment, the second one's length cut after its first byte.
            second = h.frame(query_wire("sip.gtm.example.", "A", 0x3232))
            s.sendall(wire + second[:1])
            time.sleep(0.06)
            s.sendall(second[1:])
            answers = {}
            for _ in range(2):
                resp = dns.message.from_wire(h.recv_frame(s))
                answers[resp.id] = h.answer_values(resp)
            self.assertEqual(answers, {0x3131: ["192.0.2.25"], 0x3232: ["192.0.2.26"]})

    def test_idle_connection_closed_by_server(self):
        idle = IDLE_MS / 1000
        opened = time.monotonic()
        silent = self.connect()
        used = self.connect()
        try:
            self.roundtrip(used, qid=0x6161)
            answered = time.monotonic()
            closed = h.wait_all_closed([silent, used], 4.0)
            self.assertIsNotNone(closed[0], "a connection that never sent anything stays open")
            self.assertIsNotNone(closed[1], "a connection idle after a query stays open")
            # Not before (most of) the idle time; not long after it either.
            self.assertGreater(closed[0] - opened, idle * 0.8)
            self.assertLess(closed[0] - opened, idle + 2.5)
            self.assertGreater(closed[1] - answered, idle * 0.8)
            self.assertLess(closed[1] - answered, idle + 2.5)
        finally:
            silent.close()
            used.close()
        # A connection that keeps talking is not closed: activity restarts the idle clock.
        with self.connect() as s:
            for i in range(4):
                self.roundtrip(s, qid=0x6200 + i)
                time.sleep(idle / 2)

    def test_malformed_framing_does_not_kill_server(self):
        before = self.env.totals()
        good = query_wire("mail.gtm.example.", "A", 0x7171)
        response_bit = bytearray(good)
        response_bit[2] |= 0x80
        bad_inputs = [
            struct.pack("!H", 0),                        # zero-length message
            h.frame(b"\x01\x02\x03\x04\x05"),            # shorter than a header
            h.frame(bytes(response_bit)),                # a response, not a query
            h.frame(good[:20]),                          # question cut short: FORMERR
            struct.pack("!H", 65535) + good,             # length promises more than ever comes
            b"\x00",                                     # half a length, then close
            h.frame(b"\xff" * 300),                      # junk
        ]
        for payload in bad_inputs:
            with self.subTest(payload=payload[:12]):
                s = self.connect()
                try:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    # Whatever comes back must be well framed; then the server closes.
                    s.settimeout(h.CLIENT_TIMEOUT_S)
                    data = b""
                    try:
                        while True:
                            chunk = s.recv(65535)
                            if not chunk:
                                break
                            data += chunk
                    except (ConnectionResetError, socket.timeout):
                        pass
                    while data:
                        self.assertGreaterEqual(len(data), 2)
                        (n,) = struct.unpack("!H", data[:2])
                        msg, data = data[2:2 + n], data[2 + n:]
                        self.assertEqual(len(msg), n, "truncated frame from the server")
                        self.assertTrue(msg[2] & 0x80, "QR set")
                        self.assertIn(h.rcode_of(msg), (dns.rcode.FORMERR, dns.rcode.NOERROR))
                finally:
                    s.close()
                self.assert_server_answers()
        after = self.env.wait_totals(
            lambda t: t["malformed_dropped"] + t["rcode_formerr"] >=
            before["malformed_dropped"] + before["rcode_formerr"] + 3)
        self.assertGreaterEqual(after["malformed_dropped"] - before["malformed_dropped"], 2,
                                "header-short and QR=1 messages are counted as dropped")
        self.assertGreaterEqual(after["rcode_formerr"] - before["rcode_formerr"], 1)

    def test_pipeline_survives_a_malformed_message(self):
        good1 = h.frame(query_wire("mail.gtm.example.", "A", 0x8181))
        junk = h.frame(b"\x81\x81\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0")
        with self.connect() as s:
            s.sendall(good1 + junk)
            resp = dns.message.from_wire(h.recv_frame(s))
            self.assertEqual(resp.id, 0x8181)
            self.assertEqual(h.answer_values(resp), ["192.0.2.25"])
        self.assert_server_answers()


class TcpConnectionLimitTest(TcpTestBase):
    dataplane_args = ["--tcp-idle-ms", "10000", "--tcp-max-conns", str(MAX_CONNS)]

    def test_connection_over_the_limit_is_closed(self):
        before = self.env.totals()
        conns = [self.connect() for _ in range(MAX_CONNS)]
        extra = []
        try:
            for i, s in enumerate(conns):
                self.assertEqual(h.answer_values(self.roundtrip(s, qid=0x9000 + i)),
                                 ["192.0.2.25"])
            over = self.connect()
            extra.append(over)
            try:
                over.sendall(h.frame(query_wire("mail.gtm.example.", "A", 0x9999)))
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertIsNotNone(h.wait_closed(over, 3.0),
                                 f"connection {MAX_CONNS + 1} was served over the limit")
            after = self.env.wait_totals(lambda t: t["tcp_rejected"] > before["tcp_rejected"])
            self.assertEqual(after["tcp_rejected"] - before["tcp_rejected"], 1)
            # The connections within the limit are unaffected; UDP is unaffected.
            for i, s in enumerate(conns):
                self.assertEqual(h.answer_values(self.roundtrip(s, qid=0x9100 + i)),
                                 ["192.0.2.25"])
            self.assertEqual(h.answer_values(self.env.ask("mail.gtm.example.", "A")),
                             ["192.0.2.25"])
            # Closing one frees a slot (the server may need a moment to notice the close).
            conns.pop().close()
            deadline = time.monotonic() + 3.0
            while True:
                s = self.connect()
                extra.append(s)
                try:
                    resp = self.roundtrip(s, qid=0x9200)
                    self.assertEqual(h.answer_values(resp), ["192.0.2.25"])
                    break
                except (ConnectionError, socket.timeout, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            for s in conns + extra:
                s.close()


if __name__ == "__main__":
    h.main()
