// The snapshot builder: model checks (each with a clear error), nested zones, empty non-terminals,
// CNAME exclusivity and merging of duplicate records.
#include "control/compiler/snapshot_builder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/dns/wire.h"
#include "dataplane/snapshot/snapshot.h"
#include "tests/support/wire_name.h"

namespace gtm::control {
namespace {

using snap::kNone;

using test::wn;

std::string text_of(const uint8_t* p, size_t len) {
  std::string out;
  size_t pos = 0;
  while (pos < len && p[pos] != 0) {
    out.append(reinterpret_cast<const char*>(p + pos + 1), p[pos]);
    out += '.';
    pos += 1 + p[pos];
  }
  return out.empty() ? "." : out;
}

WireRdata v4(uint8_t d) {
  return {192, 0, 2, d};
}
WireRdata v6(uint8_t d) {
  WireRdata r(16, 0);
  r[0] = 0x20;
  r[1] = 0x01;
  r[15] = d;
  return r;
}

WireRdata soa(std::string_view apex, uint32_t minimum = 60) {
  WireRdata r = wn("ns1." + std::string(apex));
  WireName rn = wn("hostmaster." + std::string(apex));
  r.insert(r.end(), rn.begin(), rn.end());
  for (uint32_t v : {1u, 3600u, 600u, 86400u, minimum}) {
    uint8_t b[4];
    dns::store32(b, v);
    r.insert(r.end(), b, b + 4);
  }
  return r;
}

StaticRecord rec(std::string_view owner, uint16_t type, WireRdata rdata, uint32_t ttl = 300) {
  StaticRecord r;
  r.owner = wn(owner);
  r.type = type;
  r.ttl = ttl;
  r.rdata = std::move(rdata);
  return r;
}

ZoneModel zone(std::string_view apex, std::vector<StaticRecord> records = {}) {
  ZoneModel z;
  z.apex = wn(apex);
  z.soa_rdata = soa(apex);
  z.soa_ttl = 3600;
  z.records = std::move(records);
  return z;
}

MemberModel member(std::string name, WireRdata rdata, uint32_t weight = 1) {
  MemberModel m;
  m.name = std::move(name);
  m.rdata = std::move(rdata);
  m.weight = weight;
  return m;
}

ServiceModel service(std::string_view name, uint16_t rtype, std::vector<MemberModel> members) {
  ServiceModel s;
  s.name = wn(name);
  s.rtype = rtype;
  s.ttl = 30;
  PoolModel p;
  p.name = "pool";
  p.method = snap::PoolMethod::kRoundRobin;
  p.members = std::move(members);
  s.pools = {p};
  return s;
}

// Builds and validates; fails the test if either step fails.
struct Built {
  std::vector<uint8_t> image;
  snap::SnapshotView view;

  uint32_t find(std::string_view name) const {
    WireName n = wn(name);
    return view.find_node(n.data(), n.size());
  }
  std::set<std::string> names() const {
    std::set<std::string> out;
    for (uint32_t i = 0; i < view.node_count(); ++i) {
      out.insert(text_of(view.blob(view.nodes()[i].name), view.nodes()[i].name.len));
    }
    return out;
  }
};

void build_ok(const SnapshotModel& m, Built* b) {
  std::string error;
  ASSERT_TRUE(build_snapshot(m, &b->image, &error)) << error;
  ASSERT_TRUE(b->view.validate(b->image.data(), b->image.size(), &error)) << error;
}

std::string build_error(const SnapshotModel& m) {
  std::vector<uint8_t> image;
  std::string error;
  EXPECT_FALSE(build_snapshot(m, &image, &error));
  EXPECT_EQ(error.find('\n'), std::string::npos);
  return error;
}

SnapshotModel with_zones(std::vector<ZoneModel> zones, std::vector<ServiceModel> services = {}) {
  SnapshotModel m;
  m.zones = std::move(zones);
  m.services = std::move(services);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(SnapshotBuilderErrors, NamesMustBeCanonical) {
  ZoneModel upper = zone("example.");
  upper.apex = wn("Example.");
  EXPECT_EQ(build_error(with_zones({upper})), "zone #0 apex: name Example. is not lowercase");

  ZoneModel bad = zone("example.");
  bad.apex = {7, 'e', 'x', 'a'};  // label runs past the end
  EXPECT_EQ(build_error(with_zones({bad})), "zone #0 apex: malformed wire name");

  ZoneModel long_label = zone("example.");
  long_label.apex = WireName(1, 64);
  long_label.apex.resize(66, 'a');
  long_label.apex.back() = 0;
  EXPECT_EQ(build_error(with_zones({long_label})), "zone #0 apex: malformed wire name");

  ZoneModel too_long = zone("example.");
  too_long.apex.clear();
  for (int i = 0; i < 5; ++i) {
    too_long.apex.push_back(60);
    too_long.apex.insert(too_long.apex.end(), 60, 'a');
  }
  too_long.apex.push_back(0);
  EXPECT_EQ(build_error(with_zones({too_long})), "zone #0 apex: bad name length");

  EXPECT_EQ(build_error(with_zones({zone("example.", {rec("WWW.example.", dns::kTypeA, v4(1))})})),
            "zone example.: record owner: name WWW.example. is not lowercase");
  EXPECT_EQ(build_error(with_zones({zone("example.")},
                                   {service("App.example.", dns::kTypeA, {member("a", v4(1))})})),
            "service #0: name App.example. is not lowercase");
}

TEST(SnapshotBuilderErrors, ZoneLevelErrors) {
  EXPECT_EQ(build_error(with_zones({zone("example."), zone("example.")})),
            "zone example.: duplicate zone");
  ZoneModel bad_soa = zone("example.");
  bad_soa.soa_rdata.pop_back();
  EXPECT_EQ(build_error(with_zones({bad_soa})), "zone example.: malformed SOA rdata");
  ZoneModel no_rname = zone("example.");
  no_rname.soa_rdata = wn("ns1.example.");
  EXPECT_EQ(build_error(with_zones({no_rname})), "zone example.: malformed SOA rdata");
}

TEST(SnapshotBuilderErrors, RecordPlacementAndTypes) {
  EXPECT_EQ(build_error(with_zones({zone("example.", {rec("www.other.", dns::kTypeA, v4(1))})})),
            "zone example.: record www.other. A: outside the zone");
  // "ample." is a string suffix of "example." but not a label-aligned one.
  EXPECT_EQ(build_error(with_zones({zone("ample.", {rec("example.", dns::kTypeA, v4(1))})})),
            "zone ample.: record example. A: outside the zone");
  EXPECT_EQ(build_error(with_zones({zone("example.", {rec("a.sub.example.", dns::kTypeA, v4(1))}),
                                    zone("sub.example.")})),
            "zone example.: record a.sub.example. A: belongs to the child zone sub.example.");
  EXPECT_EQ(build_error(with_zones(
                {zone("example.", {rec("sub.example.", dns::kTypeNS, wn("ns.sub.example."))}),
                 zone("sub.example.")})),
            "zone example.: record sub.example. NS: belongs to the child zone sub.example.");
  EXPECT_EQ(build_error(
                with_zones({zone("example.", {rec("example.", dns::kTypeSOA, soa("example."))})})),
            "zone example.: record example. SOA: SOA is set by the zone's soa, not a record");
  EXPECT_EQ(build_error(with_zones(
                {zone("example.", {rec("www.example.", dns::kTypeNS, wn("ns1.example."))})})),
            "zone example.: record www.example. NS: NS records are only allowed at the zone apex");
  EXPECT_EQ(build_error(with_zones({zone("example.", {rec("www.example.", 0, v4(1))})})),
            "zone example.: record www.example. TYPE0: not a data type");
  EXPECT_EQ(
      build_error(with_zones({zone("example.", {rec("www.example.", dns::kTypeANY, v4(1))})})),
      "zone example.: record www.example. ANY: not a data type");
  EXPECT_EQ(
      build_error(with_zones({zone("example.", {rec("www.example.", dns::kTypeA, {1, 2, 3})})})),
      "zone example.: record www.example. A: malformed rdata");
  EXPECT_EQ(
      build_error(with_zones({zone("example.", {rec("www.example.", dns::kTypeAAAA, v4(1))})})),
      "zone example.: record www.example. AAAA: malformed rdata");
  EXPECT_EQ(
      build_error(with_zones({zone("example.", {rec("www.example.", dns::kTypeCNAME, {3, 'a'})})})),
      "zone example.: record www.example. CNAME: malformed rdata");
  EXPECT_EQ(build_error(with_zones(
                {zone("example.", {rec("example.", dns::kTypeMX, wn("mail.example."))})})),
            "zone example.: record example. MX: malformed rdata");
  WireRdata big(70000, 'x');
  EXPECT_EQ(build_error(with_zones({zone("example.", {rec("example.", dns::kTypeTXT, big)})})),
            "zone example.: record example. TXT: rdata longer than 65535 octets");
}

TEST(SnapshotBuilderErrors, CnameExclusivity) {
  EXPECT_EQ(build_error(with_zones(
                {zone("example.", {rec("www.example.", dns::kTypeCNAME, wn("x.example.")),
                                   rec("www.example.", dns::kTypeTXT, {1, 'x'})})})),
            "name www.example.: a CNAME record cannot coexist with other records");
  EXPECT_EQ(build_error(with_zones(
                {zone("example.", {rec("example.", dns::kTypeCNAME, wn("x.example."))})})),
            "name example.: CNAME at a zone apex");
  // CNAME service with any static data.
  EXPECT_EQ(build_error(with_zones(
                {zone("example.", {rec("app.example.", dns::kTypeTXT, {1, 'x'})})},
                {service("app.example.", dns::kTypeCNAME, {member("t", wn("t.example."))})})),
            "service app.example. CNAME: a CNAME service cannot coexist with static records at the "
            "same name");
  // Static CNAME with a service.
  EXPECT_EQ(build_error(with_zones(
                {zone("example.", {rec("app.example.", dns::kTypeCNAME, wn("x.example."))})},
                {service("app.example.", dns::kTypeA, {member("a", v4(1))})})),
            "service app.example. A: the name has a static CNAME record");
  // CNAME service next to an A service.
  EXPECT_EQ(build_error(with_zones(
                {zone("example.")},
                {service("app.example.", dns::kTypeA, {member("a", v4(1))}),
                 service("app.example.", dns::kTypeCNAME, {member("t", wn("t.example."))})})),
            "service app.example. A: the name also has a CNAME service");
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {service("example.", dns::kTypeCNAME,
                                                                {member("t", wn("t.example."))})})),
            "name example.: CNAME at a zone apex");
}

TEST(SnapshotBuilderErrors, ServiceErrors) {
  EXPECT_EQ(build_error(with_zones({zone("example.")},
                                   {service("www.other.", dns::kTypeA, {member("a", v4(1))})})),
            "service www.other. A: not inside any zone");
  EXPECT_EQ(build_error(with_zones({zone("example.", {rec("www.example.", dns::kTypeA, v4(1))})},
                                   {service("www.example.", dns::kTypeA, {member("a", v4(2))})})),
            "service www.example. A: clashes with a static A record at the same name");
  EXPECT_EQ(build_error(with_zones({zone("example.")},
                                   {service("www.example.", dns::kTypeMX, {member("a", v4(1))})})),
            "service www.example. MX: a service answers only A, AAAA or CNAME");
  EXPECT_EQ(build_error(with_zones({zone("example.")},
                                   {service("www.example.", dns::kTypeA, {member("a", v4(1))}),
                                    service("www.example.", dns::kTypeA, {member("b", v4(2))})})),
            "service www.example. A: duplicate service");
  EXPECT_EQ(build_error(with_zones({zone("example.")},
                                   {service("www.example.", dns::kTypeA, {member("v6", v6(1))})})),
            "service www.example. A: pool pool: member v6: rdata does not fit a A answer");
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {service("www.example.", dns::kTypeCNAME,
                                                                {member("x", v4(1))})})),
            "service www.example. CNAME: pool pool: member x: rdata does not fit a CNAME answer");
  ServiceModel zero = service("www.example.", dns::kTypeA, {member("a", v4(1), 0)});
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {zero})),
            "service www.example. A: pool pool: member a: weight must be >= 1");
  ServiceModel return_n = service("www.example.", dns::kTypeA, {member("a", v4(1))});
  return_n.pools[0].method = snap::PoolMethod::kReturnN;
  return_n.pools[0].return_n = 0;
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {return_n})),
            "service www.example. A: pool pool: return-n needs a count >= 1");
  ServiceModel bad_method = service("www.example.", dns::kTypeA, {member("a", v4(1))});
  bad_method.pools[0].method = static_cast<snap::PoolMethod>(9);
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {bad_method})),
            "service www.example. A: pool pool: unknown method");
  ServiceModel bad_mode = service("www.example.", dns::kTypeA, {member("a", v4(1))});
  bad_mode.pools[0].members[0].mode = static_cast<snap::MemberMode>(3);
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {bad_mode})),
            "service www.example. A: pool pool: member a: unknown mode");
  ServiceModel bad_fallback = service("www.example.", dns::kTypeAAAA, {member("a", v6(1))});
  bad_fallback.fallback = v4(9);
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {bad_fallback})),
            "service www.example. AAAA: fallback: rdata does not fit a AAAA answer");
  ServiceModel huge = service("www.example.", dns::kTypeA, {});
  huge.pools[0].members.assign(5000, member("m", v4(1)));
  EXPECT_EQ(build_error(with_zones({zone("example.")}, {huge})),
            "service www.example. A: pool pool: more than 4096 members");
}

// ---------------------------------------------------------------------------------------------
// Structure.

TEST(SnapshotBuilder, NestedZonesUseTheDeepestZone) {
  Built b;
  build_ok(
      with_zones({zone("example.", {rec("www.example.", dns::kTypeA, v4(1))}),
                  zone("sub.example.", {rec("a.b.sub.example.", dns::kTypeA, v4(2)),
                                        rec("sub.example.", dns::kTypeNS, wn("ns.sub.example."))}),
                  zone("deeper.sub.example.")},
                 {service("app.sub.example.", dns::kTypeA, {member("a", v4(3))})}),
      &b);
  EXPECT_EQ(b.names(),
            (std::set<std::string>{"example.", "www.example.", "sub.example.", "a.b.sub.example.",
                                   "b.sub.example.", "app.sub.example.", "deeper.sub.example."}));
  auto zone_of = [&](std::string_view n) { return b.view.nodes()[b.find(n)].zone; };
  EXPECT_EQ(zone_of("example."), 0u);
  EXPECT_EQ(zone_of("www.example."), 0u);
  EXPECT_EQ(zone_of("sub.example."), 1u);
  EXPECT_EQ(zone_of("b.sub.example."), 1u);
  EXPECT_EQ(zone_of("a.b.sub.example."), 1u);
  EXPECT_EQ(zone_of("app.sub.example."), 1u);
  EXPECT_EQ(zone_of("deeper.sub.example."), 2u);
  EXPECT_EQ(b.view.zones()[0].ns_rrset, kNone);
  ASSERT_NE(b.view.zones()[1].ns_rrset, kNone);
  EXPECT_EQ(b.view.rrsets()[b.view.zones()[1].ns_rrset].type, dns::kTypeNS);
  for (const char* apex : {"example.", "sub.example.", "deeper.sub.example."}) {
    EXPECT_EQ(b.view.nodes()[b.find(apex)].flags & snap::kNodeApex, snap::kNodeApex) << apex;
  }
}

TEST(SnapshotBuilder, EmptyNonTerminalsUpToTheApexOnly) {
  Built b;
  build_ok(with_zones({zone("example.", {rec("a.b.c.d.example.", dns::kTypeTXT, {1, 'x'}),
                                         rec("*.wild.example.", dns::kTypeA, v4(1)),
                                         rec("x.d.example.", dns::kTypeA, v4(2))})},
                      {service("s.t.example.", dns::kTypeAAAA, {member("a", v6(1))})}),
           &b);
  EXPECT_EQ(b.names(),
            (std::set<std::string>{"example.", "a.b.c.d.example.", "b.c.d.example.", "c.d.example.",
                                   "d.example.", "x.d.example.", "*.wild.example.", "wild.example.",
                                   "s.t.example.", "t.example."}));
  for (const char* ent :
       {"b.c.d.example.", "c.d.example.", "d.example.", "wild.example.", "t.example."}) {
    const snap::Node& n = b.view.nodes()[b.find(ent)];
    EXPECT_EQ(n.rrset_count, 0) << ent;
    EXPECT_EQ(n.flags, 0) << ent;
  }
  EXPECT_EQ(b.view.nodes()[b.find("*.wild.example.")].flags, snap::kNodeWildcard);
  EXPECT_EQ(b.find("y.d.example."), kNone);
  EXPECT_EQ(b.find("a.b.c.example."), kNone);
  // Nothing above the apex.
  EXPECT_EQ(b.find("."), kNone);
}

TEST(SnapshotBuilder, DuplicatesMergedWithMinimumTtl) {
  Built b;
  build_ok(with_zones({zone("example.", {rec("www.example.", dns::kTypeA, v4(1), 300),
                                         rec("www.example.", dns::kTypeA, v4(2), 120),
                                         rec("www.example.", dns::kTypeA, v4(1), 600),
                                         rec("www.example.", dns::kTypeTXT, {1, 'a'}, 50),
                                         rec("www.example.", dns::kTypeAAAA, v6(1), 10)})}),
           &b);
  const snap::Node& www = b.view.nodes()[b.find("www.example.")];
  ASSERT_EQ(www.rrset_count, 3);
  const snap::RRset* rs = b.view.rrsets() + www.rrset_first;
  EXPECT_EQ(rs[0].type, dns::kTypeA);
  EXPECT_EQ(rs[1].type, dns::kTypeTXT);
  EXPECT_EQ(rs[2].type, dns::kTypeAAAA);
  EXPECT_EQ(rs[0].ttl, 120u);
  ASSERT_EQ(rs[0].rdata_count, 2u);
  const snap::Rdata& first = b.view.rdatas()[rs[0].rdata_first];
  EXPECT_EQ(std::vector<uint8_t>(b.view.blob(first.wire), b.view.blob(first.wire) + 4), v4(1));
  EXPECT_EQ(rs[1].ttl, 50u);
  EXPECT_EQ(rs[2].ttl, 10u);
}

TEST(SnapshotBuilder, NamesDedupedInBlob) {
  Built b;
  build_ok(
      with_zones({zone("example.", {rec("example.", dns::kTypeNS, wn("www.example.")),
                                    rec("www.example.", dns::kTypeA, v4(1))})},
                 {service("app.example.", dns::kTypeCNAME, {member("w", wn("www.example."))})}),
      &b);
  // The node name, the NS target and the CNAME member target share one copy of the bytes.
  const snap::Node& www = b.view.nodes()[b.find("www.example.")];
  const snap::Rdata& ns = b.view.rdatas()[b.view.rrsets()[b.view.zones()[0].ns_rrset].rdata_first];
  const snap::Pool& pool = b.view.pools()[b.view.services()[0].pool_first];
  const snap::Rdata& target = b.view.rdatas()[b.view.members()[pool.member_first].rdata];
  EXPECT_EQ(ns.wire.off, www.name.off);
  EXPECT_EQ(target.wire.off, www.name.off);
}

TEST(SnapshotBuilder, RdataNameOffsetsPerType) {
  WireRdata srv = {0, 10, 0, 60, 0x13, 0xc4};
  WireName sip = wn("sip.example.");
  srv.insert(srv.end(), sip.begin(), sip.end());
  WireRdata mx = {0, 10};
  mx.insert(mx.end(), sip.begin(), sip.end());
  Built b;
  build_ok(with_zones({zone(
               "example.",
               {rec("example.", dns::kTypeMX, mx), rec("_sip._udp.example.", dns::kTypeSRV, srv),
                rec("1.example.", dns::kTypePTR, wn("www.example.")),
                rec("example.", dns::kTypeCAA, {0, 5, 'i', 's', 's', 'u', 'e'})})}),
           &b);
  auto first_rdata = [&](std::string_view name, uint16_t type) -> const snap::Rdata& {
    const snap::Node& n = b.view.nodes()[b.find(name)];
    for (uint32_t i = 0; i < n.rrset_count; ++i) {
      const snap::RRset& rs = b.view.rrsets()[n.rrset_first + i];
      if (rs.type == type) return b.view.rdatas()[rs.rdata_first];
    }
    ADD_FAILURE() << "no rrset";
    return b.view.rdatas()[0];
  };
  EXPECT_EQ(first_rdata("example.", dns::kTypeMX).name1_off, 2);
  EXPECT_EQ(first_rdata("_sip._udp.example.", dns::kTypeSRV).name1_off, snap::kNoNameInRdata);
  EXPECT_EQ(first_rdata("1.example.", dns::kTypePTR).name1_off, 0);
  EXPECT_EQ(first_rdata("example.", dns::kTypeCAA).name1_off, snap::kNoNameInRdata);
  EXPECT_EQ(first_rdata("example.", dns::kTypeCAA).name2_off, snap::kNoNameInRdata);
}

TEST(SnapshotBuilder, NegativeTtlIsMinOfSoaTtlAndMinimum) {
  ZoneModel low_min = zone("a.");
  low_min.soa_rdata = soa("a.", 30);
  low_min.soa_ttl = 3600;
  ZoneModel low_ttl = zone("b.");
  low_ttl.soa_rdata = soa("b.", 86400);
  low_ttl.soa_ttl = 120;
  Built b;
  build_ok(with_zones({low_min, low_ttl}), &b);
  EXPECT_EQ(b.view.zones()[0].negative_ttl, 30u);
  EXPECT_EQ(b.view.zones()[1].negative_ttl, 120u);
  EXPECT_EQ(b.view.zones()[1].soa_ttl, 120u);
}

TEST(SnapshotBuilder, NameIndexSizedToTwiceTheNodes) {
  ZoneModel z = zone("example.");
  for (int i = 0; i < 20; ++i) {
    z.records.push_back(rec("h" + std::to_string(i) + ".example.", dns::kTypeA, v4(i)));
  }
  Built b;
  build_ok(with_zones({z}), &b);
  ASSERT_EQ(b.view.node_count(), 21u);
  // Locate the name index section in the header: 64 buckets >= 2 * 21.
  const snap::Header& h = b.view.header();
  uint64_t index_size = 0;
  for (uint32_t i = 0; i < h.section_count; ++i) {
    if (h.sections[i].id == snap::kSecNameIndex) index_size = h.sections[i].size;
  }
  EXPECT_EQ(index_size, 64 * sizeof(uint32_t));
}

TEST(SnapshotBuilder, HeaderFieldsAndDeterminism) {
  SnapshotModel m = with_zones({zone("example.", {rec("www.example.", dns::kTypeA, v4(1))})},
                               {service("app.example.", dns::kTypeA, {member("a", v4(2), 3)})});
  m.generation = 1234;
  Built a, b;
  build_ok(m, &a);
  build_ok(m, &b);
  EXPECT_EQ(a.view.generation(), 1234u);
  EXPECT_EQ(a.view.header().total_size, a.image.size());
  EXPECT_EQ(a.image.size() % 8, 0u);
  EXPECT_GT(a.view.header().created_unix_ms, 1700000000000ull);  // after 2023
  // Same model, same bytes apart from the creation time (outside the checksum).
  ASSERT_EQ(a.image.size(), b.image.size());
  size_t created = offsetof(snap::Header, created_unix_ms);
  std::memset(a.image.data() + created, 0, 8);
  std::memset(b.image.data() + created, 0, 8);
  EXPECT_EQ(a.image, b.image);
}

TEST(SnapshotBuilder, MemberUsableRule) {
  MemberModel m = member("a", v4(1));
  m.health = snap::MemberHealth::kUp;
  EXPECT_TRUE(member_usable(m, false));
  m.enabled = false;
  EXPECT_FALSE(member_usable(m, true));
  m.enabled = true;
  m.health = snap::MemberHealth::kUnknown;
  EXPECT_TRUE(member_usable(m, true));
  EXPECT_FALSE(member_usable(m, false));
  m.health = snap::MemberHealth::kDown;
  EXPECT_FALSE(member_usable(m, true));
  m.mode = snap::MemberMode::kAlwaysUp;
  EXPECT_TRUE(member_usable(m, false));
  m.mode = snap::MemberMode::kAlwaysDown;
  m.health = snap::MemberHealth::kUp;
  EXPECT_FALSE(member_usable(m, true));
}

TEST(SnapshotBuilder, ServicesWithEmptyPoolsAndFallback) {
  ServiceModel s =
      service("www.example.", dns::kTypeAAAA, {});  // e.g. an IPv4-only pool's AAAA view
  s.fallback = v6(9);
  s.empty_action = snap::EmptyAction::kServfail;
  Built b;
  build_ok(with_zones({zone("example.")}, {s}), &b);
  const snap::Service& svc = b.view.services()[0];
  EXPECT_EQ(svc.empty_action, static_cast<uint8_t>(snap::EmptyAction::kServfail));
  EXPECT_EQ(b.view.pools()[svc.pool_first].member_count, 0u);
  EXPECT_EQ(b.view.pools()[svc.pool_first].usable_count, 0u);
  ASSERT_NE(svc.fallback_rdata, kNone);
  EXPECT_EQ(b.view.rdatas()[svc.fallback_rdata].wire.len, 16u);
}

}  // namespace
}  // namespace gtm::control
