"""Packet test of the DPDK lcore loop with net_pcap ports (nic_configs/pcap.yaml, unchanged): a
capture of crafted frames goes in, and the port's output capture and the exception path's capture
(what would reach the kernel) are checked frame by frame. Valid queries of each kind must come
back answered in place with valid checksums, malformed frames and DNS must be dropped and counted
by reason, everything else must be handed to the exception path unchanged, and what the kernel
sends (kin.pcap) must leave through the port. A second run uses the same file with QinQ tags
(vlan: [10, 20]): answers keep the tags, the kernel sees untagged frames, its replies get tagged.
"""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_harness as dh  # noqa: E402
import gtm_harness as h  # noqa: E402

import dns.edns  # noqa: E402
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402
import yaml  # noqa: E402
from scapy.all import (ARP, DNS, DNSQR, ICMP, IP, UDP, TCP, Dot1AD, Dot1Q, Ether, IPOption_Router_Alert,  # noqa: E402
                       IPv6, ICMPv6ND_NS, Raw, rdpcap)

PORT_MAC = "02:00:00:00:00:01"
CLIENT_MAC = "02:00:00:00:00:02"
SERVICE4 = "198.18.0.1"
SERVICE6 = "2001:db8:18::1"
CLIENT4 = "198.18.0.10"
CLIENT6 = "2001:db8:18::10"
QINQ = (10, 20)


def query(name, rdtype, qid, **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    q.id = qid
    return q.to_wire()


def l2(tags, dst=PORT_MAC):
    e = Ether(dst=dst, src=CLIENT_MAC)
    if tags:
        e = e / Dot1AD(vlan=tags[0]) / Dot1Q(vlan=tags[1])
    return e


def frames(tags):
    """[(name, frame bytes, expectation)]; expectation is ("answer", id, rcode, answers),
    ("exception",) or ("drop", counter)."""
    v4 = lambda payload, **kw: l2(tags) / IP(src=CLIENT4, dst=SERVICE4, **kw) / UDP(sport=40000, dport=53) / payload  # noqa: E731
    v6 = lambda payload: l2(tags) / IPv6(src=CLIENT6, dst=SERVICE6) / UDP(sport=40001, dport=53) / payload  # noqa: E731
    ecs = dns.edns.ECSOption("198.51.100.0", 24)
    out = [
        ("v4 A", v4(query("static.gtm.example.", "A", 1)), ("answer", 1, dns.rcode.NOERROR, ["192.0.2.1"])),
        ("v4 AAAA", v4(query("static.gtm.example.", "AAAA", 2)), ("answer", 2, dns.rcode.NOERROR, ["2001:db8::1"])),
        ("v6 A", v6(query("static.gtm.example.", "A", 3)), ("answer", 3, dns.rcode.NOERROR, ["192.0.2.1"])),
        ("v6 AAAA EDNS", v6(query("static.gtm.example.", "AAAA", 4, use_edns=0, payload=1232)),
         ("answer", 4, dns.rcode.NOERROR, ["2001:db8::1"])),
        ("v4 GSLB", v4(query("www.gtm.example.", "A", 5)), ("answer", 5, dns.rcode.NOERROR, None)),
        ("v4 ECS", v4(query("static.gtm.example.", "A", 6, use_edns=0, options=[ecs])),
         ("answer", 6, dns.rcode.NOERROR, ["192.0.2.1"])),
        ("v4 NXDOMAIN", v4(query("nothere.gtm.example.", "A", 7)), ("answer", 7, dns.rcode.NXDOMAIN, [])),
        ("v4 to broadcast MAC",
         l2(tags, dst="ff:ff:ff:ff:ff:ff") / IP(src=CLIENT4, dst=SERVICE4) / UDP(sport=40002, dport=53)
         / query("static.gtm.example.", "A", 8), ("answer", 8, dns.rcode.NOERROR, ["192.0.2.1"])),

        ("ARP request", l2(tags, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=CLIENT_MAC, psrc=CLIENT4, pdst=SERVICE4),
         ("exception",)),
        ("ICMP echo", l2(tags) / IP(src=CLIENT4, dst=SERVICE4) / ICMP(id=7, seq=1) / b"ping", ("exception",)),
        ("IPv6 neighbour solicitation",
         l2(tags, dst="33:33:ff:00:00:01") / IPv6(src=CLIENT6, dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt=SERVICE6),
         ("exception",)),
        ("IPv4 fragment", v4(query("static.gtm.example.", "A", 9), flags="MF"), ("exception",)),
        ("IPv4 options", v4(query("static.gtm.example.", "A", 10), options=[IPOption_Router_Alert()]), ("exception",)),
        ("wrong destination",
         l2(tags) / IP(src=CLIENT4, dst="198.18.0.99") / UDP(sport=40003, dport=53) / query("static.gtm.example.", "A", 11),
         ("exception",)),
        ("TCP SYN to 53", l2(tags) / IP(src=CLIENT4, dst=SERVICE4) / TCP(sport=40004, dport=53, flags="S"), ("exception",)),
        ("UDP other port",
         l2(tags) / IP(src=CLIENT4, dst=SERVICE4) / UDP(sport=40005, dport=5353) / b"mdns", ("exception",)),

        ("other unicast MAC",
         l2(tags, dst="02:00:00:00:00:99") / IP(src=CLIENT4, dst=SERVICE4) / UDP(sport=40006, dport=53)
         / query("static.gtm.example.", "A", 12), ("drop", "dropped_not_our_mac")),
        ("bad IPv4 checksum", v4(query("static.gtm.example.", "A", 13), chksum=0x1234), ("drop", "dropped_bad_ipv4")),
        ("IPv4 length past the frame", v4(query("static.gtm.example.", "A", 14), len=400), ("drop", "dropped_bad_ipv4")),
        ("UDP length past the packet",
         l2(tags) / IP(src=CLIENT4, dst=SERVICE4) / UDP(sport=40007, dport=53, len=300) / query("static.gtm.example.", "A", 15),
         ("drop", "dropped_bad_udp")),
        ("IPv6 UDP checksum 0",
         l2(tags) / IPv6(src=CLIENT6, dst=SERVICE6) / UDP(sport=40008, dport=53, chksum=0) / query("static.gtm.example.", "A", 16),
         ("drop", "dropped_bad_udp")),
        ("broadcast source", l2(tags) / IP(src="255.255.255.255", dst=SERVICE4) / UDP(sport=40009, dport=53)
         / query("static.gtm.example.", "A", 17), ("drop", "dropped_bad_source")),
        ("runt", Raw(bytes.fromhex("0200000000010200000000")), ("drop", "dropped_runt")),
        ("DNS shorter than a header", v4(b"\x00\x12\x01\x00\x00"), ("drop", "malformed_dropped")),
        ("DNS response (QR set)", v4(DNS(id=18, qr=1, qd=DNSQR(qname="static.gtm.example."))),
         ("drop", "malformed_dropped")),
    ]
    # A frame without the port's tags (or with tags the port does not have) is not for it.
    wrong_tags = (None if tags else QINQ)
    out.append(("wrong VLAN tags", l2(wrong_tags) / IP(src=CLIENT4, dst=SERVICE4) / UDP(sport=40010, dport=53)
                / query("static.gtm.example.", "A", 19), ("drop", "dropped_vlan")))
    return [(name, bytes(f), expect) for name, f, expect in out]


def kernel_frames():
    """What the kernel would send on the exception interface: an ARP reply and an echo reply."""
    return [bytes(Ether(dst=CLIENT_MAC, src=PORT_MAC) / ARP(op=2, hwsrc=PORT_MAC, psrc=SERVICE4,
                                                             hwdst=CLIENT_MAC, pdst=CLIENT4)),
            bytes(Ether(dst=CLIENT_MAC, src=PORT_MAC) / IP(src=SERVICE4, dst=CLIENT4) / ICMP(type=0, id=7, seq=1)
                  / b"ping")]


def strip_tags(frame, tags):
    return frame[:12] + frame[20:] if tags else frame


def add_tags(frame, tags):
    if not tags:
        return frame
    tag = bytes([0x88, 0xA8, 0, tags[0], 0x81, 0x00, 0, tags[1]])
    return frame[:12] + tag + frame[12:]


def checksums_valid(pkt):
    """The frame's IP and UDP checksums equal what scapy computes from scratch."""
    fresh = pkt.copy()
    if IP in fresh:
        del fresh[IP].chksum
    if UDP in fresh:
        del fresh[UDP].chksum
    fresh = Ether(bytes(fresh))
    ok = True
    if IP in pkt:
        ok = ok and pkt[IP].chksum == fresh[IP].chksum
    return ok and pkt[UDP].chksum == fresh[UDP].chksum and pkt[UDP].chksum != 0


class PcapRun:
    """One dataplane run over one input capture; keeps the outputs and the final counters."""

    def __init__(self, tags):
        self.tags = tags
        self.dir = dh.work_dir("gtm-pcap-")
        self.frames = frames(tags)
        self.kin = kernel_frames()
        dh.write_pcap(os.path.join(self.dir, "in.pcap"), [f for _, f, _ in self.frames])
        dh.write_pcap(os.path.join(self.dir, "kin.pcap"), self.kin)
        config = os.path.join(dh.NIC_CONFIGS, "pcap.yaml")
        if tags:
            with open(config) as f:
                doc = yaml.safe_load(f)
            doc["ports"][0]["vlan"] = list(tags)
            config = os.path.join(self.dir, "pcap-qinq.yaml")
            with open(config, "w") as f:
                yaml.safe_dump(doc, f)
        self.dp = dh.DpdkDataplane(config, self.dir)
        os.makedirs(self.dp.run_dir, exist_ok=True)
        dh.compile_snapshot(self.dp.run_dir)

    def run(self):
        self.dp.start()
        try:
            self.totals = self.dp.wait_totals(
                lambda t: t["rx_packets"] >= len(self.frames) and t["from_exception"] >= len(self.kin))
            self.telemetry = self.dp.telemetry("/gtm/counters")["/gtm/counters"]
            self.status_text = self.dp.gtmctl_status()
        finally:
            self.exit_status = self.dp.stop()
        self.out = [bytes(p) for p in rdpcap(os.path.join(self.dir, "out.pcap"))]
        self.kout = [bytes(p) for p in rdpcap(os.path.join(self.dir, "kout.pcap"))]
        return self

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class PcapPacketTest:
    """Checks shared by the untagged and the QinQ run (mixed into unittest classes below)."""

    tags = None

    @classmethod
    def setUpClass(cls):
        cls.r = PcapRun(cls.tags)
        try:
            cls.r.run()
        except BaseException:
            sys.stderr.write(cls.r.dp.daemon.describe() + "\n")
            cls.r.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.r.close()

    def expected(self, kind):
        return [(n, f, e) for n, f, e in self.r.frames if e[0] == kind]

    def test_clean_exit(self):
        self.assertEqual(self.r.exit_status, 0, self.r.dp.log())

    def test_answers(self):
        answers = {}
        for frame in self.r.out:
            p = Ether(frame)
            if UDP in p and p[UDP].sport == 53:
                answers[dns.message.from_wire(bytes(p[UDP].payload)).id] = (frame, p)
        expected = self.expected("answer")
        self.assertEqual(len(answers), len(expected), sorted(answers))
        for name, sent, (_, qid, rcode, values) in expected:
            with self.subTest(name):
                self.assertIn(qid, answers)
                frame, p = answers[qid]
                q = Ether(sent)
                self.assertEqual(p.dst, CLIENT_MAC)
                self.assertEqual(p.src, PORT_MAC)
                if self.tags:
                    self.assertEqual(frame[12:20], sent[12:20], "answers keep the query's VLAN tags")
                ip, qip = (p[IP], q[IP]) if IP in p else (p[IPv6], q[IPv6])
                self.assertEqual((ip.src, ip.dst), (qip.dst, qip.src))
                self.assertEqual((p[UDP].sport, p[UDP].dport), (53, q[UDP].sport))
                self.assertTrue(checksums_valid(p), f"{name}: checksums")
                self.assertEqual(p[UDP].len, len(p[UDP].payload) + 8)
                msg = dns.message.from_wire(bytes(p[UDP].payload))
                self.assertEqual(msg.rcode(), rcode)
                got = sorted(rd.to_text() for rrset in msg.answer for rd in rrset)
                if values is None:  # GSLB ratio pool: one of its members
                    self.assertEqual(len(got), 1)
                    self.assertIn(got[0], ["192.0.2.10", "192.0.2.11"])
                else:
                    self.assertEqual(got, values)
                if qid == 6:
                    opts = [o for o in msg.options if isinstance(o, dns.edns.ECSOption)]
                    self.assertEqual(len(opts), 1, "ECS echoed")

    def test_exception_path_gets_the_rest_unchanged(self):
        want = [strip_tags(f, self.tags) for _, f, _ in self.expected("exception")]
        self.assertEqual(sorted(self.r.kout), sorted(want))

    def test_kernel_frames_leave_through_the_port(self):
        for f in self.r.kin:
            self.assertIn(add_tags(f, self.tags), self.r.out)
        # The port sent answers and kernel frames only.
        self.assertEqual(len(self.r.out), len(self.expected("answer")) + len(self.r.kin))

    def test_drops_are_counted_by_reason(self):
        t = self.r.totals
        want = {}
        for _, _, e in self.expected("drop"):
            want[e[1]] = want.get(e[1], 0) + 1
        for counter in [k for k in t if k.startswith("dropped_")] + ["malformed_dropped"]:
            self.assertEqual(t[counter], want.get(counter, 0), counter)

    def test_counters(self):
        t = self.r.totals
        n = len(self.r.frames)
        answers = len(self.expected("answer"))
        self.assertEqual(t["rx_packets"], n)
        # DNS frames given to the engine: answered ones and the two it dropped.
        self.assertEqual(t["rx_dns"], answers + 2)
        self.assertEqual(t["responses"], answers)
        self.assertEqual(t["rcode_nxdomain"], 1)
        self.assertEqual(t["ecs_queries"], 1)
        self.assertEqual(t["to_exception"], len(self.expected("exception")))
        self.assertEqual(t["from_exception"], len(self.r.kin))
        self.assertEqual(t["tx_packets"], answers + len(self.r.kin))
        self.assertEqual(t["tx_failed"], 0)
        self.assertGreater(t["busy_cycles"], 0)

    def test_telemetry_and_gtmctl_use_the_same_names(self):
        self.assertEqual(self.r.telemetry, self.r.totals)
        for name in ("rx_packets", "dropped_bad_ipv4", "to_exception", "rcode_nxdomain"):
            self.assertRegex(self.r.status_text, rf"\n{name} +\d+ +\d+\n")
        self.assertIn("port wan0 (net_pcap0): ipackets", self.r.status_text)


class Untagged(PcapPacketTest, unittest.TestCase):
    tags = None


class QinQ(PcapPacketTest, unittest.TestCase):
    tags = QINQ


if __name__ == "__main__":
    h.main()
