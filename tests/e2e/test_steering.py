"""Traffic steering end to end: real gtm-dataplane and gtm-control, queried with dig +subnet and
dnspython. Clients from several countries of MaxMind's test database (by ECS), IPv6 clients, no
ECS, ECS /0, the SCOPE of each answer, failover to a secondary pool set after members are set
always-down and the configuration reloaded, a geo file that changes (answers change) and one that
is corrupted (old answers keep coming, the reason is reported).

The geo files live in a temporary directory of the test, so it can change them.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import dns.edns

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402
from gtm_harness import answer_values, binary, make_query  # noqa: E402

GEO = os.path.join(gtm_harness.SOURCE_DIR, "..", "shared", "geo")
COUNTRY_DB = os.path.join(GEO, "GeoIP2-Country-Test.mmdb")
CORRUPT_DB = os.path.join(GEO, "bad", "libmaxminddb-corrupt-search-tree.mmdb")
WAIT_S = 10.0

CHINA = {"203.0.113.10", "203.0.113.11"}
WORLD = {"198.51.100.10"}
LAB = {"192.0.2.77"}
CHINA_V6 = {"2001:db8:c::10"}
WORLD_V6 = {"2001:db8:f::10"}


def config(geo_dir, china_mode="auto", switch="{}"):
    return gtm_harness.ZONE_HEADER + f"""
geo:
  databases:
    - {{name: country, path: {geo_dir}/country.mmdb}}
regions:
  - name: cn
    mmdb: {{field: country.iso_code, values: [CN]}}
  - name: lab
    cidr_files: [{geo_dir}/lab.txt]
services:
  - name: www.gtm.example.
    ttl: 30
    pools:
      - name: china
        method: return-all
        members:
          - {{name: c1, address: 203.0.113.10, mode: {china_mode}}}
          - {{name: c2, address: 203.0.113.11, mode: {china_mode}}}
          - {{name: c6, address: "2001:db8:c::10", mode: {china_mode}}}
      - name: world
        members:
          - {{name: w1, address: 198.51.100.10}}
          - {{name: w6, address: "2001:db8:f::10"}}
      - name: lab
        members: [{{name: l1, address: 192.0.2.77}}]
    access_policy:
      - {{regions: [cn], primary: china, secondary: world}}
      - {{regions: [lab], primary: lab, secondary: world}}
      - {{primary: world, secondary: china}}
    switch_policy: {switch}
  - name: plain.gtm.example.
    ttl: 30
    ecs: false
    pools:
      - name: all
        members: [{{address: 192.0.2.1}}]
"""


def ecs_query(name, subnet, prefix, rdtype="A"):
    return make_query(name, rdtype, options=[dns.edns.ECSOption(subnet, prefix)])


def ecs_of(resp):
    for opt in resp.options:
        if isinstance(opt, dns.edns.ECSOption):
            return opt
    return None


class SteeringTest(unittest.TestCase):
    def setUp(self):
        self.geo_dir = tempfile.mkdtemp(prefix="gtm-e2e-geo-")
        shutil.copyfile(COUNTRY_DB, os.path.join(self.geo_dir, "country.mmdb"))
        self.write_lab("192.0.2.0/24\n")
        self.cfg = os.path.join(self.geo_dir, "gtm.yaml")
        with open(self.cfg, "w") as f:
            f.write(config(self.geo_dir))
        self.env = gtm_harness.GtmEnv(self.cfg).start()

    def tearDown(self):
        problems = self.env.close()
        shutil.rmtree(self.geo_dir, ignore_errors=True)
        if problems:
            raise AssertionError("\n".join(problems))

    def write_lab(self, text):
        # Written next to it and renamed: the control plane never reads a half-written list.
        tmp = os.path.join(self.geo_dir, "lab.txt.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.geo_dir, "lab.txt"))

    def ecs_answers(self, subnet, prefix, rdtype="A", v6=False):
        resp = self.env.query(ecs_query("www.gtm.example.", subnet, prefix, rdtype), v6=v6)
        return set(answer_values(resp, rdtype)), ecs_of(resp)

    def gtmctl(self, *args):
        return subprocess.run([binary("gtmctl"), "--run-dir", self.env.run_dir] + list(args),
                              capture_output=True, text=True, timeout=30)

    def wait_ecs_answers(self, subnet, prefix, expected, limit_s=WAIT_S):
        deadline = time.monotonic() + limit_s
        got = None
        while time.monotonic() < deadline:
            got, _ = self.ecs_answers(subnet, prefix)
            if got == expected:
                return
            time.sleep(0.05)
        self.fail(f"{subnet}/{prefix}: answers {got}, expected {expected}")

    def test_countries_by_ecs_with_dig_and_scope(self):
        # dig +subnet: CN -> china, SCOPE = the LPM block that decided (the CN /24).
        r = self.env.dig("+subnet=175.16.199.0/24", "www.gtm.example.", "A")
        self.assertEqual(r.status, "NOERROR", r.text)
        self.assertEqual({rr[3] for rr in r.rrs(rdtype="A")}, CHINA, r.text)
        self.assertEqual(r.ecs, "175.16.199.0/24/24", r.text)
        # Another CN network of the database, and US, PH and BT clients (not CN -> world).
        self.assertEqual(self.ecs_answers("111.235.160.0", 24)[0], CHINA)
        for subnet in ("214.78.120.0", "202.196.224.0", "67.43.156.0"):
            got, ecs = self.ecs_answers(subnet, 24)
            self.assertEqual(got, WORLD, subnet)
            self.assertGreater(ecs.scopelen, 0, subnet)  # the answer depends on the client
            self.assertLessEqual(ecs.scopelen, 24, subnet)
        # US is in no region here: what decided is "in no region", true for the whole of
        # 208.0.0.0/4 (no CN or lab network in it), so resolvers may cache it that widely.
        self.assertEqual(self.ecs_answers("214.78.120.0", 24)[1].scopelen, 4)
        # A shorter source prefix: the scope never claims more bits than the client sent.
        got, ecs = self.ecs_answers("175.16.0.0", 16)
        self.assertEqual(got, WORLD)  # 175.16.0.0 itself is not in CN
        self.assertLessEqual(ecs.scopelen, 16)
        self.assertEqual(ecs.srclen, 16)

    def test_ipv6_clients(self):
        got, ecs = self.ecs_answers("2001:250::", 48, "AAAA")
        self.assertEqual(got, CHINA_V6)
        self.assertEqual(ecs.scopelen, 31)  # 2001:250::/31 is one CN network
        got, _ = self.ecs_answers("2a02:d3c0::", 48, "AAAA")  # GB
        self.assertEqual(got, WORLD_V6)
        # An IPv6 ECS subnet for an A query: the client is the same, the family of the answer is
        # the query's.
        self.assertEqual(self.ecs_answers("2001:250::", 48, "A")[0], CHINA)
        if self.env.ipv6:
            # Over IPv6 without ECS: the resolver ::1 is in no region.
            resp = self.env.query(make_query("www.gtm.example.", "AAAA"), v6=True)
            self.assertEqual(set(answer_values(resp, "AAAA")), WORLD_V6)
            r = self.env.dig("+subnet=2001:250::/56", "www.gtm.example.", "AAAA", addr="::1")
            self.assertEqual({rr[3] for rr in r.rrs(rdtype="AAAA")}, CHINA_V6, r.text)

    def test_no_ecs_and_ecs_zero(self):
        # No ECS: the source address (127.0.0.1, no region) decides; no ECS in the reply.
        resp = self.env.query(make_query("www.gtm.example.", "A", use_edns=0))
        self.assertEqual(set(answer_values(resp, "A")), WORLD)
        self.assertIsNone(ecs_of(resp))
        # ECS /0: "do not tailor to my clients": the resolver's own address decides, SCOPE 0.
        got, ecs = self.ecs_answers("0.0.0.0", 0)
        self.assertEqual(got, WORLD)
        self.assertEqual(ecs.srclen, 0)
        self.assertEqual(ecs.scopelen, 0)
        r = self.env.dig("+subnet=0/0", "www.gtm.example.", "A")
        self.assertEqual(r.ecs, "0.0.0.0/0/0", r.text)
        # A service with ecs: false ignores the subnet and answers for everyone: SCOPE 0.
        resp = self.env.query(ecs_query("plain.gtm.example.", "175.16.199.0", 24))
        self.assertEqual(ecs_of(resp).scopelen, 0)

    def test_failover_to_secondary_set_after_always_down_and_reload(self):
        self.assertEqual(self.ecs_answers("175.16.199.0", 24)[0], CHINA)
        with open(self.env.config_path, "w") as f:  # the copy gtm-control reads
            f.write(config(self.geo_dir, china_mode="always-down"))
        r = self.gtmctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        got, ecs = self.ecs_answers("175.16.199.0", 24)
        self.assertEqual(got, WORLD)
        self.assertEqual(ecs.scopelen, 24)
        q = self.gtmctl("query", "www.gtm.example.", "A", "--client", "127.0.0.1", "--ecs",
                        "175.16.199.0/24")
        self.assertIn("secondary set world active: primary below its minimum (0 of 2 usable",
                      q.stdout)
        self.assertIn("class", q.stdout)
        self.assertIn("region cn", q.stdout)
        # Back to auto: the primary returns (preemptive by default).
        with open(self.env.config_path, "w") as f:
            f.write(config(self.geo_dir))
        self.assertEqual(self.gtmctl("reload").returncode, 0)
        self.assertEqual(self.ecs_answers("175.16.199.0", 24)[0], CHINA)

    def test_hold_down_returns_to_the_primary_only_after_it(self):
        hold = "{failback: hold-down, hold_down_s: 2}"
        with open(self.env.config_path, "w") as f:
            f.write(config(self.geo_dir, china_mode="always-down", switch=hold))
        self.assertEqual(self.gtmctl("reload").returncode, 0)
        self.assertEqual(self.ecs_answers("175.16.199.0", 24)[0], WORLD)
        with open(self.env.config_path, "w") as f:
            f.write(config(self.geo_dir, switch=hold))
        self.assertEqual(self.gtmctl("reload").returncode, 0)
        start = time.monotonic()
        # Healthy again, but held down: the secondary keeps answering for 2 s.
        self.assertEqual(self.ecs_answers("175.16.199.0", 24)[0], WORLD)
        q = self.gtmctl("query", "www.gtm.example.", "A", "--ecs", "175.16.199.0/24")
        self.assertIn("hold-down", q.stdout)
        # Then gtm-control publishes the switch back by itself: no reload, no health change.
        self.wait_ecs_answers("175.16.199.0", 24, CHINA, limit_s=6)
        self.assertGreaterEqual(time.monotonic() - start, 1.8)
        # The dataplane takes the image before gtm-control logs it: give the log a moment.
        line = "switch: www.gtm.example. A rule 1: secondary set -> primary set"
        deadline = time.monotonic() + WAIT_S
        while line not in self.env.control.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(line, self.env.control.log())

    def test_changed_geo_file_changes_answers(self):
        self.assertEqual(self.ecs_answers("192.0.2.0", 24)[0], LAB)
        self.write_lab("# moved\n198.18.0.0/24\n")
        self.wait_ecs_answers("192.0.2.0", 24, WORLD)
        self.wait_ecs_answers("198.18.0.0", 24, LAB)
        # Logged before the publish, so it is there once the answers changed.
        self.assertIn("geo: sources changed, recompiled", self.env.control.log())

    def test_corrupt_geo_file_keeps_old_tables_and_says_why(self):
        self.assertEqual(self.ecs_answers("175.16.199.0", 24)[0], CHINA)
        tmp = os.path.join(self.geo_dir, "country.tmp")
        shutil.copyfile(CORRUPT_DB, tmp)
        os.rename(tmp, os.path.join(self.geo_dir, "country.mmdb"))
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not self.env.control_status()["geo"]["error"]:
            time.sleep(0.05)
        status = self.env.control_status()["geo"]
        self.assertIn("country.mmdb", status["error"])
        self.assertIn("refused", self.env.control.log())
        # The old tables keep answering.
        for _ in range(5):
            self.assertEqual(self.ecs_answers("175.16.199.0", 24)[0], CHINA)
        # A reload says why too, and changes nothing.
        r = self.gtmctl("reload")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("country.mmdb", r.stderr)
        self.assertIn("previous tables keep serving", r.stderr)
        self.assertEqual(self.ecs_answers("175.16.199.0", 24)[0], CHINA)
        st = self.gtmctl("status")
        self.assertIn("geo: last compilation refused", st.stdout)
        # A good file again: recompiled, and the error clears.
        tmp = os.path.join(self.geo_dir, "country.tmp")
        shutil.copyfile(COUNTRY_DB, tmp)
        os.rename(tmp, os.path.join(self.geo_dir, "country.mmdb"))
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and self.env.control_status()["geo"]["error"]:
            time.sleep(0.05)
        self.assertEqual(self.env.control_status()["geo"]["error"], "")

    def test_missing_geo_file_is_refused_on_reload(self):
        os.unlink(os.path.join(self.geo_dir, "lab.txt"))
        r = self.gtmctl("reload")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("lab.txt", r.stderr)
        self.assertEqual(self.ecs_answers("192.0.2.0", 24)[0], LAB)


if __name__ == "__main__":
    gtm_harness.main()
