#!/usr/bin/python3
"""Regenerates the packet fuzz corpus (tests/fuzz/corpus_packet): every crafted frame of the pcap
packet test (tests/dpdk/test_pcap_packets.py), untagged, with one 802.1Q tag and with QinQ tags,
one raw Ethernet frame per file. Deterministic.

Usage: /usr/bin/python3 tests/fuzz/make_packet_corpus.py [OUT_DIR]
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "dpdk"))
import test_pcap_packets as t  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus_packet")
    os.makedirs(out, exist_ok=True)
    for label, tags in (("untagged", None), ("qinq", t.QINQ)):
        for name, frame, _ in t.frames(tags):
            slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
            with open(os.path.join(out, f"{label}_{slug}.bin"), "wb") as f:
                f.write(frame)
    # One 802.1Q tag (VLAN 100, the fuzz target's second port): the QinQ frames with the outer
    # tag removed.
    for name, frame, _ in t.frames(t.QINQ):
        if len(frame) < 20:
            continue
        single = frame[:12] + b"\x81\x00\x00\x64" + frame[20:]
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        with open(os.path.join(out, f"vlan100_{slug}.bin"), "wb") as f:
            f.write(single)


if __name__ == "__main__":
    main()
