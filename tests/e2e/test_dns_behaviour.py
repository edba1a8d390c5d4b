"""End-to-end DNS behaviour: the real gtm-dataplane + gtm-control, queried with dig, kdig and
dnspython over UDP and TCP, IPv4 and IPv6 loopback. Config: tests/e2e/configs/behaviour.yaml.

The dataplane runs with one UDP worker so that GSLB selection (one wheel / rotation per worker) is
exact: 400 queries to a 3:1 ratio pool give exactly 300 and 100.
"""

import collections
import json
import os
import random
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness as h  # noqa: E402

import dns.edns  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.opcode  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.update  # noqa: E402

CONFIG = os.path.join(h.CONFIG_DIR, "behaviour.yaml")
ZONE = "gtm.example."
SOA_TEXT = "ns1.gtm.example. hostmaster.gtm.example. 2026112201 3600 600 1209600 60"
NEGATIVE_TTL = 60          # min(SOA TTL 3600, MINIMUM 60)
OTHER_NEGATIVE_TTL = 100   # other.test.: min(SOA TTL 100, MINIMUM 300)

# (name, type, expected answer values as dnspython / dig +short print them)
STATIC_CASES = [
    ("host.gtm.example.", "A", ["192.0.2.1"]),
    ("host.gtm.example.", "AAAA", ["2001:db8::1"]),
    ("gtm.example.", "MX", ["10 mail.gtm.example."]),
    ("gtm.example.", "TXT", ['"v=spf1 -all"']),
    ("_sip._udp.gtm.example.", "SRV", ["10 60 5060 sip.gtm.example."]),
    ("gtm.example.", "CAA", ['0 issue "letsencrypt.org"']),
    ("gtm.example.", "NS", ["ns1.gtm.example.", "ns2.gtm.example."]),
    ("gtm.example.", "SOA", [SOA_TEXT]),
    ("1.2.0.192.in-addr.gtm.example.", "PTR", ["host.gtm.example."]),
    ("ns1.gtm.example.", "A", ["192.0.2.53"]),
    ("ns2.gtm.example.", "AAAA", ["2001:db8::53"]),
    ("anything.apps.gtm.example.", "A", ["192.0.2.99"]),
    ("other.test.", "A", ["192.0.2.200"]),
]


class DnsBehaviourTest(unittest.TestCase):
    env = None

    @classmethod
    def setUpClass(cls):
        cls.env = h.GtmEnv(CONFIG, dataplane_args=["--workers", "1"]).start()

    @classmethod
    def tearDownClass(cls):
        if cls.env is not None:
            cls.env.close_checked()  # also fails on an unclean exit (sanitizer report, crash)

    def tearDown(self):
        self.env.assert_alive()

    # -- helpers --

    def ask(self, name, rdtype="A", **kw):
        return self.env.ask(name, rdtype, **kw)

    def assert_negative(self, resp, rcode, zone=ZONE, ttl=NEGATIVE_TTL):
        self.assertEqual(resp.rcode(), rcode, resp.to_text())
        self.assertTrue(resp.flags & dns.flags.AA, "negative answers are authoritative")
        self.assertEqual(resp.answer, [], resp.to_text())
        self.assertEqual(len(resp.authority), 1, resp.to_text())
        soa = resp.authority[0]
        self.assertEqual(soa.rdtype, dns.rdatatype.SOA)
        self.assertEqual(soa.name, dns.name.from_text(zone))
        self.assertEqual(soa.ttl, ttl)

    def gslb_answers(self, name, count, rdtype="A"):
        """The single address answered for each of `count` UDP queries, in order."""
        out = []
        for _ in range(count):
            resp = self.ask(name, rdtype)
            self.assertEqual(resp.rcode(), dns.rcode.NOERROR, resp.to_text())
            values = h.answer_values(resp, rdtype)
            self.assertEqual(len(values), 1, resp.to_text())
            out.append(values[0])
        return out

    # -- answers for every record type --

    def test_record_types_dnspython_udp_tcp_v4_v6(self):
        for name, rdtype, expected in STATIC_CASES:
            for tcp in (False, True):
                for v6 in ((False, True) if self.env.ipv6 else (False,)):
                    with self.subTest(name=name, type=rdtype, tcp=tcp, v6=v6):
                        resp = self.ask(name, rdtype, tcp=tcp, v6=v6)
                        self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
                        self.assertTrue(resp.flags & dns.flags.AA)
                        self.assertEqual(h.answer_values(resp), sorted(expected))
                        self.assertEqual(len(resp.answer), 1, "one RRset")
                        self.assertEqual(resp.answer[0].name, dns.name.from_text(name))

    def test_record_types_dig_short_udp_tcp(self):
        for name, rdtype, expected in STATIC_CASES:
            for transport in ("+notcp", "+tcp"):
                with self.subTest(name=name, type=rdtype, transport=transport):
                    out = self.env.dig(transport, "+short", name, rdtype)
                    self.assertEqual(h.short_lines(out), sorted(expected))

    def test_kdig_answers_udp_and_tcp(self):
        for transport in ("+notcp", "+tcp"):
            r = self.env.kdig(transport, "host.gtm.example.", "A")
            self.assertEqual(r.status, "NOERROR", r.text)
            self.assertIn("aa", r.flags)
            self.assertEqual([rr[3] for rr in r.rrs("ANSWER", "A")], ["192.0.2.1"], r.text)

    def test_dig_full_answer_flags_and_ttl(self):
        r = self.env.dig("+recurse", "mail.gtm.example.", "A")
        self.assertEqual(r.status, "NOERROR", r.text)
        self.assertTrue({"qr", "aa", "rd"} <= r.flags, r.text)
        self.assertNotIn("ra", r.flags)
        self.assertEqual(r.rrs("ANSWER"), [("mail.gtm.example.", 300, "A", "192.0.2.25")])

    # -- header --

    def test_aa_set_and_rd_copied(self):
        for rd in (True, False):
            for tcp in (False, True):
                with self.subTest(rd=rd, tcp=tcp):
                    resp = self.ask("host.gtm.example.", "A", tcp=tcp, rd=rd)
                    self.assertTrue(resp.flags & dns.flags.QR)
                    self.assertTrue(resp.flags & dns.flags.AA)
                    self.assertEqual(bool(resp.flags & dns.flags.RD), rd)
                    self.assertFalse(resp.flags & dns.flags.RA)
                    self.assertFalse(resp.flags & dns.flags.TC)

    def test_qname_case_preserved(self):
        q = h.make_query("WwW.GtM.ExAmPlE.", "A", want_id=0x4242)
        wire = self.env.raw_udp(q.to_wire(), timeout=h.CLIENT_TIMEOUT_S)
        self.assertIsNotNone(wire, "no answer")
        self.assertEqual(wire[:2], b"\x42\x42")
        self.assertEqual(wire[12:12 + 17], b"\x03WwW\x03GtM\x07ExAmPlE\x00")
        resp = dns.message.from_wire(wire)
        self.assertEqual(resp.question[0].name.to_text(), "WwW.GtM.ExAmPlE.")
        self.assertEqual(resp.answer[0].name.to_text(), "WwW.GtM.ExAmPlE.")
        self.assertEqual(len(h.answer_values(resp, "A")), 1)
        # Static records too, and a mixed-case question under a wildcard.
        resp = self.ask("HoSt.gtm.EXAMPLE.", "A", tcp=True)
        self.assertEqual(resp.answer[0].name.to_text(), "HoSt.gtm.EXAMPLE.")
        self.assertEqual(h.answer_values(resp), ["192.0.2.1"])
        resp = self.ask("X.ApPs.gtm.example.", "A")
        self.assertEqual(resp.answer[0].name.to_text(), "X.ApPs.gtm.example.")
        self.assertEqual(h.answer_values(resp), ["192.0.2.99"])

    # -- names: wildcard, CNAME, empty non-terminals --

    def test_wildcard(self):
        for name in ("a.apps.gtm.example.", "deep.er.apps.gtm.example."):
            resp = self.ask(name, "A")
            self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
            self.assertEqual(resp.answer[0].name, dns.name.from_text(name), "owner = QNAME")
            self.assertEqual(h.answer_values(resp), ["192.0.2.99"])
        # The wildcard only has A: AAAA at a synthesised name is NODATA.
        self.assert_negative(self.ask("a.apps.gtm.example.", "AAAA"), dns.rcode.NOERROR)
        # "apps" itself is an empty non-terminal, not matched by its own wildcard.
        self.assert_negative(self.ask("apps.gtm.example.", "A"), dns.rcode.NOERROR)

    def test_cname_chain(self):
        for tcp in (False, True):
            resp = self.ask("alias1.gtm.example.", "A", tcp=tcp)
            self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
            chain = [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), [x.to_text() for x in r])
                     for r in resp.answer]
            self.assertEqual(chain, [
                ("alias1.gtm.example.", "CNAME", ["alias2.gtm.example."]),
                ("alias2.gtm.example.", "CNAME", ["host.gtm.example."]),
                ("host.gtm.example.", "A", ["192.0.2.1"]),
            ])
        out = self.env.dig("+short", "alias1.gtm.example.", "A")
        self.assertEqual(out.split(), ["alias2.gtm.example.", "host.gtm.example.", "192.0.2.1"])
        # Asking for the CNAME itself does not chase it.
        resp = self.ask("alias1.gtm.example.", "CNAME")
        self.assertEqual(h.answer_values(resp), ["alias2.gtm.example."])
        self.assertEqual(len(resp.answer), 1)
        # A target outside our zones: just the CNAME.
        resp = self.ask("outside.gtm.example.", "A")
        self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
        self.assertEqual(h.answer_values(resp), ["target.example.net."])
        # A static CNAME into a GSLB service, then the service's address.
        resp = self.ask("docs.gtm.example.", "A")
        self.assertEqual(resp.answer[0].rdtype, dns.rdatatype.CNAME)
        self.assertEqual(resp.answer[1].name, dns.name.from_text("www.gtm.example."))
        self.assertIn(h.answer_values(resp, "A")[0], ("192.0.2.10", "192.0.2.11"))

    def test_empty_non_terminal_is_nodata(self):
        self.assert_negative(self.ask("_udp.gtm.example.", "SRV"), dns.rcode.NOERROR)
        self.assert_negative(self.ask("in-addr.gtm.example.", "PTR"), dns.rcode.NOERROR)

    # -- negative answers --

    def test_nxdomain_with_soa(self):
        for tcp in (False, True):
            self.assert_negative(self.ask("nope.gtm.example.", "A", tcp=tcp), dns.rcode.NXDOMAIN)
            self.assert_negative(self.ask("a.b.host.gtm.example.", "TXT", tcp=tcp),
                                 dns.rcode.NXDOMAIN)
        self.assert_negative(self.ask("nope.other.test.", "A"), dns.rcode.NXDOMAIN, "other.test.",
                             OTHER_NEGATIVE_TTL)
        r = self.env.dig("nope.gtm.example.", "A")
        self.assertEqual(r.status, "NXDOMAIN", r.text)
        self.assertIn("aa", r.flags)
        self.assertEqual(r.rrs("AUTHORITY"), [("gtm.example.", NEGATIVE_TTL, "SOA", SOA_TEXT)])

    def test_nodata_with_soa(self):
        self.assert_negative(self.ask("host.gtm.example.", "MX"), dns.rcode.NOERROR)
        self.assert_negative(self.ask("mail.gtm.example.", "AAAA", tcp=True), dns.rcode.NOERROR)
        self.assert_negative(self.ask("other.test.", "TXT"), dns.rcode.NOERROR, "other.test.",
                             OTHER_NEGATIVE_TTL)
        r = self.env.dig("host.gtm.example.", "MX")
        self.assertEqual(r.status, "NOERROR", r.text)
        self.assertEqual(r.counts.get("ANSWER"), 0, r.text)
        self.assertEqual(r.rrs("AUTHORITY"), [("gtm.example.", NEGATIVE_TTL, "SOA", SOA_TEXT)])

    def test_refused_outside_zones(self):
        for name in ("example.org.", "www.example.com.", "gtm.example.org.", "xgtm.example.",
                     "example.", "."):
            for tcp in (False, True):
                with self.subTest(name=name, tcp=tcp):
                    resp = self.ask(name, "A", tcp=tcp)
                    self.assertEqual(resp.rcode(), dns.rcode.REFUSED)
                    self.assertFalse(resp.flags & dns.flags.AA, "REFUSED is not authoritative")
                    self.assertEqual(resp.answer, [])
        r = self.env.dig("example.org.", "A")
        self.assertEqual(r.status, "REFUSED", r.text)
        self.assertNotIn("aa", r.flags)

    def test_any_is_minimal(self):
        for name in ("gtm.example.", "host.gtm.example."):
            for tcp in (False, True):
                with self.subTest(name=name, tcp=tcp):
                    resp = self.ask(name, "ANY", tcp=tcp)
                    self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
                    self.assertEqual(len(resp.answer), 1, resp.to_text())
                    self.assertGreaterEqual(len(resp.answer[0]), 1)
                    self.assertEqual(resp.answer[0].name, dns.name.from_text(name))

    # -- truncation --

    def test_truncation_without_edns(self):
        before = self.env.totals()
        resp = self.ask("big.gtm.example.", "TXT")
        self.assertTrue(resp.flags & dns.flags.TC, "930-octet answer over 512-octet UDP")
        self.assertEqual(resp.answer, [])
        self.assertEqual(resp.edns, -1, "no OPT in the reply to a query without one")
        # The same over TCP is complete.
        resp = self.ask("big.gtm.example.", "TXT", tcp=True)
        self.assertFalse(resp.flags & dns.flags.TC)
        self.assertEqual(len(h.answer_values(resp)), 8)
        # dig falls back to TCP by itself and shows the full answer.
        r = self.env.dig("+noedns", "+notcp", "+noignore", "big.gtm.example.", "TXT")
        self.assertTrue(r.truncated_retry, r.text)
        self.assertEqual(r.status, "NOERROR")
        self.assertNotIn("tc", r.flags)
        self.assertEqual(len(r.rrs("ANSWER", "TXT")), 8, r.text)
        after = self.env.wait_totals(lambda t: t["truncated"] >= before["truncated"] + 2)
        self.assertEqual(after["truncated"] - before["truncated"], 2)

    def test_edns_1232_fits_larger_answers(self):
        resp = self.ask("big.gtm.example.", "TXT", use_edns=0, payload=1232)
        self.assertFalse(resp.flags & dns.flags.TC)
        self.assertEqual(len(h.answer_values(resp)), 8)
        # dig's default (EDNS, 1232) needs no retry.
        r = self.env.dig("+bufsize=1232", "big.gtm.example.", "TXT")
        self.assertFalse(r.truncated_retry, r.text)
        self.assertEqual(len(r.rrs("ANSWER", "TXT")), 8)
        # A client asking for less gets truncated, keeping the OPT.
        resp = self.ask("big.gtm.example.", "TXT", use_edns=0, payload=512)
        self.assertTrue(resp.flags & dns.flags.TC)
        self.assertEqual(resp.edns, 0)
        # More than 1232 even with a larger client buffer: our UDP ceiling is 1232.
        resp = self.ask("huge.gtm.example.", "TXT", use_edns=0, payload=4096)
        self.assertTrue(resp.flags & dns.flags.TC)
        self.assertEqual(resp.edns, 0)
        self.assertEqual(resp.payload, 1232)
        r = self.env.dig("+bufsize=4096", "huge.gtm.example.", "TXT")
        self.assertTrue(r.truncated_retry, r.text)
        self.assertEqual(len(r.rrs("ANSWER", "TXT")), 16, r.text)
        resp = self.ask("huge.gtm.example.", "TXT", tcp=True, use_edns=0)
        self.assertEqual(len(h.answer_values(resp)), 16)

    # -- EDNS --

    def test_opt_present_iff_query_had_one(self):
        for tcp in (False, True):
            resp = self.ask("host.gtm.example.", "A", tcp=tcp)
            self.assertEqual(resp.edns, -1)
            for payload in (512, 1232, 4096):
                resp = self.ask("host.gtm.example.", "A", tcp=tcp, use_edns=0, payload=payload)
                self.assertEqual(resp.edns, 0)
                self.assertEqual(resp.payload, 1232)
            # Negative and refused answers keep the rule too.
            resp = self.ask("nope.gtm.example.", "A", tcp=tcp, use_edns=0)
            self.assertEqual((resp.rcode(), resp.edns), (dns.rcode.NXDOMAIN, 0))
            resp = self.ask("example.org.", "A", tcp=tcp, use_edns=0)
            self.assertEqual((resp.rcode(), resp.edns), (dns.rcode.REFUSED, 0))
        r = self.env.dig("host.gtm.example.", "A")
        self.assertEqual(r.edns, {"version": 0, "flags": [], "udp": 1232}, r.text)
        r = self.env.dig("+noedns", "host.gtm.example.", "A")
        self.assertIsNone(r.edns, r.text)

    def test_do_bit_echoed(self):
        q = h.make_query("host.gtm.example.", "A", use_edns=0)
        q.want_dnssec(True)
        resp = self.env.query(q)
        self.assertTrue(resp.ednsflags & dns.flags.DO)
        resp = self.ask("host.gtm.example.", "A", use_edns=0)
        self.assertFalse(resp.ednsflags & dns.flags.DO)

    def test_badvers(self):
        r = self.env.dig("+edns=1", "+noednsnegotiation", "host.gtm.example.", "A")
        self.assertEqual(r.status, "BADVERS", r.text)
        self.assertIsNotNone(r.edns, r.text)
        self.assertEqual(r.edns["version"], 0)
        self.assertEqual(r.counts.get("ANSWER"), 0)
        before = self.env.totals()
        resp = self.ask("host.gtm.example.", "A", use_edns=1)
        self.assertEqual(resp.rcode(), dns.rcode.BADVERS)
        self.assertEqual(resp.edns, 0)
        self.assertEqual(resp.answer, [])
        after = self.env.wait_totals(lambda t: t["rcode_badvers"] > before["rcode_badvers"])
        self.assertEqual(after["rcode_badvers"] - before["rcode_badvers"], 1)

    def test_ecs_echoed_with_scope_zero(self):
        r = self.env.kdig("+subnet=192.0.2.0/24", "www.gtm.example.", "A")
        self.assertEqual(r.status, "NOERROR", r.text)
        self.assertEqual(r.ecs, "192.0.2.0/24/0", r.text)
        r = self.env.dig("+subnet=192.0.2.0/24", "www.gtm.example.", "A")
        self.assertEqual(r.status, "NOERROR", r.text)
        self.assertEqual(r.ecs, "192.0.2.0/24/0", r.text)
        before = self.env.totals()
        for address, srclen in (("2001:db8:1234::", 48), ("198.51.100.0", 22), ("0.0.0.0", 0)):
            for tcp in (False, True):
                with self.subTest(address=address, srclen=srclen, tcp=tcp):
                    resp = self.ask("host.gtm.example.", "A", tcp=tcp,
                                    options=[dns.edns.ECSOption(address, srclen)])
                    self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
                    ecs = [o for o in resp.options if o.otype == dns.edns.OptionType.ECS]
                    self.assertEqual(len(ecs), 1, resp.to_text())
                    self.assertEqual((ecs[0].address, ecs[0].srclen, ecs[0].scopelen),
                                     (address, srclen, 0))
        after = self.env.wait_totals(lambda t: t["ecs_queries"] >= before["ecs_queries"] + 6)
        self.assertEqual(after["ecs_queries"] - before["ecs_queries"], 6)
        # No ECS in the query, none in the answer.
        resp = self.ask("host.gtm.example.", "A", use_edns=0)
        self.assertEqual(len(resp.options), 0)

    def test_malformed_ecs_is_formerr(self):
        cases = {
            "bits past the source prefix": struct.pack("!HBB", 1, 20, 0) + bytes([192, 0, 3]),
            "address longer than the prefix": struct.pack("!HBB", 1, 24, 0) + bytes([192, 0, 2, 0]),
            "address shorter than the prefix": struct.pack("!HBB", 1, 24, 0) + bytes([192, 0]),
            "unknown family": struct.pack("!HBB", 3, 8, 0) + bytes([1]),
            "IPv4 prefix over 32": struct.pack("!HBB", 1, 33, 0) + bytes(5),
            "IPv6 bits past prefix": struct.pack("!HBB", 2, 12, 0) + bytes([0x20, 0x01]),
        }
        before = self.env.totals()
        for what, payload in cases.items():
            with self.subTest(what):
                q = h.make_query("host.gtm.example.", "A", use_edns=0,
                                 options=[dns.edns.GenericOption(dns.edns.OptionType.ECS, payload)],
                                 want_id=0x1234)
                wire = self.env.raw_udp(q.to_wire(), timeout=h.CLIENT_TIMEOUT_S)
                self.assertIsNotNone(wire, "FORMERR expected, got nothing")
                self.assertEqual(wire[:2], b"\x12\x34")
                self.assertEqual(h.rcode_of(wire), dns.rcode.FORMERR)
        after = self.env.wait_totals(
            lambda t: t["rcode_formerr"] >= before["rcode_formerr"] + len(cases))
        self.assertEqual(after["rcode_formerr"] - before["rcode_formerr"], len(cases))

    # -- opcodes and malformed packets --

    def test_notimp_for_notify_and_update(self):
        notify = h.make_query("gtm.example.", "SOA", rd=False)
        notify.set_opcode(dns.opcode.NOTIFY)
        update = dns.update.UpdateMessage("gtm.example.")
        update.add("new", 300, "A", "192.0.2.77")
        for msg in (notify, update):
            for tcp in (False, True):
                with self.subTest(opcode=dns.opcode.to_text(msg.opcode()), tcp=tcp):
                    resp = self.env.query(msg, tcp=tcp)
                    self.assertEqual(resp.rcode(), dns.rcode.NOTIMP)
                    self.assertEqual(resp.opcode(), msg.opcode())
        # The update was not applied.
        self.assert_negative(self.ask("new.gtm.example.", "A"), dns.rcode.NXDOMAIN)

    def test_malformed_packets(self):
        q = h.make_query("host.gtm.example.", "A", want_id=0x7777).to_wire()
        as_response = bytearray(q)
        as_response[2] |= 0x80  # QR = 1
        drops = [
            b"",
            b"\x00",
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00",   # shorter than a header
            bytes(as_response),
        ]
        formerrs = [
            q[:20],                                     # question cut inside the name
            q[:-2],                                     # QCLASS missing
            q + b"\x00\x01\x02",                        # trailing garbage
            q[:4] + b"\x00\x02" + q[6:],                # QDCOUNT 2, only one question
            q[:12] + b"\xc0\x0c" + q[-4:],              # compressed (self-pointing) question name
            q[:12] + b"\x40" + b"a" * 64 + b"\x00" + q[-4:],  # 64-octet label
            b"\x77\x77\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff" * 30,
        ]
        before = self.env.totals()
        for payload in drops:
            with self.subTest(drop=payload[:16]):
                self.assertIsNone(self.env.raw_udp(payload, timeout=0.3))
        for payload in formerrs:
            with self.subTest(formerr=payload[:24]):
                wire = self.env.raw_udp(payload, timeout=h.CLIENT_TIMEOUT_S)
                self.assertIsNotNone(wire, "FORMERR expected")
                self.assertEqual(wire[:2], payload[:2])
                self.assertTrue(wire[2] & 0x80, "QR set")
                self.assertEqual(h.rcode_of(wire), dns.rcode.FORMERR)
        # The empty datagram may not reach the worker as a packet on every kernel, so count >= 3.
        after = self.env.wait_totals(
            lambda t: t["malformed_dropped"] >= before["malformed_dropped"] + len(drops) - 1 and
            t["rcode_formerr"] >= before["rcode_formerr"] + len(formerrs))
        self.assertIn(after["malformed_dropped"] - before["malformed_dropped"],
                      (len(drops) - 1, len(drops)))
        self.assertEqual(after["rcode_formerr"] - before["rcode_formerr"], len(formerrs))
        # Random junk: never a crash, never an answer that is not a FORMERR/NOTIMP/drop.
        rng = random.Random(1234)
        for _ in range(100):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
            self.env.raw_udp(junk, timeout=0.005)
        self.env.assert_alive()
        self.assertEqual(h.answer_values(self.ask("host.gtm.example.", "A")), ["192.0.2.1"])

    # -- GSLB --

    def test_gslb_ratio_exact_with_one_worker(self):
        before = self.env.totals()
        counts = collections.Counter(self.gslb_answers("www.gtm.example.", 400))
        self.assertEqual(counts, {"192.0.2.10": 300, "192.0.2.11": 100})
        after = self.env.wait_totals(lambda t: t["gslb_answers"] >= before["gslb_answers"] + 400)
        self.assertEqual(after["gslb_answers"] - before["gslb_answers"], 400)
        # The AAAA view of site-a has one member.
        self.assertEqual(set(self.gslb_answers("www.gtm.example.", 5, "AAAA")), {"2001:db8:a::10"})
        resp = self.ask("www.gtm.example.", "A")
        self.assertEqual(resp.answer[0].ttl, 30)

    def test_gslb_round_robin_rotates(self):
        seq = self.gslb_answers("rr.gtm.example.", 9)
        self.assertEqual(set(seq[:3]), {"198.51.100.1", "198.51.100.2", "198.51.100.3"}, seq)
        self.assertEqual(seq[3:6], seq[:3], seq)
        self.assertEqual(seq[6:9], seq[:3], seq)
        self.assertNotIn("198.51.100.66", seq, "always-down member answered")
        out = self.env.dig("+short", "rr.gtm.example.", "A")
        self.assertIn(out.strip(), ("198.51.100.1", "198.51.100.2", "198.51.100.3"))

    def test_gslb_global_availability_skips_down_member(self):
        self.assertEqual(set(self.gslb_answers("ga.gtm.example.", 20)), {"198.51.100.22"})

    def test_gslb_random_uses_every_usable_member(self):
        seen = collections.Counter(self.gslb_answers("rand.gtm.example.", 90))
        self.assertEqual(set(seen), {"198.51.100.31", "198.51.100.32", "198.51.100.33"}, seen)

    def test_gslb_return_all_and_return_n(self):
        resp = self.ask("all.gtm.example.", "A")
        self.assertEqual(h.answer_values(resp),
                         ["198.51.100.41", "198.51.100.42", "198.51.100.44"])
        union = set()
        for _ in range(6):
            values = h.answer_values(self.ask("two.gtm.example.", "A"))
            self.assertEqual(len(values), 2, values)
            union.update(values)
        self.assertEqual(union, {"198.51.100.51", "198.51.100.52", "198.51.100.53"})

    def test_gslb_fallback_when_all_pools_down(self):
        before = self.env.totals()
        for tcp in (False, True):
            resp = self.ask("fb.gtm.example.", "A", tcp=tcp)
            self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
            self.assertEqual(h.answer_values(resp), ["203.0.113.9"])
        after = self.env.wait_totals(lambda t: t["gslb_fallback"] >= before["gslb_fallback"] + 2)
        self.assertEqual(after["gslb_fallback"] - before["gslb_fallback"], 2)
        # No IPv6 fallback configured: AAAA is an empty NOERROR.
        resp = self.ask("fb.gtm.example.", "AAAA")
        self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
        self.assertEqual(resp.answer, [])

    def test_gslb_when_empty(self):
        before = self.env.totals()
        for tcp in (False, True):
            resp = self.ask("sf.gtm.example.", "A", tcp=tcp)
            self.assertEqual(resp.rcode(), dns.rcode.SERVFAIL)
            self.assertEqual(resp.answer, [])
        self.assert_negative(self.ask("nd.gtm.example.", "A"), dns.rcode.NOERROR)
        after = self.env.wait_totals(lambda t: t["gslb_empty"] >= before["gslb_empty"] + 3)
        self.assertEqual(after["gslb_empty"] - before["gslb_empty"], 3)
        self.assertEqual(after["rcode_servfail"] - before["rcode_servfail"], 2)

    def test_gslb_cname_service(self):
        resp = self.ask("app.gtm.example.", "CNAME")
        self.assertEqual(h.answer_values(resp), ["www.gtm.example."], "first target is down")
        self.assertEqual(resp.answer[0].ttl, 60)
        resp = self.ask("app.gtm.example.", "A")
        self.assertEqual(resp.answer[0].rdtype, dns.rdatatype.CNAME)
        self.assertIn(h.answer_values(resp, "A")[0], ("192.0.2.10", "192.0.2.11"))

    # -- STATUS counters and gtmctl --

    def test_status_counters_increase(self):
        before = self.env.status()
        self.assertGreater(before["generation"], 0)
        self.assertEqual(self.env.dataplane_request("GENERATION"), f"OK {before['generation']}")
        b = before["totals"]
        for _ in range(5):
            self.ask("host.gtm.example.", "A")
        for _ in range(3):
            self.ask("host.gtm.example.", "A", tcp=True)
        self.ask("nope.gtm.example.", "A")
        self.ask("example.org.", "A")
        expected = {"queries": 10, "responses": 10, "udp_queries": 7, "tcp_queries": 3,
                    "rcode_noerror": 8, "rcode_nxdomain": 1, "rcode_refused": 1,
                    "tcp_connections": 3}
        after = self.env.wait_totals(
            lambda t: all(t[k] - b[k] >= v for k, v in expected.items()))
        self.assertEqual({k: after[k] - b[k] for k in expected}, expected)
        # Totals are the sum of the workers.
        status = self.env.status()
        workers = status["workers"]
        self.assertGreaterEqual(len(workers), 1)
        for name in ("queries", "responses", "udp_queries", "tcp_queries"):
            self.assertEqual(status["totals"][name], sum(w.get(name, 0) for w in workers), name)
        self.assertEqual(sum(1 for w in workers if w.get("transport") == "udp"), 1,
                         "--workers 1: one UDP worker")

    def test_gtmctl_status_and_query(self):
        gtmctl = h.binary("gtmctl")
        p = subprocess.run([gtmctl, "--run-dir", self.env.run_dir, "status", "--json"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        status = json.loads(p.stdout)
        self.assertIn("generation", json.dumps(status))
        snapshot = os.path.join(self.env.run_dir, "snapshot.bin")
        self.assertTrue(os.path.exists(snapshot), "dataplane saves the last good image")
        p = subprocess.run([gtmctl, "query", "host.gtm.example.", "A", "--snapshot", snapshot],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("192.0.2.1", p.stdout)


if __name__ == "__main__":
    h.main()
