#!/usr/bin/python3
"""Regenerates the fuzz seed corpus: small, well-formed DNS queries in raw wire form (no TCP
length prefix), one per file. Deterministic: fixed IDs and cookies, so reruns give identical files.

Usage: /usr/bin/python3 tests/fuzz/make_corpus.py [OUT_DIR]   (default: tests/fuzz/corpus)
"""
import os
import sys

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rdatatype


def query(name, rdtype, qid, **kwargs):
    q = dns.message.make_query(name, rdtype, **kwargs)
    q.id = qid
    return q


def seeds():
    yield "a.bin", query("www.example.com", "A", 0x0001, use_edns=False)
    yield "aaaa.bin", query("Www.Example.COM", "AAAA", 0x0002, use_edns=False)
    yield "any.bin", query("example.com", "ANY", 0x0003, use_edns=False)
    yield "ns_root.bin", query(".", "NS", 0x0004, use_edns=False)
    yield "edns.bin", query("app.gslb.example.com", "A", 0x0005, use_edns=0, payload=1232)
    yield "edns_do.bin", query("example.com", "SOA", 0x0006, use_edns=0, payload=4096,
                               want_dnssec=True)
    yield "ecs_v4.bin", query("app.gslb.example.com", "A", 0x0007, use_edns=0,
                              options=[dns.edns.ECSOption("198.51.100.0", 24)])
    yield "ecs_v6.bin", query("app.gslb.example.com", "AAAA", 0x0008, use_edns=0,
                              options=[dns.edns.ECSOption("2001:db8:1234::", 48)])
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, bytes(range(1, 9)))
    yield "cookie.bin", query("example.com", "TXT", 0x0009, use_edns=0, options=[cookie])
    server_cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, bytes(range(1, 25)))
    ecs = dns.edns.ECSOption("203.0.113.0", 20)
    yield "cookie_ecs.bin", query("cname.gslb.example.com", "A", 0x000A, use_edns=0,
                                  options=[server_cookie, ecs])
    v1 = query("example.com", "A", 0x000B, use_edns=False)
    v1.use_edns(edns=1, payload=1232)
    yield "edns_v1.bin", v1
    notify = query("example.com", "SOA", 0x000C, use_edns=False)
    notify.set_opcode(dns.opcode.NOTIFY)
    yield "notify.bin", notify
    yield "chaos.bin", query("version.bind", "TXT", 0x000D, use_edns=False, rdclass="CH")
    # Steering (fuzz_answer's geo.example.com): client classes by ECS, IPv4, IPv6 and /0.
    yield "geo_ecs_v4.bin", query("geo.example.com", "A", 0x000E, use_edns=0,
                                  options=[dns.edns.ECSOption("198.51.100.0", 24)])
    yield "geo_ecs_v6.bin", query("geo.example.com", "AAAA", 0x000F, use_edns=0,
                                  options=[dns.edns.ECSOption("2001:db8:1234::", 56)])
    yield "geo_ecs_zero.bin", query("geo.example.com", "A", 0x0010, use_edns=0,
                                    options=[dns.edns.ECSOption("0.0.0.0", 0)])
    yield "geo_no_ecs.bin", query("geo.example.com", "A", 0x0011, use_edns=False)
    # The pick table (fuzz_answer's topo.example.com): region r4, ISP line tel, r6, no class.
    yield "topo_ecs_r4.bin", query("topo.example.com", "A", 0x0012, use_edns=0,
                                   options=[dns.edns.ECSOption("10.1.2.0", 24)])
    yield "topo_ecs_tel.bin", query("topo.example.com", "A", 0x0013, use_edns=0,
                                    options=[dns.edns.ECSOption("203.0.113.0", 24)])
    yield "topo_ecs_r6.bin", query("topo.example.com", "AAAA", 0x0014, use_edns=0,
                                   options=[dns.edns.ECSOption("2001:db8:1234::", 48)])
    yield "topo_ecs_other.bin", query("topo.example.com", "A", 0x0015, use_edns=0,
                                      options=[dns.edns.ECSOption("192.0.2.0", 24)])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out_dir, exist_ok=True)
    for filename, message in seeds():
        with open(os.path.join(out_dir, filename), "wb") as f:
            f.write(message.to_wire())
    print(f"wrote {len(list(seeds()))} seeds to {out_dir}")


if __name__ == "__main__":
    main()
