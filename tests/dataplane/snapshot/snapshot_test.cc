// Snapshot image round trips (builder -> validate -> lookups), the weighted wheel, usable lists,
// corruption handling, and loading/saving images through memfds and files.
#include "dataplane/snapshot/snapshot.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "dataplane/dns/wire.h"
#include "tests/support/wire_name.h"

namespace gtm::snap {
namespace {

using control::MemberModel;
using control::PoolModel;
using control::ServiceModel;
using control::SnapshotModel;
using control::StaticRecord;
using control::WireName;
using control::WireRdata;
using control::ZoneModel;

// ---------------------------------------------------------------------------------------------
// Model helpers.

using test::wn;

WireRdata v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return {a, b, c, d};
}
WireRdata v6(uint8_t last) {
  WireRdata r(16, 0);
  r[0] = 0x20;
  r[1] = 0x01;
  r[2] = 0x0d;
  r[3] = 0xb8;
  r[15] = last;
  return r;
}
WireRdata mx(uint16_t pref, std::string_view host) {
  WireRdata r = {static_cast<uint8_t>(pref >> 8), static_cast<uint8_t>(pref)};
  WireName n = wn(host);
  r.insert(r.end(), n.begin(), n.end());
  return r;
}
WireRdata txt(std::string_view s) {
  WireRdata r(1 + s.size());
  r[0] = static_cast<uint8_t>(s.size());
  std::copy(s.begin(), s.end(), r.begin() + 1);  // not insert(): GCC 12 -O2 false -Warray-bounds
  return r;
}
WireRdata soa(std::string_view mname, std::string_view rname, uint32_t minimum) {
  WireRdata r = wn(mname);
  WireName rn = wn(rname);
  r.insert(r.end(), rn.begin(), rn.end());
  for (uint32_t v : {2026010101u, 3600u, 600u, 1209600u, minimum}) {
    uint8_t b[4];
    dns::store32(b, v);
    r.insert(r.end(), b, b + 4);
  }
  return r;
}

StaticRecord rec(std::string_view owner, uint16_t type, uint32_t ttl, WireRdata rdata) {
  StaticRecord r;
  r.owner = wn(owner);
  r.type = type;
  r.ttl = ttl;
  r.rdata = std::move(rdata);
  return r;
}

MemberModel member(std::string name, WireRdata rdata, uint32_t weight = 1,
                   MemberMode mode = MemberMode::kAuto, MemberHealth health = MemberHealth::kUp,
                   bool enabled = true) {
  MemberModel m;
  m.name = std::move(name);
  m.rdata = std::move(rdata);
  m.weight = weight;
  m.mode = mode;
  m.health = health;
  m.enabled = enabled;
  return m;
}

PoolModel pool(std::string name, PoolMethod method, std::vector<MemberModel> members) {
  PoolModel p;
  p.name = std::move(name);
  p.method = method;
  p.return_n = 2;
  p.members = std::move(members);
  return p;
}

ServiceModel service(std::string_view name, uint16_t rtype, std::vector<PoolModel> pools) {
  ServiceModel s;
  s.name = wn(name);
  s.rtype = rtype;
  s.ttl = 30;
  s.pools = std::move(pools);
  return s;
}

ZoneModel zone(std::string_view apex, uint32_t soa_ttl, uint32_t minimum) {
  ZoneModel z;
  z.apex = wn(apex);
  z.soa_rdata = soa(std::string("ns1.") + std::string(apex),
                    std::string("hostmaster.") + std::string(apex), minimum);
  z.soa_ttl = soa_ttl;
  return z;
}

// Two nested zones with static records, ENTs, a wildcard, a CNAME and three GSLB services.
SnapshotModel demo_model() {
  SnapshotModel m;
  m.generation = 42;
  ZoneModel ex = zone("example.", 3600, 60);
  ex.records = {
      rec("example.", dns::kTypeNS, 3600, wn("ns1.example.")),
      rec("example.", dns::kTypeNS, 3600, wn("ns2.example.")),
      rec("example.", dns::kTypeMX, 300, mx(10, "mail.example.")),
      rec("example.", dns::kTypeTXT, 300, txt("v=spf1 -all")),
      rec("ns1.example.", dns::kTypeA, 3600, v4(192, 0, 2, 1)),
      rec("mail.example.", dns::kTypeA, 300, v4(192, 0, 2, 25)),
      rec("mail.example.", dns::kTypeA, 100, v4(192, 0, 2, 25)),  // duplicate: merged, TTL 100
      rec("mail.example.", dns::kTypeA, 300, v4(192, 0, 2, 26)),
      rec("a.b.c.example.", dns::kTypeTXT, 300, txt("deep")),
      rec("*.apps.example.", dns::kTypeA, 300, v4(192, 0, 2, 99)),
      rec("docs.example.", dns::kTypeCNAME, 300, wn("www.example.")),
  };
  ZoneModel sub = zone("sub.example.", 600, 900);  // negative TTL = min(600, 900)
  sub.records = {rec("host.deep.sub.example.", dns::kTypeAAAA, 300, v6(7))};
  m.zones = {ex, sub};

  ServiceModel www_a =
      service("www.example.", dns::kTypeA,
              {pool("site-a", PoolMethod::kRatio,
                    {member("a1", v4(192, 0, 2, 10), 3), member("a2", v4(192, 0, 2, 11), 1)}),
               pool("site-b", PoolMethod::kRoundRobin,
                    {member("b1", v4(198, 51, 100, 10)), member("b2", v4(198, 51, 100, 11))})});
  www_a.fallback = v4(203, 0, 113, 1);
  ServiceModel www_aaaa =
      service("www.example.", dns::kTypeAAAA,
              {pool("site-a", PoolMethod::kRatio, {member("a1-v6", v6(0x10))})});
  ServiceModel app =
      service("app.example.", dns::kTypeCNAME,
              {pool("targets", PoolMethod::kGlobalAvailability,
                    {member("www", wn("www.example.")),
                     member("backup", wn("app.backup.example.net."), 1, MemberMode::kAlwaysUp)})});
  m.services = {www_a, www_aaaa, app};
  return m;
}

// A built and validated image. The vector's buffer is 16-byte aligned (operator new).
struct Built {
  std::vector<uint8_t> image;
  SnapshotView view;
};

std::unique_ptr<Built> build(const SnapshotModel& m) {
  auto b = std::make_unique<Built>();
  std::string error;
  EXPECT_TRUE(control::build_snapshot(m, &b->image, &error)) << error;
  EXPECT_TRUE(b->view.validate(b->image.data(), b->image.size(), &error)) << error;
  return b;
}

uint32_t find(const SnapshotView& v, std::string_view name) {
  WireName n = wn(name);
  return v.find_node(n.data(), n.size());
}

std::vector<uint8_t> bytes_of(const SnapshotView& v, BlobRef r) {
  return std::vector<uint8_t>(v.blob(r), v.blob(r) + r.len);
}

// ---------------------------------------------------------------------------------------------
// Round trips.

TEST(SnapshotRoundTrip, EveryNameFindableIncludingEmptyNonTerminals) {
  auto b = build(demo_model());
  const SnapshotView& v = b->view;
  EXPECT_EQ(v.generation(), 42u);
  const std::vector<std::string> names = {
      "example.",          "ns1.example.",          "mail.example.",
      "a.b.c.example.",    "b.c.example.",          "c.example.",
      "*.apps.example.",   "apps.example.",         "docs.example.",
      "www.example.",      "app.example.",          "sub.example.",
      "deep.sub.example.", "host.deep.sub.example."};
  EXPECT_EQ(v.node_count(), names.size());
  for (const std::string& name : names) {
    uint32_t n = find(v, name);
    ASSERT_NE(n, kNone) << name;
    EXPECT_EQ(bytes_of(v, v.nodes()[n].name), wn(name)) << name;
  }
  for (uint32_t n = 0; n < v.node_count(); ++n) {
    EXPECT_EQ(v.find_node(v.blob(v.nodes()[n].name), v.nodes()[n].name.len), n);
  }
}

TEST(SnapshotRoundTrip, AbsentNamesNotFound) {
  auto b = build(demo_model());
  for (const char* name : {".", "ns2.example.", "x.www.example.", "foo.apps.example.",
                           "example.com.", "d.example.", "xample.", "ample.", "sub.example.com."}) {
    EXPECT_EQ(find(b->view, name), kNone) << name;
  }
  // Case matters: lookups take canonical (lowercase) names only.
  EXPECT_EQ(find(b->view, "WWW.example."), kNone);
  // A prefix of a stored name is not a match.
  WireName www = wn("www.example.");
  EXPECT_EQ(b->view.find_node(www.data(), www.size() - 1), kNone);
}

TEST(SnapshotRoundTrip, NodesBelongToTheDeepestZoneWithFlags) {
  auto b = build(demo_model());
  const SnapshotView& v = b->view;
  ASSERT_EQ(v.zone_count(), 2u);
  EXPECT_EQ(bytes_of(v, v.zones()[0].apex), wn("example."));
  EXPECT_EQ(bytes_of(v, v.zones()[1].apex), wn("sub.example."));
  auto node = [&](const char* name) -> const Node& { return v.nodes()[find(v, name)]; };
  EXPECT_EQ(node("www.example.").zone, 0u);
  EXPECT_EQ(node("sub.example.").zone, 1u);
  EXPECT_EQ(node("deep.sub.example.").zone, 1u);
  EXPECT_EQ(node("host.deep.sub.example.").zone, 1u);
  EXPECT_EQ(node("example.").flags, kNodeApex);
  EXPECT_EQ(node("sub.example.").flags, kNodeApex);
  EXPECT_EQ(node("*.apps.example.").flags, kNodeWildcard);
  EXPECT_EQ(node("apps.example.").flags, 0);
  EXPECT_EQ(node("docs.example.").flags, kNodeHasCname);
  EXPECT_EQ(node("app.example.").flags, kNodeHasCname);
  EXPECT_EQ(node("c.example.").rrset_count, 0);
  EXPECT_EQ(node("b.c.example.").rrset_count, 0);
  EXPECT_EQ(node("deep.sub.example.").rrset_count, 0);
  EXPECT_EQ(v.zones()[0].apex_node, find(v, "example."));
  EXPECT_EQ(v.zones()[1].apex_node, find(v, "sub.example."));
}

TEST(SnapshotRoundTrip, ZoneSoaAndNegativeTtl) {
  auto b = build(demo_model());
  const SnapshotView& v = b->view;
  const Zone& ex = v.zones()[0];
  EXPECT_EQ(ex.soa_ttl, 3600u);
  EXPECT_EQ(ex.negative_ttl, 60u);
  EXPECT_EQ(v.zones()[1].negative_ttl, 600u);
  const Rdata& s = v.rdatas()[ex.soa_rdata];
  EXPECT_EQ(bytes_of(v, s.wire), soa("ns1.example.", "hostmaster.example.", 60));
  EXPECT_EQ(s.name1_off, 0);
  EXPECT_EQ(s.name2_off, wn("ns1.example.").size());
  ASSERT_NE(ex.ns_rrset, kNone);
  const RRset& ns = v.rrsets()[ex.ns_rrset];
  EXPECT_EQ(ns.type, dns::kTypeNS);
  ASSERT_EQ(ns.rdata_count, 2u);
  EXPECT_EQ(bytes_of(v, v.rdatas()[ns.rdata_first].wire), wn("ns1.example."));
  EXPECT_EQ(bytes_of(v, v.rdatas()[ns.rdata_first + 1].wire), wn("ns2.example."));
  EXPECT_EQ(v.rdatas()[ns.rdata_first].name1_off, 0);
  EXPECT_EQ(v.zones()[1].ns_rrset, kNone);
}

TEST(SnapshotRoundTrip, RRsetsSortedMergedWithMinimumTtl) {
  auto b = build(demo_model());
  const SnapshotView& v = b->view;
  const Node& apex = v.nodes()[find(v, "example.")];
  ASSERT_EQ(apex.rrset_count, 3);
  EXPECT_EQ(v.rrsets()[apex.rrset_first].type, dns::kTypeNS);
  EXPECT_EQ(v.rrsets()[apex.rrset_first + 1].type, dns::kTypeMX);
  EXPECT_EQ(v.rrsets()[apex.rrset_first + 2].type, dns::kTypeTXT);
  const Rdata& mxr = v.rdatas()[v.rrsets()[apex.rrset_first + 1].rdata_first];
  EXPECT_EQ(mxr.name1_off, 2);
  EXPECT_EQ(mxr.name2_off, kNoNameInRdata);
  EXPECT_EQ(v.rdatas()[v.rrsets()[apex.rrset_first + 2].rdata_first].name1_off, kNoNameInRdata);

  const Node& mail = v.nodes()[find(v, "mail.example.")];
  ASSERT_EQ(mail.rrset_count, 1);
  const RRset& a = v.rrsets()[mail.rrset_first];
  EXPECT_EQ(a.kind, kRRsetStatic);
  EXPECT_EQ(a.ttl, 100u);
  ASSERT_EQ(a.rdata_count, 2u);
  EXPECT_EQ(bytes_of(v, v.rdatas()[a.rdata_first].wire), v4(192, 0, 2, 25));
  EXPECT_EQ(bytes_of(v, v.rdatas()[a.rdata_first + 1].wire), v4(192, 0, 2, 26));

  const Node& docs = v.nodes()[find(v, "docs.example.")];
  ASSERT_EQ(docs.rrset_count, 1);
  EXPECT_EQ(v.rrsets()[docs.rrset_first].type, dns::kTypeCNAME);
  EXPECT_EQ(v.rdatas()[v.rrsets()[docs.rrset_first].rdata_first].name1_off, 0);
}

TEST(SnapshotRoundTrip, GslbRRsetsPointAtServicesPoolsAndMembers) {
  auto b = build(demo_model());
  const SnapshotView& v = b->view;
  const Node& www = v.nodes()[find(v, "www.example.")];
  ASSERT_EQ(www.rrset_count, 2);
  const RRset& a = v.rrsets()[www.rrset_first];
  const RRset& aaaa = v.rrsets()[www.rrset_first + 1];
  EXPECT_EQ(a.type, dns::kTypeA);
  EXPECT_EQ(a.kind, kRRsetGslb);
  EXPECT_EQ(a.ttl, 30u);
  EXPECT_EQ(aaaa.type, dns::kTypeAAAA);
  const Service& svc = v.services()[a.rdata_first];
  EXPECT_EQ(svc.rtype, dns::kTypeA);
  EXPECT_EQ(svc.node, find(v, "www.example."));
  EXPECT_EQ(bytes_of(v, svc.name), wn("www.example."));
  ASSERT_EQ(svc.pool_count, 2u);
  ASSERT_NE(svc.fallback_rdata, kNone);
  EXPECT_EQ(bytes_of(v, v.rdatas()[svc.fallback_rdata].wire), v4(203, 0, 113, 1));
  const Pool& site_a = v.pools()[svc.pool_first];
  const Pool& site_b = v.pools()[svc.pool_first + 1];
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.blob(site_a.name)), site_a.name.len),
            "site-a");
  EXPECT_EQ(site_a.method, static_cast<uint8_t>(PoolMethod::kRatio));
  ASSERT_EQ(site_a.member_count, 2u);
  const Member& a1 = v.members()[site_a.member_first];
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.blob(a1.name)), a1.name.len), "a1");
  EXPECT_EQ(a1.weight, 3u);
  EXPECT_EQ(bytes_of(v, v.rdatas()[a1.rdata].wire), v4(192, 0, 2, 10));
  EXPECT_EQ(site_b.method, static_cast<uint8_t>(PoolMethod::kRoundRobin));
  EXPECT_EQ(site_b.usable_count, 2u);
  EXPECT_EQ(site_b.wheel_count, 0u);  // wheels exist for ratio pools only

  const Node& app = v.nodes()[find(v, "app.example.")];
  const Service& cname = v.services()[v.rrsets()[app.rrset_first].rdata_first];
  EXPECT_EQ(cname.rtype, dns::kTypeCNAME);
  const Pool& targets = v.pools()[cname.pool_first];
  const Rdata& t0 = v.rdatas()[v.members()[targets.member_first].rdata];
  EXPECT_EQ(bytes_of(v, t0.wire), wn("www.example."));
  EXPECT_EQ(t0.name1_off, 0);
}

TEST(SnapshotRoundTrip, EmptyModelIsAValidImage) {
  auto b = build(SnapshotModel{});
  EXPECT_EQ(b->view.node_count(), 0u);
  EXPECT_EQ(find(b->view, "example."), kNone);
}

TEST(SnapshotRoundTrip, FindNodeOnUnvalidatedViewFindsNothing) {
  SnapshotView v;
  WireName n = wn("example.");
  EXPECT_EQ(v.find_node(n.data(), n.size()), kNone);
}

TEST(SnapshotRoundTrip, ManyNamesAllFindable) {
  SnapshotModel m;
  ZoneModel z = zone("big.test.", 300, 300);
  for (int i = 0; i < 2000; ++i) {
    z.records.push_back(rec("h" + std::to_string(i) + ".l" + std::to_string(i % 7) + ".big.test.",
                            dns::kTypeA, 60, v4(10, 0, i >> 8, i & 0xff)));
  }
  m.zones = {z};
  auto b = build(m);
  EXPECT_EQ(b->view.node_count(), 2000u + 7u + 1u);
  for (int i = 0; i < 2000; ++i) {
    std::string name = "h" + std::to_string(i) + ".l" + std::to_string(i % 7) + ".big.test.";
    ASSERT_NE(find(b->view, name), kNone) << name;
    EXPECT_EQ(find(b->view, "x" + name), kNone);
  }
}

// ---------------------------------------------------------------------------------------------
// The weighted wheel.

// Builds one ratio pool with the given weights (all usable) and returns its wheel as positions
// within the pool (0 = first configured member).
std::vector<uint32_t> wheel_for(const std::vector<uint32_t>& weights) {
  SnapshotModel m;
  m.zones = {zone("example.", 300, 300)};
  std::vector<MemberModel> members;
  for (size_t i = 0; i < weights.size(); ++i) {
    members.push_back(member("m" + std::to_string(i), v4(10, 0, i >> 8, i & 0xff), weights[i]));
  }
  m.services = {service("w.example.", dns::kTypeA, {pool("p", PoolMethod::kRatio, members)})};
  auto b = build(m);
  const Pool& p = b->view.pools()[0];
  std::vector<uint32_t> wheel;
  for (uint32_t k = 0; k < p.wheel_count; ++k) {
    wheel.push_back(b->view.pool_slots()[p.wheel_first + k] - p.member_first);
  }
  return wheel;
}

std::map<uint32_t, int> counts(const std::vector<uint32_t>& wheel) {
  std::map<uint32_t, int> c;
  for (uint32_t m : wheel) ++c[m];
  return c;
}

// Longest run of one member, treating the wheel as cyclic (it repeats every cycle).
int longest_cyclic_run(const std::vector<uint32_t>& wheel) {
  int best = 0;
  size_t n = wheel.size();
  for (size_t start = 0; start < n; ++start) {
    int run = 0;
    while (run < static_cast<int>(n) && wheel[(start + run) % n] == wheel[start]) ++run;
    best = std::max(best, run);
  }
  return best;
}

TEST(SnapshotWheel, ThreeToOneGivesExactRatioPerCycle) {
  std::vector<uint32_t> w = wheel_for({3, 1});
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(counts(w), (std::map<uint32_t, int>{{0, 3}, {1, 1}}));
}

TEST(SnapshotWheel, ThreeToTwoInterleaves) {
  std::vector<uint32_t> w = wheel_for({3, 2});
  ASSERT_EQ(w.size(), 5u);
  EXPECT_EQ(counts(w), (std::map<uint32_t, int>{{0, 3}, {1, 2}}));
  EXPECT_LT(longest_cyclic_run(w), 3);
}

TEST(SnapshotWheel, SmoothSequenceForFiveOneOne) {
  // nginx's smooth weighted round-robin for 5:1:1 is a a b a c a a.
  EXPECT_EQ(wheel_for({5, 1, 1}), (std::vector<uint32_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(SnapshotWheel, WeightsReducedByGcd) {
  std::vector<uint32_t> w = wheel_for({6000, 2000, 4000});
  ASSERT_EQ(w.size(), 6u);
  EXPECT_EQ(counts(w), (std::map<uint32_t, int>{{0, 3}, {1, 1}, {2, 2}}));
}

TEST(SnapshotWheel, EqualWeightsAlternate) {
  EXPECT_EQ(wheel_for({7, 7, 7}), (std::vector<uint32_t>{0, 1, 2}));
}

TEST(SnapshotWheel, HugeWeightsScaledToAtMost4096SlotsKeepingEveryMember) {
  std::vector<uint32_t> w = wheel_for({1000000, 3, 999});
  EXPECT_LE(w.size(), 4096u);
  auto c = counts(w);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_GE(c[1], 1);
  EXPECT_GE(c[2], 1);
  EXPECT_GT(c[0], 4000);
  // Proportions survive scaling: 999/1000000 of 4096 is ~4 slots.
  EXPECT_NEAR(c[2], 4, 1);
}

TEST(SnapshotWheel, OnlyUsableMembersInWheelAndUsableList) {
  SnapshotModel m;
  m.zones = {zone("example.", 300, 300)};
  m.services = {service(
      "w.example.", dns::kTypeA,
      {pool("p", PoolMethod::kRatio,
            {member("up", v4(10, 0, 0, 1), 2),
             member("down", v4(10, 0, 0, 2), 5, MemberMode::kAuto, MemberHealth::kDown),
             member("forced", v4(10, 0, 0, 3), 1, MemberMode::kAlwaysUp, MemberHealth::kDown)})})};
  auto b = build(m);
  const Pool& p = b->view.pools()[0];
  std::vector<uint32_t> usable(b->view.pool_slots() + p.usable_first,
                               b->view.pool_slots() + p.usable_first + p.usable_count);
  EXPECT_EQ(usable, (std::vector<uint32_t>{p.member_first, p.member_first + 2}));
  std::vector<uint32_t> wheel(b->view.pool_slots() + p.wheel_first,
                              b->view.pool_slots() + p.wheel_first + p.wheel_count);
  std::map<uint32_t, int> c;
  for (uint32_t x : wheel) ++c[x - p.member_first];
  EXPECT_EQ(c, (std::map<uint32_t, int>{{0, 2}, {2, 1}}));
}

// ---------------------------------------------------------------------------------------------
// Usable verdicts per mode, health and enabled.

TEST(SnapshotUsable, UsableListFollowsModeHealthEnabled) {
  struct Case {
    MemberMode mode;
    MemberHealth health;
    bool enabled;
    bool unknown_is_up;
    bool usable;
  };
  const Case cases[] = {
      {MemberMode::kAuto, MemberHealth::kUp, true, true, true},
      {MemberMode::kAuto, MemberHealth::kUp, true, false, true},
      {MemberMode::kAuto, MemberHealth::kDown, true, true, false},
      {MemberMode::kAuto, MemberHealth::kUnknown, true, true, true},
      {MemberMode::kAuto, MemberHealth::kUnknown, true, false, false},
      {MemberMode::kAlwaysUp, MemberHealth::kDown, true, false, true},
      {MemberMode::kAlwaysUp, MemberHealth::kUnknown, true, false, true},
      {MemberMode::kAlwaysDown, MemberHealth::kUp, true, true, false},
      {MemberMode::kAuto, MemberHealth::kUp, false, true, false},
      {MemberMode::kAlwaysUp, MemberHealth::kUp, false, true, false},
  };
  for (bool unknown_is_up : {true, false}) {
    SnapshotModel m;
    m.unknown_health_is_up = unknown_is_up;
    m.zones = {zone("example.", 300, 300)};
    std::vector<MemberModel> members;
    std::vector<bool> expected;
    for (const Case& c : cases) {
      if (c.unknown_is_up != unknown_is_up) continue;
      members.push_back(member("m" + std::to_string(members.size()),
                               v4(10, 0, 0, static_cast<uint8_t>(members.size())), 1, c.mode,
                               c.health, c.enabled));
      expected.push_back(c.usable);
      EXPECT_EQ(control::member_usable(members.back(), unknown_is_up), c.usable);
    }
    m.services = {
        service("w.example.", dns::kTypeA, {pool("p", PoolMethod::kRoundRobin, members)})};
    auto b = build(m);
    const Pool& p = b->view.pools()[0];
    std::vector<uint32_t> want;
    for (uint32_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(b->view.members()[p.member_first + i].usable, expected[i] ? 1 : 0) << i;
      EXPECT_EQ(b->view.members()[p.member_first + i].enabled, members[i].enabled ? 1 : 0);
      if (expected[i]) want.push_back(p.member_first + i);
    }
    std::vector<uint32_t> got(b->view.pool_slots() + p.usable_first,
                              b->view.pool_slots() + p.usable_first + p.usable_count);
    EXPECT_EQ(got, want) << "unknown_is_up=" << unknown_is_up;
  }
}

// ---------------------------------------------------------------------------------------------
// Corruption.

// A small but complete image: every section non-empty.
std::vector<uint8_t> small_image() {
  SnapshotModel m;
  m.generation = 7;
  ZoneModel z = zone("ex.", 300, 60);
  z.records = {rec("ex.", dns::kTypeNS, 300, wn("ns.ex.")),
               rec("ns.ex.", dns::kTypeA, 300, v4(192, 0, 2, 1)),
               rec("ns.ex.", dns::kTypeTXT, 300, txt("x"))};
  m.zones = {z};
  ServiceModel s = service("w.ex.", dns::kTypeA,
                           {pool("p", PoolMethod::kRatio,
                                 {member("a", v4(10, 0, 0, 1), 2), member("b", v4(10, 0, 0, 2))})});
  m.services = {s};
  std::vector<uint8_t> image;
  std::string error;
  EXPECT_TRUE(control::build_snapshot(m, &image, &error)) << error;
  return image;
}

bool validates(const std::vector<uint8_t>& image, std::string* error) {
  SnapshotView v;
  return v.validate(image.data(), image.size(), error);
}

TEST(SnapshotCorruption, EveryFlippedByteIsRejected) {
  std::vector<uint8_t> image = small_image();
  std::string error;
  ASSERT_TRUE(validates(image, &error)) << error;
  // generation and created_unix_ms are informational header fields outside the checksum; every
  // other byte is either checked in the header or covered by the checksum.
  std::set<size_t> informational;
  for (size_t i = 0; i < 8; ++i) {
    informational.insert(offsetof(Header, generation) + i);
    informational.insert(offsetof(Header, created_unix_ms) + i);
  }
  for (size_t i = 0; i < image.size(); ++i) {
    std::vector<uint8_t> bad = image;
    bad[i] ^= 0xFF;
    bool ok = validates(bad, &error);
    if (informational.count(i) != 0) {
      EXPECT_TRUE(ok) << "byte " << i << ": " << error;
    } else {
      EXPECT_FALSE(ok) << "byte " << i << " flipped but image still valid";
      EXPECT_FALSE(error.empty());
      EXPECT_EQ(error.find('\n'), std::string::npos);
    }
  }
  // Body flips specifically fail the checksum.
  std::vector<uint8_t> bad = image;
  bad[image.size() - 1] ^= 1;
  EXPECT_FALSE(validates(bad, &error));
  EXPECT_EQ(error, "checksum mismatch");
}

TEST(SnapshotCorruption, EveryTruncationIsRejected) {
  std::vector<uint8_t> image = small_image();
  std::string error;
  for (size_t len = 0; len < image.size(); ++len) {
    std::vector<uint8_t> cut(image.begin(), image.begin() + len);
    EXPECT_FALSE(validates(cut, &error)) << len;
  }
}

// Section helpers over a mutable image.
SectionEntry* section(std::vector<uint8_t>& image, uint32_t id) {
  Header* h = reinterpret_cast<Header*>(image.data());
  for (uint32_t i = 0; i < h->section_count; ++i) {
    if (h->sections[i].id == id) return &h->sections[i];
  }
  return nullptr;
}
template <typename T>
T* table(std::vector<uint8_t>& image, uint32_t id) {
  return reinterpret_cast<T*>(image.data() + section(image, id)->offset);
}
void reseal(std::vector<uint8_t>& image) {
  Header* h = reinterpret_cast<Header*>(image.data());
  h->total_size = image.size();
  h->checksum = image_checksum(image.data() + h->header_size, image.size() - h->header_size);
}

// Applies `corrupt` to a fresh small image, recomputes the checksum, and returns the error.
template <typename F>
std::string corrupted_error(F corrupt) {
  std::vector<uint8_t> image = small_image();
  corrupt(image);
  reseal(image);
  std::string error;
  EXPECT_FALSE(validates(image, &error));
  EXPECT_EQ(error.find('\n'), std::string::npos);
  return error;
}

using Image = std::vector<uint8_t>;

TEST(SnapshotCorruption, HeaderFields) {
  EXPECT_EQ(corrupted_error([](Image& im) { im[0] = 'X'; }), "bad magic");
  EXPECT_EQ(
      corrupted_error([](Image& im) { reinterpret_cast<Header*>(im.data())->format_version = 5; }),
      "unsupported format version 5");
  // Version 3 (before the pick table) lacks its section and Service::pick_table: refused.
  EXPECT_EQ(
      corrupted_error([](Image& im) { reinterpret_cast<Header*>(im.data())->format_version = 3; }),
      "unsupported format version 3");
  // Version 2 (before rendered answer records) lacks their sections: refused, never misread.
  EXPECT_EQ(
      corrupted_error([](Image& im) { reinterpret_cast<Header*>(im.data())->format_version = 2; }),
      "unsupported format version 2");
  // Version 1 (before traffic steering) has no steering sections: refused, never misread.
  EXPECT_EQ(
      corrupted_error([](Image& im) { reinterpret_cast<Header*>(im.data())->format_version = 1; }),
      "unsupported format version 1");
  EXPECT_EQ(
      corrupted_error([](Image& im) { reinterpret_cast<Header*>(im.data())->header_size = 8; }),
      "bad header_size 8");
  EXPECT_EQ(
      corrupted_error([](Image& im) { reinterpret_cast<Header*>(im.data())->section_count = 33; }),
      "too many sections (33)");
  EXPECT_EQ(corrupted_error([](Image& im) { reinterpret_cast<Header*>(im.data())->reserved0 = 1; }),
            "header reserved0 not zero");
  EXPECT_EQ(corrupted_error([](Image& im) {
              reinterpret_cast<Header*>(im.data())->sections[kMaxSections - 1].id = 3;
            }),
            "section entry 31: unused but not zero");
}

TEST(SnapshotCorruption, LengthMismatch) {
  std::string error;
  Image im = small_image();
  Image longer = im;
  longer.resize(im.size() + 8, 0);
  EXPECT_FALSE(validates(longer, &error));
  EXPECT_NE(error.find("does not match image length"), std::string::npos) << error;
  Image shorter(im.begin(), im.end() - 8);
  EXPECT_FALSE(validates(shorter, &error));
  EXPECT_NE(error.find("does not match image length"), std::string::npos) << error;
  Image tiny(im.begin(), im.begin() + 100);
  EXPECT_FALSE(validates(tiny, &error));
  EXPECT_NE(error.find("image too short"), std::string::npos) << error;
  // Truncated and the header re-sealed: now a section runs off the end.
  EXPECT_EQ(corrupted_error([](Image& im) { im.resize(im.size() - 8); }),
            "section pick_table: out of bounds");
}

TEST(SnapshotCorruption, MisalignedBufferRejected) {
  Image im = small_image();
  std::vector<uint64_t> storage(im.size() / 8 + 2);
  uint8_t* odd = reinterpret_cast<uint8_t*>(storage.data()) + 4;
  std::memcpy(odd, im.data(), im.size());
  SnapshotView v;
  std::string error;
  EXPECT_FALSE(v.validate(odd, im.size(), &error));
  EXPECT_EQ(error, "image not 8-byte aligned in memory");
}

TEST(SnapshotCorruption, SectionTable) {
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecNodes)->offset += 4; }),
            "section nodes: offset not 8-byte aligned");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecZones)->offset = 0; }),
            "section zones: overlaps the header");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecRRsets)->offset = 1ull << 62; }),
            "section rrsets: out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecRRsets)->size = ~0ull - 15; }),
            "section rrsets: out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecNodes)->elem_size = 16; }),
            "section nodes: elem_size 16, expected 24");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecNodes)->size -= 8; }),
            "section nodes: size not a multiple of elem_size");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecMembers)->id = kSecPools; }),
            "section pools: duplicate");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecMembers)->id = 99; }),
            "section entry 8: unknown id 99");
  EXPECT_EQ(corrupted_error([](Image& im) {
              // Every section is required: one whose entry now says "lpm4" leaves a gap.
              SectionEntry* lpm4 = section(im, kSecLpm4);
              *section(im, kSecMembers) = *lpm4;
              lpm4->id = 0;
            }),
            "section entry 10: unknown id 0");
  EXPECT_EQ(corrupted_error(
                [](Image& im) { section(im, kSecNodes)->offset = section(im, kSecZones)->offset; }),
            "sections zones and nodes overlap");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecNameIndex)->size = 12; }),
            "name index: bucket count 3 is not a power of two");
}

TEST(SnapshotCorruption, ZoneReferences) {
  EXPECT_EQ(corrupted_error([](Image& im) { table<Zone>(im, kSecZones)[0].apex_node = 1000; }),
            "zone 0: apex_node out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Zone>(im, kSecZones)[0].soa_rdata = 1000; }),
            "zone 0: soa_rdata out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Zone>(im, kSecZones)[0].ns_rrset = 1000; }),
            "zone 0: ns_rrset out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Zone>(im, kSecZones)[0].apex.off = 1u << 30; }),
            "zone 0: apex: out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Zone>(im, kSecZones)[0].apex.len -= 1; }),
            "zone 0: apex: malformed wire name");
  EXPECT_EQ(corrupted_error([](Image& im) {
              Zone& z = table<Zone>(im, kSecZones)[0];
              z.soa_rdata = table<Member>(im, kSecMembers)[0].rdata;  // an A rdata, not an SOA
            }),
            "zone 0: soa_rdata is not a well-formed SOA");
  EXPECT_EQ(corrupted_error([](Image& im) {
              Zone& z = table<Zone>(im, kSecZones)[0];
              Node* nodes = table<Node>(im, kSecNodes);
              // Point the NS rrset at an rrset of another node (ns.ex. has A and TXT).
              for (uint32_t n = 0; n < 3; ++n) {
                if (nodes[n].rrset_count == 2) z.ns_rrset = nodes[n].rrset_first;
              }
            }),
            "zone 0: ns_rrset is not the apex node's static NS rrset");
}

uint32_t node_index(const Image& image, std::string_view name) {
  SnapshotView v;
  std::string e;
  EXPECT_TRUE(v.validate(image.data(), image.size(), &e)) << e;
  WireName n = wn(name);
  return v.find_node(n.data(), n.size());
}

TEST(SnapshotCorruption, NodeReferences) {
  const Image base = small_image();
  // Nodes are in byte order of their wire names: w.ex. (label length 1) first, then ex., ns.ex.
  const uint32_t w = node_index(base, "w.ex.");
  const uint32_t apex = node_index(base, "ex.");
  const uint32_t ns = node_index(base, "ns.ex.");
  ASSERT_EQ(w, 0u);
  ASSERT_EQ(apex, 1u);
  ASSERT_EQ(ns, 2u);
  auto nodes = [](Image& im) { return table<Node>(im, kSecNodes); };
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[0].zone = 5; }),
            "node 0: zone out of bounds");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[1].rrset_first = ~0u; }),
            "node 1: rrset range out of bounds");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[1].rrset_count = 60000; }),
            "node 1: rrset range out of bounds");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[0].flags |= 0x80; }),
            "node 0: unknown flags");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[w].flags |= kNodeApex; }),
            "node 0: apex flag inconsistent with its zone");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[apex].flags &= ~kNodeApex; }),
            "node 1: apex flag inconsistent with its zone");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[ns].flags |= kNodeWildcard; }),
            "node 2: wildcard flag inconsistent with its name");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[ns].flags |= kNodeHasCname; }),
            "node 2: cname flag inconsistent with its rrsets");
  EXPECT_EQ(corrupted_error([&](Image& im) {
              RRset* rs = table<RRset>(im, kSecRRsets);
              std::swap(rs[nodes(im)[ns].rrset_first], rs[nodes(im)[ns].rrset_first + 1]);
            }),
            "node 2: rrsets not sorted by type");
  EXPECT_EQ(corrupted_error([&](Image& im) {
              table<RRset>(im, kSecRRsets)[nodes(im)[ns].rrset_first + 1].type = dns::kTypeA;
            }),
            "node 2: rrsets not sorted by type");
  EXPECT_EQ(corrupted_error([&](Image& im) {
              table<RRset>(im, kSecRRsets)[nodes(im)[ns].rrset_first].type = dns::kTypeCNAME;
              nodes(im)[ns].flags |= kNodeHasCname;
            }),
            "node 2: CNAME alongside other data");
  EXPECT_EQ(corrupted_error(
                [&](Image& im) { table<uint8_t>(im, kSecBlob)[nodes(im)[ns].name.off + 1] = 'N'; }),
            "node 2: name: not lowercase");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[ns].name.len -= 1; }),
            "node 2: name: malformed wire name");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[ns].name.len = 1u << 31; }),
            "node 2: name: out of bounds");
  EXPECT_EQ(corrupted_error([&](Image& im) {
              // ns.ex. renamed to the root: well-formed but outside zone ex.
              Node& n = nodes(im)[ns];
              n.name.off = n.name.off + n.name.len - 1;
              n.name.len = 1;
            }),
            "node 2: name outside its zone");
  EXPECT_EQ(corrupted_error([&](Image& im) { nodes(im)[apex].name = nodes(im)[w].name; }),
            "zone 0: apex node name differs from the apex");
}

TEST(SnapshotCorruption, RRsetReferences) {
  Image base = small_image();
  SnapshotView v;
  std::string e;
  ASSERT_TRUE(v.validate(base.data(), base.size(), &e));
  uint32_t gslb = kNone, stat = kNone;
  for (uint32_t r = 0; r < v.rrset_count(); ++r) {
    (v.rrsets()[r].kind == kRRsetGslb ? gslb : stat) = r;
  }
  ASSERT_NE(gslb, kNone);
  ASSERT_NE(stat, kNone);
  std::string g = "rrset " + std::to_string(gslb), s = "rrset " + std::to_string(stat);
  EXPECT_EQ(
      corrupted_error([&](Image& im) { table<RRset>(im, kSecRRsets)[stat].rdata_first = 900; }),
      s + ": rdata range out of bounds");
  EXPECT_EQ(
      corrupted_error([&](Image& im) { table<RRset>(im, kSecRRsets)[stat].rdata_count = ~0u; }),
      s + ": rdata range out of bounds");
  EXPECT_EQ(corrupted_error([&](Image& im) { table<RRset>(im, kSecRRsets)[stat].rdata_count = 0; }),
            s + ": static rrset without rdata");
  EXPECT_EQ(corrupted_error([&](Image& im) { table<RRset>(im, kSecRRsets)[stat].kind = 7; }),
            s + ": unknown kind 7");
  EXPECT_EQ(corrupted_error([&](Image& im) { table<RRset>(im, kSecRRsets)[gslb].rdata_first = 1; }),
            g + ": service index out of bounds");
  EXPECT_EQ(corrupted_error([&](Image& im) { table<RRset>(im, kSecRRsets)[gslb].rdata_count = 1; }),
            g + ": GSLB rrset with rdata_count");
  EXPECT_EQ(corrupted_error([&](Image& im) { table<RRset>(im, kSecRRsets)[gslb].type = 28; }),
            g + ": type differs from its service's rtype");
}

TEST(SnapshotCorruption, RdataReferences) {
  EXPECT_EQ(corrupted_error([](Image& im) { table<Rdata>(im, kSecRdatas)[0].wire.len = 1u << 20; }),
            "rdata 0: wire out of bounds");
  Image base = small_image();
  uint32_t soa_len = table<Rdata>(base, kSecRdatas)[0].wire.len;  // the SOA: zones come first
  EXPECT_EQ(corrupted_error([](Image& im) {
              Rdata& r = table<Rdata>(im, kSecRdatas)[0];
              r.name1_off = static_cast<uint16_t>(r.wire.len);
            }),
            "rdata 0: name offset " + std::to_string(soa_len) +
                " is not a well-formed name inside the wire");
  EXPECT_EQ(corrupted_error([](Image& im) {
              Rdata& r = table<Rdata>(im, kSecRdatas)[0];
              r.name2_off = static_cast<uint16_t>(r.wire.len - 1);  // MINIMUM low byte: label 60
            }),
            "rdata 0: name offset " + std::to_string(soa_len - 1) +
                " is not a well-formed name inside the wire");
  EXPECT_EQ(corrupted_error([](Image& im) {
              Rdata& r = table<Rdata>(im, kSecRdatas)[0];
              r.name1_off = kNoNameInRdata;
            }),
            "rdata 0: name2_off set without name1_off");
}

TEST(SnapshotCorruption, ServicePoolMemberReferences) {
  EXPECT_EQ(corrupted_error([](Image& im) { table<Service>(im, kSecServices)[0].node = 99; }),
            "service 0: node out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) {
              Service& s = table<Service>(im, kSecServices)[0];
              s.node = table<Zone>(im, kSecZones)[0].apex_node;
            }),
            "node 0: rrset 0: its service belongs to another node");
  EXPECT_EQ(corrupted_error([](Image& im) {
              table<Service>(im, kSecServices)[0].name = table<Zone>(im, kSecZones)[0].apex;
            }),
            "node 0: rrset 0: its service's name differs from the node's");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Service>(im, kSecServices)[0].rtype = 15; }),
            "service 0: unsupported rtype 15");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Service>(im, kSecServices)[0].pool_count = 2; }),
            "service 0: pool range out of bounds");
  EXPECT_EQ(
      corrupted_error([](Image& im) { table<Service>(im, kSecServices)[0].empty_action = 4; }),
      "service 0: empty_action 4 out of range");
  EXPECT_EQ(
      corrupted_error([](Image& im) { table<Service>(im, kSecServices)[0].fallback_rdata = 99; }),
      "service 0: fallback_rdata out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) {
              table<Service>(im, kSecServices)[0].fallback_rdata =
                  table<Zone>(im, kSecZones)[0].soa_rdata;
            }),
            "service 0: fallback_rdata does not fit rtype 1");
  EXPECT_EQ(corrupted_error([](Image& im) {
              table<Member>(im, kSecMembers)[1].rdata = table<Zone>(im, kSecZones)[0].soa_rdata;
            }),
            "service 0: pool 0: member 1: rdata does not fit rtype 1");

  EXPECT_EQ(corrupted_error([](Image& im) { table<Pool>(im, kSecPools)[0].usable_first = 4; }),
            "pool 0: usable range out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Pool>(im, kSecPools)[0].wheel_count = 100; }),
            "pool 0: wheel range out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Pool>(im, kSecPools)[0].member_first = 1; }),
            "pool 0: member range out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Pool>(im, kSecPools)[0].method = 8; }),
            "pool 0: method 8 out of range");
  EXPECT_EQ(corrupted_error([](Image& im) {
              Pool& p = table<Pool>(im, kSecPools)[0];
              p.method = static_cast<uint8_t>(PoolMethod::kReturnN);
              p.return_n = 0;
            }),
            "pool 0: return_n is zero");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Pool>(im, kSecPools)[0].wheel_count = 0; }),
            "pool 0: ratio wheel empty while members are usable");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Pool>(im, kSecPools)[0].name.len = 1u << 31; }),
            "pool 0: name out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<uint32_t>(im, kSecPoolSlots)[0] = 2; }),
            "pool 0: usable slot 0: member index outside the pool");
  EXPECT_EQ(corrupted_error([](Image& im) { table<uint32_t>(im, kSecPoolSlots)[3] = 7; }),
            "pool 0: wheel slot 1: member index outside the pool");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Member>(im, kSecMembers)[1].usable = 0; }),
            "pool 0: usable slot 1: member not usable");

  EXPECT_EQ(corrupted_error([](Image& im) { table<Member>(im, kSecMembers)[0].rdata = 99; }),
            "member 0: rdata out of bounds");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Member>(im, kSecMembers)[0].mode = 3; }),
            "member 0: mode 3 out of range");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Member>(im, kSecMembers)[0].health = 9; }),
            "member 0: health 9 out of range");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Member>(im, kSecMembers)[0].enabled = 2; }),
            "member 0: enabled 2 out of range");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Member>(im, kSecMembers)[0].weight = 0; }),
            "member 0: zero weight");
  EXPECT_EQ(corrupted_error([](Image& im) { table<Member>(im, kSecMembers)[0].name.off = ~0u; }),
            "member 0: name out of bounds");
}

// The engine copies rendered answer records unchecked: every byte of them, and every reference to
// them, is checked against the RRset or member it stands for.
TEST(SnapshotCorruption, AnswerRecords) {
  Image base = small_image();
  // ns.ex. A and TXT (static, rendered), ex. NS (a name inside: not rendered), two members.
  ASSERT_EQ(section(base, kSecRRsetAnswers)->size, 4 * sizeof(AnswerRef));
  ASSERT_EQ(section(base, kSecMemberAnswers)->size, 2 * sizeof(AnswerRef));
  uint32_t rendered = 0;
  uint32_t unrendered = kNone;
  const AnswerRef* refs = table<AnswerRef>(base, kSecRRsetAnswers);
  for (uint32_t i = 0; i < 4; ++i) {
    if (refs[i].len != 0) {
      rendered = i;
    } else if (unrendered == kNone) {
      unrendered = i;
    }
  }
  ASSERT_NE(unrendered, kNone);
  const std::string differ =
      "rrset " + std::to_string(rendered) + ": answer records differ from its rdata";
  // A flipped byte in the records: TTL, then RDATA.
  EXPECT_EQ(corrupted_error([&](Image& im) {
              table<uint8_t>(
                  im,
                  kSecAnswerRecords)[table<AnswerRef>(im, kSecRRsetAnswers)[rendered].off + 9] ^= 1;
            }),
            differ);
  EXPECT_EQ(corrupted_error([&](Image& im) {
              const AnswerRef& r = table<AnswerRef>(im, kSecRRsetAnswers)[rendered];
              table<uint8_t>(im, kSecAnswerRecords)[r.off + r.len - 1] ^= 0x40;
            }),
            differ);
  EXPECT_EQ(corrupted_error(
                [&](Image& im) { table<AnswerRef>(im, kSecRRsetAnswers)[rendered].count = 2; }),
            differ);
  EXPECT_EQ(corrupted_error(
                [&](Image& im) { table<AnswerRef>(im, kSecRRsetAnswers)[rendered].len += 1; }),
            differ);
  EXPECT_EQ(corrupted_error(
                [&](Image& im) { table<AnswerRef>(im, kSecRRsetAnswers)[rendered].off = ~0u; }),
            differ);
  // Records for an RRset whose RDATA holds a name: never rendered.
  EXPECT_EQ(corrupted_error([&](Image& im) {
              AnswerRef* r = table<AnswerRef>(im, kSecRRsetAnswers);
              r[unrendered] = r[rendered];
            }),
            "rrset " + std::to_string(unrendered) + ": answer records differ from its rdata");
  EXPECT_EQ(corrupted_error(
                [&](Image& im) { table<AnswerRef>(im, kSecRRsetAnswers)[unrendered].off = 4; }),
            "rrset " + std::to_string(unrendered) + ": answer records: empty but not zero");
  // Members: an A service's members must all be rendered, each as itself.
  EXPECT_EQ(
      corrupted_error([](Image& im) { table<AnswerRef>(im, kSecMemberAnswers)[1] = AnswerRef{}; }),
      "member 1: answer record differs from its rdata");
  EXPECT_EQ(corrupted_error([](Image& im) {
              AnswerRef* m = table<AnswerRef>(im, kSecMemberAnswers);
              std::swap(m[0], m[1]);
            }),
            "member 0: answer record differs from its rdata");
  EXPECT_EQ(corrupted_error([](Image& im) {
              const AnswerRef& r = table<AnswerRef>(im, kSecMemberAnswers)[0];
              table<uint8_t>(im, kSecAnswerRecords)[r.off + r.len - 1] ^= 1;
            }),
            "member 0: answer record differs from its rdata");
}

// The engine's fast path copies what the pick table says unchecked: each entry is derived again
// from the rules, pools and slots it stands for, and each service's run of entries is where it
// must be.
TEST(SnapshotCorruption, PickTable) {
  Image base = small_image();
  // w.ex. A: no class dependence, one entry, the ratio pool's wheel.
  ASSERT_EQ(section(base, kSecPickTable)->size, sizeof(PickEntry));
  const PickEntry e = table<PickEntry>(base, kSecPickTable)[0];
  const Pool& p = table<Pool>(base, kSecPools)[0];
  EXPECT_EQ(e.slot_first, p.wheel_first);
  EXPECT_EQ(e.slot_count, p.wheel_count);
  EXPECT_EQ(e.meta, 1 | kPickRotates) << "one member, rotating, scope 0";
  const std::string differ =
      "service 0: pick table entry for class 0 differs from its rules and pools";
  EXPECT_EQ(
      corrupted_error([](Image& im) { table<PickEntry>(im, kSecPickTable)[0].slot_first += 1; }),
      differ);
  EXPECT_EQ(
      corrupted_error([](Image& im) { table<PickEntry>(im, kSecPickTable)[0].slot_count = 1; }),
      differ);
  EXPECT_EQ(corrupted_error(
                [](Image& im) { table<PickEntry>(im, kSecPickTable)[0].meta &= ~kPickRotates; }),
            differ);
  EXPECT_EQ(corrupted_error([](Image& im) { table<PickEntry>(im, kSecPickTable)[0].meta += 8; }),
            differ);
  EXPECT_EQ(corrupted_error(
                [](Image& im) { table<PickEntry>(im, kSecPickTable)[0].meta |= kPickScopeClass; }),
            differ);
  // An entry saying "use the chain" where the chain is flat is refused too: the table is exact.
  EXPECT_EQ(
      corrupted_error([](Image& im) { table<PickEntry>(im, kSecPickTable)[0] = PickEntry{}; }),
      differ);
  EXPECT_EQ(corrupted_error([](Image& im) { table<Service>(im, kSecServices)[0].pick_table = 1; }),
            "service 0: pick table out of place or out of bounds");
  EXPECT_EQ(
      corrupted_error([](Image& im) { table<Service>(im, kSecServices)[0].pick_table = kNone; }),
      "pick table: 1 entries, the services own 0");
  EXPECT_EQ(corrupted_error([](Image& im) { section(im, kSecPickTable)->size = 0; }),
            "service 0: pick table out of place or out of bounds");
  // A health section changed without the table: a shorter wheel is still a valid wheel, but the
  // entry no longer says what the chain would pick.
  EXPECT_EQ(corrupted_error([](Image& im) { table<Pool>(im, kSecPools)[0].wheel_count -= 1; }),
            differ);
}

TEST(SnapshotCorruption, NameIndex) {
  Image base = small_image();
  uint32_t* base_index = table<uint32_t>(base, kSecNameIndex);
  ASSERT_EQ(section(base, kSecNameIndex)->size, 8 * sizeof(uint32_t));  // 3 nodes -> 8 buckets
  uint32_t empty_bucket = 0;
  while (base_index[empty_bucket] != 0) ++empty_bucket;
  EXPECT_EQ(
      corrupted_error([&](Image& im) { table<uint32_t>(im, kSecNameIndex)[empty_bucket] = 4; }),
      "name index: bucket " + std::to_string(empty_bucket) + ": node index out of bounds");
  std::string error = corrupted_error([](Image& im) {
    uint32_t* index = table<uint32_t>(im, kSecNameIndex);
    for (uint32_t b = 0; b < 8; ++b) {
      if (index[b] == 2) index[b] = 0;  // node 1 disappears from the table
    }
  });
  EXPECT_NE(error.find("name index: node "), std::string::npos) << error;
  EXPECT_NE(error.find(" not findable"), std::string::npos) << error;
  EXPECT_EQ(corrupted_error([](Image& im) {
              uint32_t* index = table<uint32_t>(im, kSecNameIndex);
              for (uint32_t b = 0; b < 8; ++b) index[b] = 1;
            }),
            "name index: no empty bucket");
  // A node listed twice under different buckets is fine for lookups of others, but the duplicate
  // entry shadowing another node is caught.
  error = corrupted_error([](Image& im) {
    uint32_t* index = table<uint32_t>(im, kSecNameIndex);
    for (uint32_t b = 0; b < 8; ++b) {
      if (index[b] == 3) index[b] = 1;
    }
  });
  EXPECT_NE(error.find(" not findable"), std::string::npos) << error;
}

// Random multi-byte damage with a recomputed checksum: validate may accept or reject, but must
// never crash or read out of bounds (ASan run), and an accepted image must answer lookups safely.
TEST(SnapshotCorruption, ResealedRandomDamageNeverCrashes) {
  Image base = small_image();
  uint64_t rng = 0x12345678;
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    Image im = base;
    int flips = 1 + static_cast<int>(next() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t pos = sizeof(Header) + next() % (im.size() - sizeof(Header));
      im[pos] = static_cast<uint8_t>(next());
    }
    reseal(im);
    SnapshotView v;
    std::string error;
    if (v.validate(im.data(), im.size(), &error)) {
      ++accepted;
      for (uint32_t n = 0; n < v.node_count(); ++n) {
        EXPECT_EQ(v.find_node(v.blob(v.nodes()[n].name), v.nodes()[n].name.len), n);
      }
    } else {
      EXPECT_FALSE(error.empty());
    }
  }
  // Some damage lands in bytes with no meaning (e.g. a member's explain name): not everything
  // fails.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 20000);
}

// ---------------------------------------------------------------------------------------------
// Loading and saving.

std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "gtm-snap-test-XXXXXX").string();
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

TEST(LoadedSnapshot, FromSealedMemfd) {
  Image im = small_image();
  int fd = memfd_create("gtm-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, im.data(), im.size()), static_cast<ssize_t>(im.size()));
  ASSERT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL), 0);
  std::string error;
  std::unique_ptr<LoadedSnapshot> loaded(LoadedSnapshot::from_fd(fd, &error));
  close(fd);  // the mapping outlives the descriptor
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_EQ(loaded->size(), im.size());
  EXPECT_EQ(std::memcmp(loaded->data(), im.data(), im.size()), 0);
  EXPECT_EQ(loaded->view().generation(), 7u);
  WireName w = wn("w.ex.");
  EXPECT_NE(loaded->view().find_node(w.data(), w.size()), kNone);
}

TEST(LoadedSnapshot, FromFdRejectsCorruptAndEmpty) {
  Image im = small_image();
  im[im.size() - 3] ^= 0x40;
  int fd = memfd_create("gtm-bad", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string error;
  EXPECT_EQ(LoadedSnapshot::from_fd(fd, &error), nullptr);  // empty
  EXPECT_EQ(error, "snapshot is empty");
  ASSERT_EQ(write(fd, im.data(), im.size()), static_cast<ssize_t>(im.size()));
  EXPECT_EQ(LoadedSnapshot::from_fd(fd, &error), nullptr);
  EXPECT_EQ(error, "checksum mismatch");
  close(fd);
  EXPECT_EQ(LoadedSnapshot::from_fd(-1, &error), nullptr);
  EXPECT_NE(error.find("fstat"), std::string::npos);
}

TEST(LoadedSnapshot, WriteThenLoadFile) {
  std::string dir = temp_dir();
  std::string path = dir + "/last-good.snap";
  Image im = small_image();
  std::string error;
  ASSERT_TRUE(write_snapshot_file(path, im.data(), im.size(), &error)) << error;
  std::unique_ptr<LoadedSnapshot> loaded(LoadedSnapshot::from_file(path, &error));
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_EQ(loaded->view().generation(), 7u);
  EXPECT_EQ(LoadedSnapshot::from_file(dir + "/missing.snap", &error), nullptr);
  EXPECT_NE(error.find("missing.snap"), std::string::npos) << error;
  std::filesystem::remove_all(dir);
}

TEST(LoadedSnapshot, WriteReplacesAtomicallyAndOldMappingSurvives) {
  std::string dir = temp_dir();
  std::string path = dir + "/snap";
  Image first = small_image();
  SnapshotModel m = demo_model();
  m.generation = 99;
  Image second;
  std::string error;
  ASSERT_TRUE(control::build_snapshot(m, &second, &error)) << error;

  ASSERT_TRUE(write_snapshot_file(path, first.data(), first.size(), &error)) << error;
  std::unique_ptr<LoadedSnapshot> old(LoadedSnapshot::from_file(path, &error));
  ASSERT_NE(old, nullptr) << error;
  ASSERT_TRUE(write_snapshot_file(path, second.data(), second.size(), &error)) << error;

  std::ifstream in(path, std::ios::binary);
  Image on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, second);
  // rename() replaced the directory entry; the old inode (and our mapping of it) is untouched.
  EXPECT_EQ(old->view().generation(), 7u);
  EXPECT_EQ(std::memcmp(old->data(), first.data(), first.size()), 0);
  std::unique_ptr<LoadedSnapshot> fresh(LoadedSnapshot::from_file(path, &error));
  ASSERT_NE(fresh, nullptr) << error;
  EXPECT_EQ(fresh->view().generation(), 99u);
  // No temp files left behind.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  std::filesystem::remove_all(dir);
}

TEST(LoadedSnapshot, WriteIntoMissingDirectoryFails) {
  Image im = small_image();
  std::string error;
  EXPECT_FALSE(write_snapshot_file("/nonexistent-gtm-dir/x.snap", im.data(), im.size(), &error));
  EXPECT_NE(error.find("/nonexistent-gtm-dir/x.snap"), std::string::npos) << error;
}

// fuzz_snapshot mutates these seeds: a seed the validator refuses at its first check (an older
// format version) only ever reaches that check.
TEST(FuzzSeeds, SnapshotCorpusIsTheCurrentFormat) {
  const std::filesystem::path dir =
      std::filesystem::path(GTM_SOURCE_DIR) / "tests/fuzz/corpus_snapshot";
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream file(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                     std::istreambuf_iterator<char>());
    std::vector<uint64_t> storage(bytes.size() / 8 + 1);
    std::memcpy(storage.data(), bytes.data(), bytes.size());
    SnapshotView view;
    std::string error;
    EXPECT_TRUE(
        view.validate(reinterpret_cast<const uint8_t*>(storage.data()), bytes.size(), &error))
        << entry.path() << ": " << error << " (regenerate: build/gtmctl compile examples/NAME.yaml "
        << entry.path() << ")";
    ++seeds;
  }
  EXPECT_GE(seeds, 2u);
}

}  // namespace
}  // namespace gtm::snap
