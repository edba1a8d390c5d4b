"""Every steering example runs with ./scripts/demo.sh FILE and steers as its comments say.

Runs the real script (GTM_DEMO_EXIT=1: print the answers, then stop) on a free port for each
example, and checks the dig +subnet answers, their ECS SCOPE and the explain output it printed.
"""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

SOURCE_DIR = gtm_harness.SOURCE_DIR


def run_demo(example):
    families = [(gtm_harness.socket.AF_INET, "127.0.0.1")]
    if gtm_harness.ipv6_loopback_available():
        families.append((gtm_harness.socket.AF_INET6, "::1"))
    port = gtm_harness.pick_free_port(families)
    env = dict(os.environ, GTM_DEMO_PORT=str(port), GTM_DEMO_EXIT="1")
    proc = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "demo.sh"),
                           os.path.join(SOURCE_DIR, "examples", example)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    return proc.returncode, proc.stdout


def dig_blocks(out):
    """{(name, type, subnet or None): block of output} for each demo dig."""
    blocks = {}
    for m in re.finditer(r"^\$ dig (.*)\n((?:    .*\n)*)", out, re.M):
        argv = m.group(1).split()
        subnet = next((a.split("=", 1)[1] for a in argv if a.startswith("+subnet=")), None)
        blocks[(argv[-2], argv[-1], subnet)] = m.group(2)
    return blocks


def addresses(block, rdtype):
    return set(re.findall(rf"\sIN\s+{rdtype}\s+(\S+)", block))


def scope(block):
    m = re.search(r"CLIENT-SUBNET: (\S+)", block)
    return m.group(1) if m else None


class ExamplesTest(unittest.TestCase):
    def demo(self, example):
        code, out = run_demo(example)
        self.assertEqual(code, 0, out[-4000:])
        return out, dig_blocks(out)

    def test_dr_primary_secondary(self):
        out, digs = self.demo("dr-primary-secondary.yaml")
        self.assertEqual(addresses(digs[("www.gtm.example.", "A", None)], "A"),
                         {"192.0.2.10", "192.0.2.11"}, out)
        self.assertIn("primary set site-a active: primary has 2 of 2 members usable", out)

    def test_china_split(self):
        out, digs = self.demo("china-split.yaml")
        cn = digs[("www.gtm.example.", "A", "175.16.199.0/24")]
        self.assertLessEqual(addresses(cn, "A"), {"203.0.113.10", "203.0.113.11"}, out)
        self.assertEqual(len(addresses(cn, "A")), 1, cn)
        self.assertEqual(scope(cn), "175.16.199.0/24/24", cn)
        us = digs[("www.gtm.example.", "A", "214.78.120.0/24")]
        self.assertEqual(len(addresses(us, "A") & {"198.51.100.10", "198.51.100.11"}), 1, us)
        self.assertEqual(scope(us), "214.78.120.0/24/2", us)
        self.assertEqual(addresses(digs[("www.gtm.example.", "AAAA", "2001:250::/48")], "AAAA"),
                         {"2001:db8:c1::10"}, out)
        self.assertEqual(addresses(digs[("www.gtm.example.", "AAAA", "2a02:d3c0::/48")], "AAAA"),
                         {"2001:db8:e1::10"}, out)
        self.assertIn("region mainland-china", out)
        self.assertIn("rule 1 of 2: matches region mainland-china", out)
        self.assertIn("rule 2 of 2: default", out)

    def test_multi_active(self):
        out, digs = self.demo("multi-active.yaml")
        self.assertEqual(addresses(digs[("www.gtm.example.", "A", "214.78.120.0/24")], "A"),
                         {"192.0.2.10"}, out)
        self.assertEqual(addresses(digs[("www.gtm.example.", "A", "175.16.199.0/24")], "A"),
                         {"203.0.113.10"}, out)
        self.assertEqual(addresses(digs[("www.gtm.example.", "AAAA", "2a02:d3c0::/48")], "AAAA"),
                         {"2001:db8:2::10"}, out)
        other = digs[("www.gtm.example.", "A", "192.0.2.0/24")]
        self.assertEqual(len(addresses(other, "A") &
                             {"192.0.2.10", "198.51.100.10", "203.0.113.10"}), 1, other)
        self.assertIn("topology: datacenter us-east, score 100", out)
        self.assertIn("topology cannot pick", out)
        self.assertIn("answers by ratio", out)

    def test_isp_lines(self):
        out, digs = self.demo("isp-lines.yaml")
        cnc = digs[("www.gtm.example.", "A", "123.112.5.0/24")]
        self.assertEqual(len(addresses(cnc, "A") & {"203.0.113.10", "203.0.113.11"}), 1, cnc)
        self.assertEqual(addresses(digs[("www.gtm.example.", "A", "180.96.7.0/24")], "A"),
                         {"203.0.113.20"}, out)
        self.assertEqual(addresses(digs[("www.gtm.example.", "A", "192.0.2.0/24")], "A"),
                         {"203.0.113.30"}, out)
        self.assertIn("isp-line CNC", out)
        self.assertIn("topology: datacenter bj-cnc, score 200", out)
        self.assertIn("topology: datacenter sh-tel, score 200", out)


if __name__ == "__main__":
    gtm_harness.main()
