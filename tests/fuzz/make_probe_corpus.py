#!/usr/bin/python3
"""Regenerates the seed corpus of fuzz_probe_reply: replies as the raw probe sockets receive them
(IPv4 with its IP header, IPv6 from the transport header), built with scapy. Deterministic.

Usage: /usr/bin/python3 tests/fuzz/make_probe_corpus.py [OUT_DIR]   (default: tests/fuzz/corpus_probe)
"""
import os
import sys

from scapy.all import ICMP, ICMPv6EchoReply, IP, TCP, raw

PAYLOAD = bytes(range(8)) + bytes([0, 0, 0, 5, 0, 0, 0, 9, 0, 1]) + bytes(6)


def seeds():
    yield "echo4.bin", raw(IP(src="198.18.1.2", dst="198.18.1.1") /
                           ICMP(type=0, id=0x1234, seq=3) / PAYLOAD)
    yield "echo4_options.bin", raw(IP(src="198.18.1.2", dst="198.18.1.1", options=b"\x01" * 4) /
                                   ICMP(type=0, id=0x1234, seq=3) / PAYLOAD)
    yield "echo6.bin", raw(ICMPv6EchoReply(id=0x1234, seq=3, data=PAYLOAD))
    yield "synack4.bin", raw(IP(src="198.18.1.2", dst="198.18.1.1") /
                             TCP(sport=80, dport=40001, seq=7, ack=0x01020305, flags="SA",
                                 options=[("MSS", 1460)]))
    yield "rst4.bin", raw(IP(src="198.18.1.2", dst="198.18.1.1") /
                          TCP(sport=80, dport=40001, ack=0x01020305, flags="RA"))
    yield "synack6.bin", raw(TCP(sport=443, dport=40002, seq=7, ack=0xA0B0C0D1, flags="SA"))
    yield "rst6.bin", raw(TCP(sport=443, dport=40002, ack=0xA0B0C0D1, flags="RA"))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus_probe")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
