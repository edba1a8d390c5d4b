"""End to end through the DPDK backend: gtm-dataplane --io dpdk in one network namespace on one
end of a veth pair, gtm-control publishing to it, and real clients (dig, ping, dnspython,
dnsperf) in another namespace. The shipped development configs are used unchanged:

- nic_configs/af_packet.yaml: the full check, with dnsperf. UDP answers from the lcore over IPv4 and IPv6;
  ARP and neighbour discovery, ping and ping -6 through the exception tap; DNS over TCP answered
  by the TCP server on the tap's addresses; a query larger than the MTU, fragmented by the client
  and reassembled by the kernel, answered by the UDP socket on the tap (AF_XDP and tap only:
  AF_PACKET's fanout reassembles fragments itself); dnsperf with snapshot swaps during the load:
  every DNS frame the lcore received is answered.
- nic_configs/af_xdp.yaml: the same path with the port on AF_XDP (the kernel never sees the
  frames).
- nic_configs/tap.yaml: the port is itself a tap interface, moved into the client namespace.

Needs root. Namespaces and veths are named with the pid and removed at the end, under the
exclusive lock on /run/lock/gtm-netns.lock.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_harness as dh  # noqa: E402
import gtm_harness as h  # noqa: E402

import dns.edns  # noqa: E402
import dns.message  # noqa: E402

S4, S6 = dh.SERVICE4, dh.SERVICE6

# A client-side script (runs inside the client namespace): a query padded past the MTU, so the
# client's kernel fragments it. Prints the answer's addresses.
FRAGMENTED_QUERY = """
import dns.edns, dns.message, dns.query, sys
q = dns.message.make_query("static.gtm.example.", "A", use_edns=0, payload=4096,
                           options=[dns.edns.GenericOption(12, bytes(2000))])
r = dns.query.udp(q, sys.argv[1], timeout=3)
print(" ".join(rd.to_text() for rrset in r.answer for rd in rrset))
"""


class VethBase:
    nic_config = None
    kernel_blind = False  # AF_PACKET: hide the frames from the dataplane namespace's kernel
    port_is_tap = False
    fragments_reach_the_port = True

    @classmethod
    def setUpClass(cls):
        cls.dir = dh.work_dir("gtm-veth-")
        cls.ns = dh.Namespaces()
        cls.dp = None
        cls.control = None
        try:
            cls.ns.open()
            if not cls.port_is_tap:
                cls.ns.veth(cls.kernel_blind)
            cls.dp = dh.DpdkDataplane(os.path.join(dh.NIC_CONFIGS, cls.nic_config), cls.dir,
                                      netns=cls.ns.dp)
            cls.dp.start()
            if cls.port_is_tap:
                # The port's kernel side becomes the client's link, with its own MAC (net_tap
                # gives the kernel interface the port's).
                dh.sh("ip", "-n", cls.ns.dp, "link", "set", "gtmdp0", "netns", cls.ns.cl)
                dh.sh("ip", "-n", cls.ns.cl, "link", "set", "gtmdp0", "address", "02:00:00:00:00:02")
                cls.ns.client_link("gtmdp0")
            config = os.path.join(cls.dir, "zone.yaml")
            with open(config, "w") as f:
                f.write(dh.ZONE)
            cls.control = h.Daemon("gtm-control",
                                   [h.binary("gtm-control"), "--config", config, "--run-dir",
                                    cls.dp.run_dir],
                                   os.path.join(cls.dir, "control.log"), "gtm-control: ready")
            cls.control.start()
        except BaseException:
            cls._teardown(dump=True)
            raise

    @classmethod
    def _teardown(cls, dump=False):
        if dump and cls.dp is not None:
            sys.stderr.write(cls.dp.daemon.describe() + "\n")
        if cls.control is not None:
            cls.control.stop()
        status = cls.dp.stop() if cls.dp is not None else 0
        log = cls.dp.log() if cls.dp is not None else ""
        cls.ns.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if status != 0 and not dump:
            raise AssertionError(f"gtm-dataplane exited with {status} after SIGTERM\n{log}")

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    def dig(self, server, *args):
        p = self.ns.client("dig", f"@{server}", "+time=2", "+tries=2", "+norec", *args)
        return h.DigResult(p.stdout)

    def test_udp_answers_ipv4_and_ipv6(self):
        r = self.dig(S4, "static.gtm.example.", "A")
        self.assertEqual(r.status, "NOERROR", r.text)
        self.assertEqual([rr[3] for rr in r.rrs()], ["192.0.2.1"])
        r = self.dig(S6, "static.gtm.example.", "AAAA")
        self.assertEqual([rr[3] for rr in r.rrs()], ["2001:db8::1"], r.text)
        r = self.dig(S4, "www.gtm.example.", "A")
        self.assertIn(r.rrs()[0][3], ("192.0.2.10", "192.0.2.11"), r.text)
        r = self.dig(S4, "nothere.gtm.example.", "A")
        self.assertEqual(r.status, "NXDOMAIN", r.text)
        # Answered by the lcore, not by the kernel's UDP socket.
        lcore = [w for w in self.dp.status()["workers"] if w["transport"] == "dpdk"][0]
        self.assertGreaterEqual(lcore["responses"], 4)

    def test_arp_nd_and_ping_through_the_kernel(self):
        for target, flag in ((S4, "-4"), (S6, "-6")):
            p = self.ns.client("ping", flag, "-c", "3", "-i", "0.2", "-W", "2", target)
            self.assertIn(" 3 received", p.stdout, p.stdout + p.stderr)
            self.assertNotIn("DUP!", p.stdout, "the kernel answered twice")
        # The neighbour entries name the port's MAC: the tap carries it.
        mac = re.search(r"mac ([0-9a-f:]{17})", self.dp.log()).group(1)
        neigh = self.ns.client("ip", "neigh").stdout
        for target in (S4, S6):
            self.assertRegex(neigh, rf"{re.escape(target)} dev \S+ lladdr {mac}")

    def test_fragmented_query_answered_after_reassembly(self):
        if not self.fragments_reach_the_port:
            self.skipTest("AF_PACKET fanout reassembles fragments before DPDK sees them "
                          "(PACKET_FANOUT_FLAG_DEFRAG); see nic_configs/af_packet.yaml")
        before = self.dp.totals()
        p = self.ns.client("/usr/bin/python3", "-c", FRAGMENTED_QUERY, S4)
        self.assertEqual(p.stdout.strip(), "192.0.2.1", p.stderr)
        after = self.dp.totals()
        self.assertGreaterEqual(after["to_exception"] - before["to_exception"], 2, "fragments")
        udp = [w for w in self.dp.status()["workers"] if w["transport"] == "udp"][0]
        self.assertEqual(udp["responses"], 1, "the kernel's UDP socket answered it")

    def test_tcp_answered_by_the_same_engine(self):
        before = self.dp.totals()["tcp_queries"]
        r = self.dig(S4, "+tcp", "static.gtm.example.", "A")
        self.assertEqual([rr[3] for rr in r.rrs()], ["192.0.2.1"], r.text)
        r = self.dig(S6, "+tcp", "www.gtm.example.", "A")
        self.assertEqual(len(r.rrs()), 1, r.text)
        self.assertEqual(self.dp.totals()["tcp_queries"], before + 2)


class AfPacket(VethBase, unittest.TestCase):
    nic_config = "af_packet.yaml"
    kernel_blind = True
    fragments_reach_the_port = False

    def test_dnsperf_with_snapshot_swaps(self):
        qfile = os.path.join(self.dir, "queries.txt")
        with open(qfile, "w") as f:
            f.write("static.gtm.example. A\nwww.gtm.example. A\nstatic.gtm.example. AAAA\n")
        gen_before = self.dp.status()["generation"]
        before = self.dp.totals()
        perf = subprocess.Popen(["ip", "netns", "exec", self.ns.cl, "dnsperf", "-s", S4, "-d", qfile,
                                 "-l", "3", "-Q", "3000", "-t", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        swaps = 0
        time.sleep(0.3)
        while perf.poll() is None and swaps < 20:
            reply = dh.sh(h.binary("gtmctl"), "--run-dir", self.dp.run_dir, "reload").stdout
            self.assertTrue(reply.startswith("OK"), reply)
            swaps += 1
        out = perf.communicate(timeout=30)[0]
        after = self.dp.wait_totals(lambda t: t["rx_dns"] == t["responses"] + t["malformed_dropped"])
        self.assertEqual(swaps, 20, out)
        self.assertEqual(self.dp.status()["generation"], gen_before + swaps)
        sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
        completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
        self.assertGreater(sent, 5000, out)
        # No frame the lcore received went unanswered while the snapshot changed under it.
        got = after["rx_dns"] - before["rx_dns"]
        answered = after["responses"] - before["responses"]
        self.assertEqual(got, answered)
        self.assertEqual(after["tx_failed"], 0)
        # What dnsperf lost, if anything, the veth/AF_PACKET rings lost on a shared machine.
        self.assertGreaterEqual(completed, sent * 0.98, out)
        print(f"dnsperf: sent {sent}, completed {completed}, lcore received {got}, answered "
              f"{answered}, swaps {swaps}")


class AfXdp(VethBase, unittest.TestCase):
    nic_config = "af_xdp.yaml"


class Tap(VethBase, unittest.TestCase):
    nic_config = "tap.yaml"
    port_is_tap = True


if __name__ == "__main__":
    h.main()
