#include "control/config/config_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "dataplane/dns/wire.h"

namespace gtm::control {
namespace {

using Bytes = std::vector<uint8_t>;

// Wire form built by hand from dotted text (no escapes), independent of the loader's parser.
Bytes W(const std::string& dotted) {
  Bytes out;
  std::string label;
  for (char c : dotted) {
    if (c == '.') {
      out.push_back(static_cast<uint8_t>(label.size()));
      out.insert(out.end(), label.begin(), label.end());
      label.clear();
    } else {
      label.push_back(c);
    }
  }
  out.push_back(0);
  return out;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes Be16(uint16_t v) {
  return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}
Bytes Be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}
Bytes Str(const std::string& s) {
  return Bytes(s.begin(), s.end());
}
Bytes CharString(const std::string& s) {
  return Cat({Bytes{static_cast<uint8_t>(s.size())}, Str(s)});
}

const std::string kDemoPath = std::string(GTM_SOURCE_DIR) + "/examples/demo.yaml";

// ----------------------------------------------------------------------------------------------
// The demo configuration, in detail.

class DemoConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigError err;
    ASSERT_TRUE(load_config_file(kDemoPath, &cfg_, &err)) << err.to_string();
    ASSERT_EQ(cfg_.model.zones.size(), 1u);
  }
  const ZoneModel& zone() const { return cfg_.model.zones[0]; }
  LoadedConfig cfg_;
};

TEST_F(DemoConfigTest, TopLevel) {
  EXPECT_EQ(cfg_.path, kDemoPath);
  EXPECT_EQ(cfg_.model.generation, 0u);
  EXPECT_TRUE(cfg_.model.unknown_health_is_up);
}

TEST_F(DemoConfigTest, ZoneApexAndSoa) {
  EXPECT_EQ(zone().apex, W("gtm.example."));
  EXPECT_EQ(zone().soa_rdata,
            Cat({W("ns1.gtm.example."), W("hostmaster.gtm.example."), Be32(2026112201), Be32(3600),
                 Be32(600), Be32(1209600), Be32(60)}));
  EXPECT_EQ(zone().soa_ttl, 3600u);
}

TEST_F(DemoConfigTest, StaticRecords) {
  struct Expected {
    std::string owner;
    uint16_t type;
    uint32_t ttl;
    Bytes rdata;
  };
  const std::vector<Expected> expected = {
      {"gtm.example.", dns::kTypeNS, 3600, W("ns1.gtm.example.")},
      {"gtm.example.", dns::kTypeNS, 3600, W("ns2.gtm.example.")},
      {"ns1.gtm.example.", dns::kTypeA, 3600, {127, 0, 0, 1}},
      {"ns2.gtm.example.", dns::kTypeAAAA, 3600, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
      {"gtm.example.", dns::kTypeMX, 300, Cat({Be16(10), W("mail.gtm.example.")})},
      {"mail.gtm.example.", dns::kTypeA, 300, {192, 0, 2, 25}},
      {"gtm.example.", dns::kTypeTXT, 300, CharString("v=spf1 -all")},
      {"_sip._udp.gtm.example.", dns::kTypeSRV, 300,
       Cat({Be16(10), Be16(60), Be16(5060), W("sip.gtm.example.")})},
      {"sip.gtm.example.", dns::kTypeA, 300, {192, 0, 2, 26}},
      {"gtm.example.", dns::kTypeCAA, 300,
       Cat({Bytes{0}, CharString("issue"), Str("letsencrypt.org")})},
      {"*.apps.gtm.example.", dns::kTypeA, 300, {192, 0, 2, 99}},
      {"docs.gtm.example.", dns::kTypeCNAME, 300, W("www.gtm.example.")},
      {"10.2.0.192.in-addr.gtm.example.", dns::kTypePTR, 300, W("www.gtm.example.")},
  };
  ASSERT_EQ(zone().records.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("record " + std::to_string(i) + " " + expected[i].owner);
    EXPECT_EQ(zone().records[i].owner, W(expected[i].owner));
    EXPECT_EQ(zone().records[i].type, expected[i].type);
    EXPECT_EQ(zone().records[i].ttl, expected[i].ttl);
    EXPECT_EQ(zone().records[i].rdata, expected[i].rdata);
  }
}

TEST_F(DemoConfigTest, AddressServiceSplitsIntoAAndAaaa) {
  ASSERT_EQ(cfg_.model.services.size(), 3u);
  const ServiceModel& a = cfg_.model.services[0];
  const ServiceModel& aaaa = cfg_.model.services[1];
  for (const ServiceModel* s : {&a, &aaaa}) {
    EXPECT_EQ(s->name, W("www.gtm.example."));
    EXPECT_EQ(s->ttl, 30u);
    EXPECT_EQ(s->empty_action, snap::EmptyAction::kNodata);
    ASSERT_EQ(s->pools.size(), 2u);
    EXPECT_EQ(s->pools[0].name, "site-a");
    EXPECT_EQ(s->pools[0].method, snap::PoolMethod::kRatio);
    EXPECT_EQ(s->pools[1].name, "site-b");
    EXPECT_EQ(s->pools[1].method, snap::PoolMethod::kRoundRobin);
  }
  EXPECT_EQ(a.rtype, dns::kTypeA);
  EXPECT_EQ(aaaa.rtype, dns::kTypeAAAA);

  ASSERT_EQ(a.pools[0].members.size(), 2u);
  EXPECT_EQ(a.pools[0].members[0].name, "a1");
  EXPECT_EQ(a.pools[0].members[0].rdata, (Bytes{192, 0, 2, 10}));
  EXPECT_EQ(a.pools[0].members[0].weight, 3u);
  EXPECT_EQ(a.pools[0].members[1].name, "a2");
  EXPECT_EQ(a.pools[0].members[1].rdata, (Bytes{192, 0, 2, 11}));
  EXPECT_EQ(a.pools[0].members[1].weight, 1u);
  ASSERT_EQ(a.pools[1].members.size(), 2u);
  EXPECT_EQ(a.pools[1].members[0].name, "b1");
  EXPECT_EQ(a.pools[1].members[1].rdata, (Bytes{198, 51, 100, 11}));
  for (const PoolModel& p : a.pools) {
    for (const MemberModel& m : p.members) {
      EXPECT_EQ(m.mode, snap::MemberMode::kAuto);
      EXPECT_EQ(m.health, snap::MemberHealth::kUnknown);
      EXPECT_TRUE(m.enabled);
    }
  }

  ASSERT_EQ(aaaa.pools[0].members.size(), 1u);
  EXPECT_EQ(aaaa.pools[0].members[0].name, "a1-v6");
  EXPECT_EQ(aaaa.pools[0].members[0].rdata,
            (Bytes{0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}));
  EXPECT_EQ(aaaa.pools[0].members[0].weight, 1u);
  ASSERT_EQ(aaaa.pools[1].members.size(), 1u);
  EXPECT_EQ(aaaa.pools[1].members[0].name, "b1-v6");

  ASSERT_TRUE(a.fallback.has_value());
  EXPECT_EQ(*a.fallback, (Bytes{203, 0, 113, 1}));
  ASSERT_TRUE(aaaa.fallback.has_value());
  EXPECT_EQ(*aaaa.fallback,
            (Bytes{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
}

TEST_F(DemoConfigTest, CnameService) {
  ASSERT_EQ(cfg_.model.services.size(), 3u);
  const ServiceModel& s = cfg_.model.services[2];
  EXPECT_EQ(s.name, W("app.gtm.example."));
  EXPECT_EQ(s.rtype, dns::kTypeCNAME);
  EXPECT_EQ(s.ttl, 60u);
  EXPECT_FALSE(s.fallback.has_value());
  ASSERT_EQ(s.pools.size(), 1u);
  EXPECT_EQ(s.pools[0].name, "targets");
  EXPECT_EQ(s.pools[0].method, snap::PoolMethod::kGlobalAvailability);
  ASSERT_EQ(s.pools[0].members.size(), 2u);
  EXPECT_EQ(s.pools[0].members[0].name, "www.gtm.example.");
  EXPECT_EQ(s.pools[0].members[0].rdata, W("www.gtm.example."));
  EXPECT_EQ(s.pools[0].members[0].mode, snap::MemberMode::kAuto);
  EXPECT_EQ(s.pools[0].members[1].name, "app.backup.example.net.");
  EXPECT_EQ(s.pools[0].members[1].rdata, W("app.backup.example.net."));
  EXPECT_EQ(s.pools[0].members[1].mode, snap::MemberMode::kAlwaysUp);
}

TEST_F(DemoConfigTest, ModelCompilesIntoASnapshot) {
  std::vector<uint8_t> image;
  std::string error;
  EXPECT_TRUE(build_snapshot(cfg_.model, &image, &error)) << error;
  EXPECT_FALSE(image.empty());
}

// ----------------------------------------------------------------------------------------------
// Helpers for small inline configurations.

// A valid zone; tests append record lines (from line 7) or whole sections.
const std::string kZone =
    "zones:\n"                                               // 1
    "  - name: example.com.\n"                               // 2
    "    soa: {mname: ns1, rname: hostmaster, serial: 7}\n"  // 3
    "    ns: [ns1]\n"                                        // 4
    "    records:\n"                                         // 5
    "      - {name: ns1, type: A, data: 192.0.2.1}\n";       // 6

LoadedConfig Load(const std::string& yaml) {
  LoadedConfig cfg;
  ConfigError err;
  EXPECT_TRUE(load_config_string(yaml, "t.yaml", &cfg, &err)) << err.to_string();
  return cfg;
}

ConfigError LoadError(const std::string& yaml) {
  LoadedConfig cfg;
  ConfigError err;
  EXPECT_FALSE(load_config_string(yaml, "t.yaml", &cfg, &err)) << "loaded unexpectedly";
  return err;
}

#define EXPECT_CONFIG_ERROR(yaml, want_line, want_col, substring)               \
  do {                                                                          \
    const ConfigError e_ = LoadError(yaml);                                     \
    EXPECT_EQ(e_.file, "t.yaml");                                               \
    EXPECT_EQ(e_.line, want_line) << e_.to_string();                            \
    EXPECT_EQ(e_.column, want_col) << e_.to_string();                           \
    EXPECT_NE(e_.message.find(substring), std::string::npos) << e_.to_string(); \
  } while (0)

// The last record of a zone built from kZone plus `lines`.
StaticRecord LastRecord(const std::string& lines) {
  LoadedConfig cfg = Load(kZone + lines);
  if (cfg.model.zones.empty() || cfg.model.zones[0].records.empty()) return {};
  return cfg.model.zones[0].records.back();
}

// A service block (starts at line 7 after kZone).
std::string WithService(const std::string& service_lines) {
  return kZone + "services:\n" + service_lines;
}

// ----------------------------------------------------------------------------------------------
// Valid inputs: names, defaults, record types.

TEST(ConfigLoader, ZoneDefaults) {
  const LoadedConfig cfg = Load(kZone);
  ASSERT_EQ(cfg.model.zones.size(), 1u);
  const ZoneModel& z = cfg.model.zones[0];
  EXPECT_EQ(z.apex, W("example.com."));
  // refresh 3600, retry 600, expire 1209600, minimum 300; ttl = default_ttl = 3600.
  EXPECT_EQ(z.soa_rdata, Cat({W("ns1.example.com."), W("hostmaster.example.com."), Be32(7),
                              Be32(3600), Be32(600), Be32(1209600), Be32(300)}));
  EXPECT_EQ(z.soa_ttl, 3600u);
  ASSERT_EQ(z.records.size(), 2u);
  EXPECT_EQ(z.records[0].type, dns::kTypeNS);
  EXPECT_EQ(z.records[0].ttl, 3600u);  // ns_ttl defaults to the SOA TTL
  EXPECT_EQ(z.records[1].ttl, 3600u);  // record ttl defaults to default_ttl
  EXPECT_TRUE(cfg.model.services.empty());
  EXPECT_TRUE(cfg.model.unknown_health_is_up);
}

TEST(ConfigLoader, NsTtlDefaultsToSoaTtlAndRecordTtlToDefaultTtl) {
  const LoadedConfig cfg = Load(
      "zones:\n"
      "  - name: example.com.\n"
      "    default_ttl: 120\n"
      "    soa: {mname: ns1, rname: h, serial: 1, ttl: 900, refresh: 1, retry: 2, expire: 3,"
      " minimum: 4}\n"
      "    ns: [ns1, ns2.other.net.]\n"
      "    records: [{name: ns1, type: A, data: 192.0.2.1}]\n");
  ASSERT_EQ(cfg.model.zones.size(), 1u);
  const ZoneModel& z = cfg.model.zones[0];
  EXPECT_EQ(z.soa_ttl, 900u);
  EXPECT_EQ(z.soa_rdata, Cat({W("ns1.example.com."), W("h.example.com."), Be32(1), Be32(1), Be32(2),
                              Be32(3), Be32(4)}));
  ASSERT_EQ(z.records.size(), 3u);
  EXPECT_EQ(z.records[0].ttl, 900u);
  EXPECT_EQ(z.records[1].rdata, W("ns2.other.net."));
  EXPECT_EQ(z.records[2].ttl, 120u);
}

TEST(ConfigLoader, RelativeAbsoluteAndApexNames) {
  const LoadedConfig cfg = Load(kZone +
                                "      - {name: www, type: A, data: 192.0.2.2}\n"
                                "      - {name: www.example.com., type: A, data: 192.0.2.3}\n"
                                "      - {name: '@', type: A, data: 192.0.2.4}\n"
                                "      - {name: example.com., type: A, data: 192.0.2.5}\n"
                                "      - {name: Deep.Sub.WWW, type: A, data: 192.0.2.6}\n"
                                "      - {name: 'a\\.b', type: A, data: 192.0.2.7}\n");
  ASSERT_EQ(cfg.model.zones.size(), 1u);
  const auto& r = cfg.model.zones[0].records;
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r[2].owner, W("www.example.com."));
  EXPECT_EQ(r[3].owner, W("www.example.com."));
  EXPECT_EQ(r[4].owner, W("example.com."));
  EXPECT_EQ(r[5].owner, W("example.com."));
  EXPECT_EQ(r[6].owner, W("deep.sub.www.example.com."));
  EXPECT_EQ(r[7].owner, Cat({Bytes{3, 'a', '.', 'b'}, W("example.com.")}));
}

TEST(ConfigLoader, NamesInsideDataAreRelativeToTheZoneAndLowercased) {
  EXPECT_EQ(LastRecord("      - {name: x, type: CNAME, data: Target}\n").rdata,
            W("target.example.com."));
  EXPECT_EQ(LastRecord("      - {name: x, type: CNAME, data: WWW.Other.NET.}\n").rdata,
            W("www.other.net."));
  EXPECT_EQ(LastRecord("      - {name: x, type: CNAME, data: '@'}\n").rdata, W("example.com."));
  EXPECT_EQ(LastRecord("      - {name: '@', type: NS, data: NS3.example.org.}\n").rdata,
            W("ns3.example.org."));
  EXPECT_EQ(LastRecord("      - {name: x, type: MX, data: 0 .}\n").rdata, Cat({Be16(0), Bytes{0}}));
}

TEST(ConfigLoader, TxtWithSpacesAndSeveralStrings) {
  EXPECT_EQ(LastRecord("      - {name: t, type: TXT, data: '\"hello world\"'}\n").rdata,
            CharString("hello world"));
  EXPECT_EQ(
      LastRecord("      - {name: t, type: TXT, data: '\"v=DKIM1; k=rsa\" \"p=abc\"'}\n").rdata,
      Cat({CharString("v=DKIM1; k=rsa"), CharString("p=abc")}));
  EXPECT_EQ(LastRecord("      - {name: t, type: TXT, data: two words}\n").rdata,
            Cat({CharString("two"), CharString("words")}));
}

TEST(ConfigLoader, CaaMxSrvPtrAaaa) {
  EXPECT_EQ(
      LastRecord("      - {name: '@', type: caa, data: '128 iodef \"mailto:sec@example.com\"'}\n")
          .rdata,
      Cat({Bytes{128}, CharString("iodef"), Str("mailto:sec@example.com")}));
  EXPECT_EQ(LastRecord("      - {name: '@', type: CAA, data: '0 issuewild \";\"'}\n").rdata,
            Cat({Bytes{0}, CharString("issuewild"), Str(";")}));
  EXPECT_EQ(LastRecord("      - {name: '@', type: MX, data: 65535 mx.other.net.}\n").rdata,
            Cat({Be16(65535), W("mx.other.net.")}));
  EXPECT_EQ(LastRecord("      - {name: _x._tcp, type: SRV, data: 0 5 65535 t}\n").rdata,
            Cat({Be16(0), Be16(5), Be16(65535), W("t.example.com.")}));
  EXPECT_EQ(LastRecord("      - {name: 1.2, type: PTR, data: host.other.net.}\n").rdata,
            W("host.other.net."));
  EXPECT_EQ(LastRecord("      - {name: v6, type: AAAA, data: '2001:db8::1'}\n").rdata,
            (Bytes{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  const StaticRecord wild = LastRecord("      - {name: '*', type: A, ttl: 0, data: 10.0.0.1}\n");
  EXPECT_EQ(wild.owner, W("*.example.com."));
  EXPECT_EQ(wild.ttl, 0u);
  EXPECT_EQ(LastRecord("      - {name: m, type: A, ttl: 2147483647, data: 10.0.0.1}\n").ttl,
            2147483647u);
}

TEST(ConfigLoader, OptionsUnknownHealthDown) {
  const LoadedConfig cfg = Load("options: {unknown_health: down}\n" + kZone);
  EXPECT_FALSE(cfg.model.unknown_health_is_up);
}

TEST(ConfigLoader, EmptyValuesMeanDefaults) {
  const LoadedConfig cfg =
      Load("options:\n" + kZone + "      - {name: x, type: A, ttl: , data: 10.0.0.1}\nservices:\n");
  ASSERT_EQ(cfg.model.zones.size(), 1u);
  EXPECT_EQ(cfg.model.zones[0].records.back().ttl, 3600u);
  EXPECT_TRUE(cfg.model.services.empty());
}

TEST(ConfigLoader, Ipv6OnlyServiceHasNoAModelAndEmptyPoolsKeepTheirPlace) {
  const LoadedConfig cfg = Load(
      WithService("  - name: v6.example.com.\n"
                  "    ttl: 10\n"
                  "    pools:\n"
                  "      - {name: p1, members: [{address: '2001:db8::1'}]}\n"
                  "  - name: mixed.example.com.\n"
                  "    ttl: 20\n"
                  "    when_empty: servfail\n"
                  "    pools:\n"
                  "      - {name: only6, method: random, members: [{address: '2001:db8::2'}]}\n"
                  "      - name: only4\n"
                  "        method: return-n\n"
                  "        count: 2\n"
                  "        members:\n"
                  "          - {address: 10.0.0.1, enabled: false, mode: always-down}\n"
                  "          - {address: 10.0.0.2, weight: 1000000}\n"));
  ASSERT_EQ(cfg.model.services.size(), 3u);
  const ServiceModel& v6 = cfg.model.services[0];
  EXPECT_EQ(v6.name, W("v6.example.com."));
  EXPECT_EQ(v6.rtype, dns::kTypeAAAA);
  ASSERT_EQ(v6.pools.size(), 1u);
  ASSERT_EQ(v6.pools[0].members.size(), 1u);
  EXPECT_EQ(v6.pools[0].members[0].name, "2001:db8::1");  // defaults to the address text
  EXPECT_EQ(v6.pools[0].method, snap::PoolMethod::kRoundRobin);
  EXPECT_FALSE(v6.fallback.has_value());

  const ServiceModel& m4 = cfg.model.services[1];
  const ServiceModel& m6 = cfg.model.services[2];
  EXPECT_EQ(m4.rtype, dns::kTypeA);
  EXPECT_EQ(m6.rtype, dns::kTypeAAAA);
  EXPECT_EQ(m4.empty_action, snap::EmptyAction::kServfail);
  ASSERT_EQ(m4.pools.size(), 2u);
  EXPECT_EQ(m4.pools[0].name, "only6");
  EXPECT_TRUE(m4.pools[0].members.empty());
  EXPECT_EQ(m4.pools[1].method, snap::PoolMethod::kReturnN);
  EXPECT_EQ(m4.pools[1].return_n, 2);
  ASSERT_EQ(m4.pools[1].members.size(), 2u);
  EXPECT_FALSE(m4.pools[1].members[0].enabled);
  EXPECT_EQ(m4.pools[1].members[0].mode, snap::MemberMode::kAlwaysDown);
  EXPECT_EQ(m4.pools[1].members[1].weight, 1000000u);
  ASSERT_EQ(m6.pools.size(), 2u);
  EXPECT_EQ(m6.pools[0].method, snap::PoolMethod::kRandom);
  EXPECT_EQ(m6.pools[0].members.size(), 1u);
  EXPECT_TRUE(m6.pools[1].members.empty());
}

TEST(ConfigLoader, FallbackAloneCreatesTheFamily) {
  const LoadedConfig cfg =
      Load(WithService("  - name: w.example.com.\n"
                       "    ttl: 10\n"
                       "    pools: [{name: p, members: [{address: 10.0.0.1}]}]\n"
                       "    fallback: '2001:db8::9'\n"));
  ASSERT_EQ(cfg.model.services.size(), 2u);
  EXPECT_FALSE(cfg.model.services[0].fallback.has_value());
  EXPECT_EQ(cfg.model.services[1].rtype, dns::kTypeAAAA);
  EXPECT_TRUE(cfg.model.services[1].pools[0].members.empty());
  ASSERT_TRUE(cfg.model.services[1].fallback.has_value());
  EXPECT_EQ(cfg.model.services[1].fallback->size(), 16u);
}

TEST(ConfigLoader, TypedAServiceAndCnameServiceWithRelativeTargets) {
  const LoadedConfig cfg = Load(WithService(
      "  - name: a.example.com.\n"
      "    type: A\n"
      "    ttl: 5\n"
      "    fallback: [192.0.2.200]\n"
      "    pools: [{name: p, method: return-all, members: [{name: m, address: 10.0.0.1}]}]\n"
      "  - name: c.example.com.\n"
      "    type: cname\n"
      "    ttl: 6\n"
      "    fallback: last-resort\n"
      "    pools: [{name: p, members: [{target: Web}, {name: ext, target: x.other.net.}]}]\n"));
  ASSERT_EQ(cfg.model.services.size(), 2u);
  EXPECT_EQ(cfg.model.services[0].rtype, dns::kTypeA);
  EXPECT_EQ(cfg.model.services[0].pools[0].method, snap::PoolMethod::kReturnAll);
  EXPECT_EQ(*cfg.model.services[0].fallback, (Bytes{192, 0, 2, 200}));
  const ServiceModel& c = cfg.model.services[1];
  EXPECT_EQ(c.rtype, dns::kTypeCNAME);
  EXPECT_EQ(*c.fallback, W("last-resort.example.com."));
  ASSERT_EQ(c.pools[0].members.size(), 2u);
  EXPECT_EQ(c.pools[0].members[0].name, "Web");
  EXPECT_EQ(c.pools[0].members[0].rdata, W("web.example.com."));
  EXPECT_EQ(c.pools[0].members[1].name, "ext");
}

TEST(ConfigLoader, ServiceBelongsToTheDeepestZone) {
  const LoadedConfig cfg = Load(kZone +
                                "  - name: sub.example.com.\n"
                                "    soa: {mname: ns1, rname: h, serial: 1}\n"
                                "    ns: [ns1]\n"
                                "services:\n"
                                "  - name: c.sub.example.com.\n"
                                "    type: CNAME\n"
                                "    ttl: 6\n"
                                "    pools: [{name: p, members: [{target: t}]}]\n");
  ASSERT_EQ(cfg.model.services.size(), 1u);
  EXPECT_EQ(cfg.model.services[0].pools[0].members[0].rdata, W("t.sub.example.com."));
}

TEST(ConfigLoader, NameFromText) {
  const Bytes origin = W("example.com.");
  WireName out;
  std::string error;
  ASSERT_TRUE(name_from_text("WWW", origin, &out, &error));
  EXPECT_EQ(out, W("www.example.com."));
  ASSERT_TRUE(name_from_text("a.B.", origin, &out, &error));
  EXPECT_EQ(out, W("a.b."));
  ASSERT_TRUE(name_from_text(".", origin, &out, &error));
  EXPECT_EQ(out, Bytes{0});
  ASSERT_TRUE(name_from_text("@", origin, &out, &error));
  EXPECT_EQ(out, origin);
  ASSERT_TRUE(name_from_text("\\065\\.x.", origin, &out, &error));
  EXPECT_EQ(out, (Bytes{3, 'a', '.', 'x', 0}));
  EXPECT_FALSE(name_from_text("a..b", origin, &out, &error));
  EXPECT_NE(error.find("empty label"), std::string::npos);
  EXPECT_FALSE(name_from_text("", origin, &out, &error));
  EXPECT_FALSE(name_from_text(".a", origin, &out, &error));
  EXPECT_FALSE(name_from_text("a\\", origin, &out, &error));
  EXPECT_FALSE(name_from_text("\\256.", origin, &out, &error));
  EXPECT_FALSE(name_from_text(std::string(64, 'x') + ".", origin, &out, &error));
  EXPECT_NE(error.find("63"), std::string::npos);
  ASSERT_TRUE(name_from_text(std::string(63, 'x') + ".", origin, &out, &error));
  // 4 labels of 63 = 256 octets with the root label: one too many.
  const std::string l63(63, 'y');
  EXPECT_FALSE(name_from_text(l63 + "." + l63 + "." + l63 + "." + l63 + ".", origin, &out, &error));
  EXPECT_NE(error.find("255"), std::string::npos);
  ASSERT_TRUE(name_from_text(l63 + "." + l63 + "." + l63 + "." + std::string(61, 'z') + ".", origin,
                             &out, &error));
  EXPECT_EQ(out.size(), 255u);
}

TEST(ConfigLoader, ErrorToString) {
  EXPECT_EQ((ConfigError{"f.yaml", 3, 9, "boom"}).to_string(), "f.yaml:3:9: boom");
  EXPECT_EQ((ConfigError{"f.yaml", 0, 0, "cannot open"}).to_string(), "f.yaml: cannot open");
}

// ----------------------------------------------------------------------------------------------
// Errors: one per rule, with line, column and message.

TEST(ConfigErrors, UnknownKeyInRecord) {
  EXPECT_CONFIG_ERROR(kZone +
                          "      - name: www\n"  // line 7; the next key starts in column 9
                          "        tll: 60\n",
                      8, 9, "unknown key 'tll' in record");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: www, tll: 60, type: A, data: 10.0.0.1}\n", 7, 21,
                      "unknown key 'tll' in record");
}

TEST(ConfigErrors, UnknownKeysEverywhere) {
  EXPECT_CONFIG_ERROR("zone:\n  - x\n", 1, 1, "unknown key 'zone' in top-level map");
  EXPECT_CONFIG_ERROR("options: {unknown_health: up, colour: red}\n" + kZone, 1, 31,
                      "unknown key 'colour' in options");
  EXPECT_CONFIG_ERROR(
      "zones:\n  - name: e.\n    soa: {mname: a, rname: b, serial: 1, bogus: 2}\n    ns: [a]\n", 3,
      42, "unknown key 'bogus' in soa");
  EXPECT_CONFIG_ERROR("zones:\n  - name: e.\n    nss: [a]\n", 3, 5, "unknown key 'nss' in zone");
  EXPECT_CONFIG_ERROR(WithService("  - {name: s.example.com., ttl: 1, pool: []}\n"), 8, 36,
                      "unknown key 'pool' in service");
  EXPECT_CONFIG_ERROR(
      WithService("  - {name: s.example.com., ttl: 1, pools: [{name: p, size: 2}]}\n"), 8, 54,
      "unknown key 'size' in pool");
  EXPECT_CONFIG_ERROR(WithService("  - name: s.example.com.\n"
                                  "    ttl: 1\n"
                                  "    pools:\n"
                                  "      - name: p\n"
                                  "        members:\n"
                                  "          - {address: 10.0.0.1, health: up}\n"),
                      13, 33, "unknown key 'health' in member");
}

TEST(ConfigErrors, DuplicateKey) {
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: A, data: 10.0.0.1, type: AAAA}\n", 7, 44,
                      "duplicate key 'type' in record");
}

TEST(ConfigErrors, MissingKeysAndValues) {
  EXPECT_CONFIG_ERROR("options: {}\n", 1, 1, "missing key 'zones' in top-level map");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, data: 10.0.0.1}\n", 7, 9,
                      "missing key 'type' in record");
  EXPECT_CONFIG_ERROR(kZone + "      - name: a\n        type: A\n        data:\n", 9, 9,
                      "missing value for 'data' in record");
  EXPECT_CONFIG_ERROR("zones:\n  - name: e.\n    ns: [a]\n", 2, 5, "missing key 'soa' in zone");
  EXPECT_CONFIG_ERROR("zones:\n  - name: e.\n    soa: {mname: a, rname: b}\n    ns: [a]\n", 3, 10,
                      "missing key 'serial' in soa");
  EXPECT_CONFIG_ERROR("zones:\n  - name: e.\n    soa: {mname: a, rname: b, serial: 1}\n", 2, 5,
                      "missing key 'ns' in zone");
  EXPECT_CONFIG_ERROR(WithService("  - name: s.example.com.\n    pools: []\n"), 8, 5,
                      "missing key 'ttl' in service");
  EXPECT_CONFIG_ERROR(WithService("  - {name: s.example.com., ttl: 1, pools: [{name: p, members: "
                                  "[{name: x}]}]}\n"),
                      8, 64, "missing key 'address' in member");
}

TEST(ConfigErrors, TypesAndRanges) {
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: A, ttl: 2147483648, data: 10.0.0.1}\n", 7,
                      33, "'ttl' must be an integer in 0..2147483647");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: A, ttl: -1, data: 10.0.0.1}\n", 7, 33,
                      "got '-1'");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: A, ttl: 1h, data: 10.0.0.1}\n", 7, 33,
                      "'ttl' must be an integer");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: A, ttl: [1], data: 10.0.0.1}\n", 7, 33,
                      "'ttl' must be a single value");
  EXPECT_CONFIG_ERROR(
      "zones:\n  - name: e.\n    soa: {mname: a, rname: b, serial: 4294967296}\n    ns: [a]\n", 3,
      39, "'serial' must be an integer in 0..4294967295");
  EXPECT_CONFIG_ERROR("zones:\n  - name: e.\n    default_ttl: 99999999999\n", 3, 18,
                      "'default_ttl' must be an integer");
  const std::string member_prefix =
      "  - {name: s.example.com., ttl: 1, pools: [{name: p, members: [{address: 10.0.0.1, ";
  EXPECT_CONFIG_ERROR(WithService(member_prefix + "weight: 0}]}]}\n"), 8, 92,
                      "'weight' must be an integer in 1..1000000");
  EXPECT_CONFIG_ERROR(WithService(member_prefix + "weight: 1000001}]}]}\n"), 8, 92,
                      "'weight' must be an integer in 1..1000000");
  EXPECT_CONFIG_ERROR(WithService(member_prefix + "enabled: maybe}]}]}\n"), 8, 93,
                      "'enabled' must be true or false");
  EXPECT_CONFIG_ERROR(WithService(member_prefix + "mode: up}]}]}\n"), 8, 90,
                      "'mode' must be one of auto, always-up, always-down");
  EXPECT_CONFIG_ERROR("options: {unknown_health: maybe}\n" + kZone, 1, 27,
                      "'unknown_health' must be one of up, down");
  EXPECT_CONFIG_ERROR("zones: {name: e.}\n", 1, 8, "'zones' must be a list");
  EXPECT_CONFIG_ERROR("zones: []\n", 1, 8, "'zones' must not be empty");
  EXPECT_CONFIG_ERROR("zones: [5]\n", 1, 9, "zone must be a map");
  EXPECT_CONFIG_ERROR("- a\n", 1, 1, "top-level map must be a map");
}

TEST(ConfigErrors, PoolRules) {
  const std::string head = "  - name: s.example.com.\n    ttl: 1\n    pools:\n";  // lines 8-10
  EXPECT_CONFIG_ERROR(WithService(head + "      - {name: p, method: fastest, members: [{address: "
                                         "10.0.0.1}]}\n"),
                      11, 27, "'method' must be one of round-robin, ratio, global-availability");
  EXPECT_CONFIG_ERROR(WithService(head + "      - {name: p, method: return-n, members: [{address: "
                                         "10.0.0.1}]}\n"),
                      11, 9, "method return-n needs 'count'");
  EXPECT_CONFIG_ERROR(WithService(head + "      - {name: p, method: return-n, count: 256, members: "
                                         "[{address: 10.0.0.1}]}\n"),
                      11, 44, "'count' must be an integer in 1..255");
  EXPECT_CONFIG_ERROR(WithService(head + "      - {name: p, method: ratio, count: 2, members: "
                                         "[{address: 10.0.0.1}]}\n"),
                      11, 34, "'count' is only valid with method return-n");
  EXPECT_CONFIG_ERROR(WithService(head + "      - {name: p, members: []}\n"), 11, 28,
                      "'members' must not be empty");
  EXPECT_CONFIG_ERROR(WithService("  - {name: s.example.com., ttl: 1, pools: []}\n"), 8, 43,
                      "'pools' must not be empty");
  EXPECT_CONFIG_ERROR(WithService(head + "      - {name: p, members: [{address: 10.0.0.1}]}\n"
                                         "      - {name: p, members: [{address: 10.0.0.2}]}\n"),
                      12, 9, "duplicate pool 'p'");
  EXPECT_CONFIG_ERROR(WithService(head + "      - name: p\n"
                                         "        members:\n"
                                         "          - {name: m, address: 10.0.0.1}\n"
                                         "          - {name: m, address: 10.0.0.2}\n"),
                      14, 13, "duplicate member 'm' in pool 'p'");
}

TEST(ConfigErrors, AddressesAndFamilies) {
  const std::string head = "  - name: s.example.com.\n    ttl: 1\n";  // lines 8-9
  const std::string pools = "    pools: [{name: p, members: [{address: 10.0.0.1}]}]\n";  // 10
  EXPECT_CONFIG_ERROR(
      WithService(head + "    pools: [{name: p, members: [{address: 10.0.0.256}]}]\n"), 10, 43,
      "'address' must be an IPv4 or IPv6 address, got '10.0.0.256'");
  EXPECT_CONFIG_ERROR(WithService(head + "    type: AAAA\n" + pools), 11, 43,
                      "address '10.0.0.1' is IPv4 but the service type is AAAA");
  EXPECT_CONFIG_ERROR(WithService(head + "    type: CNAME\n" + pools), 11, 34,
                      "'address' is only valid in address services");
  EXPECT_CONFIG_ERROR(WithService(head + "    pools: [{name: p, members: [{target: x.}]}]\n"), 10,
                      34, "'target' is only valid in CNAME services");
  EXPECT_CONFIG_ERROR(WithService(head + pools + "    fallback: [10.0.0.9, 10.0.0.10]\n"), 11, 26,
                      "'fallback' has two IPv4 addresses");
  EXPECT_CONFIG_ERROR(WithService(head + pools + "    fallback: [10.0.0.9, '::1', '::2']\n"), 11,
                      15, "at most one IPv4 and one IPv6");
  EXPECT_CONFIG_ERROR(WithService(head + pools + "    fallback: \"10.0.0.1\\0junk\"\n"), 11, 15,
                      "'fallback' must be an IPv4 or IPv6 address");
  EXPECT_CONFIG_ERROR(WithService(head + pools + "    fallback: nowhere\n"), 11, 15,
                      "'fallback' must be an IPv4 or IPv6 address");
  EXPECT_CONFIG_ERROR(WithService(head + "    type: A\n" + pools + "    fallback: '::1'\n"), 12, 15,
                      "fallback '::1' is IPv6 but the service type is A");
  EXPECT_CONFIG_ERROR(WithService(head + "    type: MX\n" + pools), 10, 11,
                      "service type must be A, AAAA or CNAME");
}

TEST(ConfigErrors, ServiceNamesAndZones) {
  const std::string body = "    ttl: 1\n    pools: [{name: p, members: [{address: 10.0.0.1}]}]\n";
  EXPECT_CONFIG_ERROR(WithService("  - name: www\n" + body), 8, 11,
                      "service name: name 'www' must be absolute");
  EXPECT_CONFIG_ERROR(WithService("  - name: www.example.org.\n" + body), 8, 11,
                      "service 'www.example.org.' is not inside any configured zone");
  EXPECT_CONFIG_ERROR(
      WithService("  - name: www.example.com.\n" + body + "  - name: WWW.example.com.\n" + body),
      11, 11, "duplicate service 'WWW.example.com.'");
  EXPECT_CONFIG_ERROR(kZone + "  - name: Example.COM.\n", 7, 11, "duplicate zone 'Example.COM.'");
  EXPECT_CONFIG_ERROR("zones:\n  - name: example.com\n", 2, 11,
                      "zone name: name 'example.com' must be absolute");
}

TEST(ConfigErrors, RecordRules) {
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: DNAME, data: x.}\n", 7, 25,
                      "unsupported record type 'DNAME'");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: '@', type: SOA, data: a b 1 2 3 4 5}\n", 7, 27,
                      "SOA is configured by the zone's 'soa' map");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: sub, type: NS, data: ns.other.}\n", 7, 16,
                      "NS records are only allowed at the zone apex");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: www.example.org., type: A, data: 10.0.0.1}\n", 7, 16,
                      "record name 'www.example.org.' is outside zone 'example.com.'");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a..b, type: A, data: 10.0.0.1}\n", 7, 16,
                      "'name': empty label in name");
  EXPECT_CONFIG_ERROR(
      kZone + "      - {name: " + std::string(64, 'x') + ", type: A, data: 1.2.3.4}\n", 7, 16,
      "longer than 63 octets");
  const std::string l60(60, 'q');
  EXPECT_CONFIG_ERROR(kZone + "      - {name: " + l60 + "." + l60 + "." + l60 + "." + l60 +
                          ", type: A, data: 1.2.3.4}\n",
                      7, 16, "longer than 255 octets");
}

TEST(ConfigErrors, RecordDataParsedByLdns) {
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: A, data: 1.2.3}\n", 7, 34,
                      "invalid A data '1.2.3': ");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: AAAA, data: 10.0.0.1}\n", 7, 37,
                      "invalid AAAA data");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: A, data: 10.0.0.1 10.0.0.2}\n", 7, 34,
                      "superfluous text");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: MX, data: '10'}\n", 7, 35,
                      "invalid MX data");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: SRV, data: 1 2 99999 t}\n", 7, 36,
                      "field 3 must be an integer in 0..65535, got '99999'");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: MX, data: x mail}\n", 7, 35,
                      "field 1 must be an integer in 0..65535");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: CAA, data: '256 issue \"x\"'}\n", 7, 36,
                      "field 1 must be an integer in 0..255");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: TXT, data: ''}\n", 7, 36,
                      "'data' must not be empty");
  EXPECT_CONFIG_ERROR(kZone + "      - {name: a, type: TXT, data: \"x\\ny\"}\n", 7, 36,
                      "control character");
}

TEST(ConfigErrors, YamlSyntaxError) {
  const ConfigError e = LoadError("zones:\n  - name: [a, b\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 1);
  EXPECT_NE(e.message.find("end of sequence flow not found"), std::string::npos) << e.message;
  const ConfigError e2 = LoadError("zones:\n  - name: 'x' \"y\"\n");
  EXPECT_EQ(e2.line, 2);
  EXPECT_GT(e2.column, 1);
  EXPECT_FALSE(e2.message.empty());
}

TEST(ConfigErrors, EmptyAndMultiDocument) {
  EXPECT_CONFIG_ERROR("", 1, 1, "configuration is empty");
  EXPECT_CONFIG_ERROR("# only a comment\n", 1, 1, "configuration is empty");
  EXPECT_CONFIG_ERROR(kZone + "---\n" + kZone, 7, 1, "only one YAML document");
}

TEST(ConfigErrors, StrayCommaDoesNotHangTheParser) {
  // yaml-cpp 0.7's LoadAll loops forever on these; the loader must answer with an error.
  EXPECT_CONFIG_ERROR(",", 1, 1, "syntax error: unexpected ','");
  EXPECT_CONFIG_ERROR(", d\nzones: []\n", 1, 1, "syntax error: unexpected ','");
  EXPECT_CONFIG_ERROR("&x ,\n", 1, 4, "syntax error: unexpected ','");
  EXPECT_CONFIG_ERROR(kZone + "---\n,\n", 7, 1, "only one YAML document");
}

TEST(ConfigErrors, MissingFileAndDirectory) {
  LoadedConfig cfg;
  ConfigError e;
  EXPECT_FALSE(load_config_file("/nonexistent/gtm.yaml", &cfg, &e));
  EXPECT_EQ(e.file, "/nonexistent/gtm.yaml");
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.to_string(), "/nonexistent/gtm.yaml: cannot open: No such file or directory");
  EXPECT_FALSE(load_config_file("/tmp", &cfg, &e));
  EXPECT_EQ(e.message, "not a regular file");
}

TEST(ConfigErrors, FileErrorsCarryThePath) {
  const std::string path =
      ::testing::TempDir() + "gtm_config_test_" + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream f(path);
    f << kZone << "      - {name: a, type: A, tll: 1, data: 10.0.0.1}\n";
  }
  LoadedConfig cfg;
  ConfigError e;
  EXPECT_FALSE(load_config_file(path, &cfg, &e));
  EXPECT_EQ(e.to_string(), path + ":7:28: unknown key 'tll' in record");
  std::remove(path.c_str());
}

// ----------------------------------------------------------------------------------------------
// Robustness: mangled versions of the demo never crash and either load or report a position.

TEST(ConfigRobustness, TruncationsAndMutationsOfTheDemo) {
  std::ifstream f(kDemoPath);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string demo = ss.str();
  ASSERT_FALSE(demo.empty());
  size_t loaded = 0;
  auto check = [&](const std::string& text) {
    LoadedConfig cfg;
    ConfigError e;
    if (load_config_string(text, "m.yaml", &cfg, &e)) {
      ++loaded;
    } else {
      EXPECT_FALSE(e.message.empty());
      EXPECT_GE(e.line, 1) << e.to_string();
      EXPECT_GE(e.column, 1) << e.to_string();
    }
  };
  for (size_t len = 0; len < demo.size(); len += 7) check(demo.substr(0, len));
  std::mt19937 rng(12345);
  const char alphabet[] = "{}[]:,-'\"#&*!|>%@ \n\t.09aZ\\";
  for (int i = 0; i < 1500; ++i) {
    std::string text = demo;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      text[rng() % text.size()] = alphabet[rng() % (sizeof alphabet - 1)];
    }
    check(text);
  }
  EXPECT_GT(loaded, 0u);  // some mutations land in comments and still load
}

TEST(ConfigRobustness, DeepNestingAndOddNodes) {
  // yaml-cpp bounds its recursion; the loader must turn that into an ordinary error.
  EXPECT_FALSE(LoadError("zones: " + std::string(100000, '[')).message.empty());
  EXPECT_FALSE(
      LoadError("zones: " + std::string(5000, '[') + std::string(5000, ']')).message.empty());
  EXPECT_CONFIG_ERROR("zones:\n  - &z {name: e., soa: *z}\n", 2, 9, "unknown key 'name' in soa");
  EXPECT_CONFIG_ERROR("? [a, b]\n: 1\n", 1, 3, "keys in top-level map must be plain strings");
  EXPECT_CONFIG_ERROR("zones:\n  - name: !!binary aGVsbG8=\n", 2, 11, "must be absolute");
}

}  // namespace
}  // namespace gtm::control

namespace gtm::control {
namespace {

TEST(ConfigLoaderAlerts, WebhooksWithDefaultsAndOverrides) {
  const LoadedConfig cfg = Load(kZone +
                                "alerts:\n"
                                "  webhooks:\n"
                                "    - {url: \"http://127.0.0.1:9/a\"}\n"
                                "    - {url: \"https://hooks.example/b\", timeout_ms: 500, "
                                "retries: 0}\n");
  ASSERT_EQ(cfg.webhooks.size(), 2u);
  EXPECT_EQ(cfg.webhooks[0].url, "http://127.0.0.1:9/a");
  EXPECT_EQ(cfg.webhooks[0].timeout_ms, 2000u);
  EXPECT_EQ(cfg.webhooks[0].retries, 3u);
  EXPECT_EQ(cfg.webhooks[1].timeout_ms, 500u);
  EXPECT_EQ(cfg.webhooks[1].retries, 0u);
  EXPECT_TRUE(Load(kZone).webhooks.empty());
}

TEST(ConfigLoaderAlerts, WebhookErrorsArePlaced) {
  EXPECT_CONFIG_ERROR(kZone + "alerts:\n  webhooks:\n    - {url: \"ftp://x/\"}\n", 9, 13,
                      "must start with http:// or https://");
  EXPECT_CONFIG_ERROR(kZone + "alerts:\n  webhooks:\n    - {url: \"http://x/\", retry: 1}\n", 9,
                      26, "unknown key 'retry' in webhook");
  EXPECT_CONFIG_ERROR(kZone + "alerts:\n  webhooks:\n    - {url: \"http://x/\", retries: 11}\n",
                      9, 35, "'retries' must be an integer in 0..10");
  EXPECT_CONFIG_ERROR(kZone + "alerts:\n  hooks: []\n", 8, 3, "unknown key 'hooks' in alerts");
}

}  // namespace
}  // namespace gtm::control
