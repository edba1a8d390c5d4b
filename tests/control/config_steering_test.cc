// The steering part of the configuration: geo databases, regions, ISP lines, datacenters, the
// topology table, method chains, persistence, pool sets, access policies, switch policies and
// all-down actions. Each error is pinned to file:line:column.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"

namespace gtm::control {
namespace {

const std::string kZone = R"(zones:
  - name: gtm.example.
    soa: {mname: ns1, rname: hostmaster, serial: 1}
    ns: [ns1]
)";

// Lines of kZone, so tests can name the line of their own YAML.
constexpr int kZoneLines = 4;

LoadedConfig load_ok(const std::string& yaml, const std::string& name = "/etc/gtm/gtm.yaml") {
  LoadedConfig cfg;
  ConfigError err;
  EXPECT_TRUE(load_config_string(kZone + yaml, name, &cfg, &err)) << err.to_string();
  return cfg;
}

std::string load_error(const std::string& yaml) {
  LoadedConfig cfg;
  ConfigError err;
  EXPECT_FALSE(load_config_string(kZone + yaml, "gtm.yaml", &cfg, &err));
  return err.to_string();
}

const char* kClients = R"(geo:
  databases:
    - {name: country, path: geo/GeoIP2-Country-Test.mmdb}
regions:
  - name: cn
    mmdb: {field: country.iso_code, values: [CN, HK]}
  - name: europe
    mmdb: [{database: country, field: continent.code, values: EU}]
    cidr: [192.0.2.0/24, "2001:db8::/32"]
isp_lines:
  - {name: TEL, cidr_files: [lists/tel.txt, /abs/tel2.txt]}
datacenters: [bj, fra]
topology:
  - {client: TEL, datacenter: bj, score: 200}
  - {client: 10.0.0.0/8, datacenter: fra, score: 5}
)";

TEST(ConfigSteering, ClientsBecomeTheGeoConfig) {
  const LoadedConfig cfg = load_ok(kClients);
  const geo::GeoConfig& g = cfg.geo;
  ASSERT_EQ(g.databases.size(), 1u);
  EXPECT_EQ(g.databases[0].path, "/etc/gtm/geo/GeoIP2-Country-Test.mmdb")
      << "relative to the configuration file";
  ASSERT_EQ(g.sets.size(), 3u);
  EXPECT_EQ(g.sets[0].name, "cn");
  EXPECT_EQ(g.sets[0].kind, geo::ClientSetDef::Kind::kRegion);
  ASSERT_EQ(g.sets[0].mmdb.size(), 1u);
  EXPECT_EQ(g.sets[0].mmdb[0].database, "country") << "the only database is the default";
  EXPECT_EQ(g.sets[0].mmdb[0].field_path, (std::vector<std::string>{"country", "iso_code"}));
  EXPECT_EQ(g.sets[0].mmdb[0].values, (std::vector<std::string>{"CN", "HK"}));
  EXPECT_EQ(g.sets[0].mmdb[0].where, "/etc/gtm/gtm.yaml:10:11");
  EXPECT_EQ(g.sets[1].mmdb[0].values, (std::vector<std::string>{"EU"}));
  ASSERT_EQ(g.sets[1].cidrs.size(), 2u);
  EXPECT_EQ(g.sets[1].cidrs[0].family, 4);
  EXPECT_EQ(g.sets[1].cidrs[0].prefix_len, 24);
  EXPECT_EQ(g.sets[1].cidrs[1].family, 6);
  EXPECT_EQ(g.sets[2].kind, geo::ClientSetDef::Kind::kIspLine);
  EXPECT_EQ(g.sets[2].cidr_files,
            (std::vector<std::string>{"/etc/gtm/lists/tel.txt", "/abs/tel2.txt"}));
  EXPECT_EQ(g.datacenters, (std::vector<std::string>{"bj", "fra"}));
  ASSERT_EQ(g.topology.size(), 2u);
  EXPECT_EQ(g.topology[0].kind, geo::TopologyRecord::Kind::kSet);
  EXPECT_EQ(g.topology[0].set, 2u);
  EXPECT_EQ(g.topology[0].datacenter, 0u);
  EXPECT_EQ(g.topology[0].score, 200);
  EXPECT_EQ(g.topology[1].kind, geo::TopologyRecord::Kind::kCidr);
  EXPECT_EQ(g.topology[1].cidr.prefix_len, 8);
  EXPECT_EQ(g.topology[1].datacenter, 1u);
  EXPECT_EQ(cfg.model.client_sets, (std::vector<std::string>{"cn", "europe", "TEL"}));
  EXPECT_EQ(cfg.model.client_set_is_isp_line, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(cfg.model.datacenters, g.datacenters);
}

TEST(ConfigSteering, NoClientsNoGeo) {
  EXPECT_TRUE(load_ok("").geo.empty());
}

const std::string kService = std::string(kClients) + R"(services:
  - name: www.gtm.example.
    ttl: 30
    method: [topology, ratio, return-all]
    pools:
      - name: bj
        datacenter: bj
        members:
          - {name: b1, address: 192.0.2.1, weight: 2}
          - {name: b2, address: 192.0.2.2, datacenter: fra}
      - name: fra
        method: persistence
        persistence: {mask_v4: 16, mask_v6: 48}
        members: [{name: f1, address: 198.51.100.1, datacenter: fra}]
      - name: us
        method: round-robin
        members: [{name: u1, address: 203.0.113.1}]
    pool_sets:
      china: [bj]
      world: [fra, us]
    access_policy:
      - {regions: [cn, TEL], primary: china, secondary: world}
      - {regions: europe, primary: fra, secondary: [bj, us]}
      - {primary: world, secondary: china}
    switch_policy: {min_members: 2, min_percent: 50, failback: hold-down, hold_down_s: 90}
    ecs: false
    when_empty: return-all
)";

TEST(ConfigSteering, ServiceSteering) {
  const LoadedConfig cfg = load_ok(kService);
  ASSERT_EQ(cfg.model.services.size(), 1u);  // IPv4 members only
  const ServiceModel& s = cfg.model.services[0];
  EXPECT_FALSE(s.use_ecs);
  EXPECT_EQ(s.empty_action, snap::EmptyAction::kReturnAll);
  ASSERT_EQ(s.pools.size(), 3u);
  EXPECT_EQ(s.pools[0].method, snap::PoolMethod::kTopology) << "the service's chain is the default";
  EXPECT_EQ(s.pools[0].alternate, snap::PoolMethod::kRatio);
  EXPECT_EQ(s.pools[0].fallback_method, snap::PoolMethod::kReturnAll);
  EXPECT_EQ(s.pools[0].members[0].datacenter, 0u) << "the pool's datacenter";
  EXPECT_EQ(s.pools[0].members[1].datacenter, 1u) << "the member's own";
  EXPECT_EQ(s.pools[1].method, snap::PoolMethod::kPersistence);
  EXPECT_FALSE(s.pools[1].alternate);
  EXPECT_EQ(s.pools[1].persist_v4, 16);
  EXPECT_EQ(s.pools[1].persist_v6, 48);
  EXPECT_EQ(s.pools[2].members[0].datacenter, snap::kNoDatacenter);
  // Named sets first, then the ones written inline, each once.
  ASSERT_EQ(s.pool_sets.size(), 4u);
  EXPECT_EQ(s.pool_sets[0].name, "china");
  EXPECT_EQ(s.pool_sets[1].pools, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(s.pool_sets[2].name, "fra");
  EXPECT_EQ(s.pool_sets[2].pools, (std::vector<uint32_t>{1}));
  EXPECT_EQ(s.pool_sets[3].name, "bj+us");
  ASSERT_EQ(s.rules.size(), 3u);
  EXPECT_EQ(s.rules[0].client_sets, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(s.rules[0].primary, 0u);
  EXPECT_EQ(s.rules[0].secondary, 1u);
  EXPECT_EQ(s.rules[1].client_sets, (std::vector<uint32_t>{1}));
  EXPECT_EQ(s.rules[1].primary, 2u);
  EXPECT_EQ(s.rules[1].secondary, 3u);
  EXPECT_TRUE(s.rules[2].client_sets.empty());
  EXPECT_EQ(s.switch_policy.min_members, 2u);
  EXPECT_EQ(s.switch_policy.min_percent, 50u);
  EXPECT_TRUE(s.switch_policy.hold_down);
  EXPECT_EQ(s.switch_policy.hold_down_s, 90u);
  // It builds (without geo tables every client is in class 0, the default rule).
  std::vector<uint8_t> image;
  std::string error;
  EXPECT_TRUE(build_snapshot(cfg.model, &image, &error)) << error;
}

TEST(ConfigSteering, RulesWithoutDefaultGetAllPools) {
  const LoadedConfig cfg = load_ok(std::string(kClients) + R"(services:
  - name: www.gtm.example.
    ttl: 30
    pools:
      - {name: a, members: [{address: 192.0.2.1}]}
      - {name: b, members: [{address: 192.0.2.2}]}
    access_policy:
      - {regions: [cn], primary: b}
)");
  const ServiceModel& s = cfg.model.services[0];
  ASSERT_EQ(s.rules.size(), 2u);
  EXPECT_TRUE(s.rules[1].client_sets.empty());
  EXPECT_EQ(s.pool_sets[s.rules[1].primary].pools, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(s.rules[1].secondary, snap::kNone);
}

TEST(ConfigSteering, PlainServiceHasNoRules) {
  const LoadedConfig cfg = load_ok(R"(services:
  - name: www.gtm.example.
    ttl: 30
    pools: [{name: a, members: [{address: 192.0.2.1}]}]
)");
  EXPECT_TRUE(cfg.model.services[0].rules.empty());
  EXPECT_TRUE(cfg.model.services[0].use_ecs);
  EXPECT_EQ(cfg.model.ecs_max_v4, 24);
  EXPECT_EQ(cfg.model.ecs_max_v6, 56);
}

TEST(ConfigSteering, EcsLimits) {
  const LoadedConfig cfg = load_ok("options: {ecs_max_prefix_v4: 32, ecs_max_prefix_v6: 64}\n");
  EXPECT_EQ(cfg.model.ecs_max_v4, 32);
  EXPECT_EQ(cfg.model.ecs_max_v6, 64);
  EXPECT_EQ(load_error("options: {ecs_max_prefix_v4: 33}\n"),
            "gtm.yaml:5:30: 'ecs_max_prefix_v4' must be an integer in 1..32, got '33'");
}

// Each bad input: the error and where it points.
struct Bad {
  std::string yaml;
  std::string error;
};

std::string with_service(const std::string& service_keys, const std::string& pool_keys = "") {
  return std::string(kClients) + R"(services:
  - name: www.gtm.example.
    ttl: 30
    pools:
      - name: bj
        datacenter: bj
        members: [{name: b1, address: 192.0.2.1}]
)" + pool_keys +
         R"(      - name: fra
        members: [{name: f1, address: 192.0.2.2}]
)" + service_keys;
}

TEST(ConfigSteering, Errors) {
  const int svc = kZoneLines + 17;  // the line of "services:" in with_service()
  const std::vector<Bad> cases = {
      {"geo: {databases: [{name: a, path: x}, {name: a, path: y}]}\n",
       "gtm.yaml:5:46: duplicate database 'a'"},
      {"regions: [{name: x}]\n",
       "gtm.yaml:5:11: region 'x' needs at least one of 'mmdb', "
       "'cidr', 'cidr_files'"},
      {"regions: [{name: 'a b', cidr: [10.0.0.0/8]}]\n",
       "gtm.yaml:5:18: region name must be 1..63 characters of letters, digits, '-', '_' and '.', "
       "got 'a b'"},
      {"regions: [{name: x, cidr: [10.0.0.0/33]}]\n", ""},
      {"regions: [{name: x, mmdb: {field: country.iso_code, values: [CN]}}]\n",
       "gtm.yaml:5:27: an mmdb match needs a database under 'geo: databases'"},
      {"geo: {databases: [{name: a, path: x}]}\nregions: [{name: x, mmdb: {field: 'a..b', values: "
       "[1]}}]\n",
       "gtm.yaml:6:35: field path 'a..b' has an empty component (write e.g. country.iso_code)"},
      {"regions: [{name: x, cidr: [10.0.0.0/8]}]\nisp_lines: [{name: x, cidr: [11.0.0.0/8]}]\n",
       "gtm.yaml:6:20: duplicate region or ISP line 'x' (regions and ISP lines share one name "
       "space)"},
      {"datacenters: [a, a]\n", "gtm.yaml:5:18: duplicate datacenter 'a'"},
      {"datacenters: [a]\ntopology: [{client: nowhere, datacenter: a, score: 1}]\n",
       "gtm.yaml:6:21: 'client' must be a region, an ISP line or a CIDR block; 'nowhere' is none "
       "of them"},
      {"datacenters: [a]\ntopology: [{client: 10.0.0.0/8, datacenter: b, score: 1}]\n",
       "gtm.yaml:6:45: unknown datacenter 'b'"},
      {"datacenters: [a]\ntopology: [{client: 10.0.0.0/8, datacenter: a, score: 0}]\n",
       "gtm.yaml:6:55: 'score' must be an integer in 1..65535, got '0'"},
      {with_service("    access_policy: [{regions: [mars], primary: bj}]\n"),
       "gtm.yaml:" + std::to_string(svc + 8) + ":32: unknown region or ISP line 'mars'"},
      {with_service("    access_policy: [{primary: bj}, {regions: [cn], primary: fra}]\n"),
       "gtm.yaml:" + std::to_string(svc + 8) +
           ":21: a rule without 'regions' is the default rule and must be the last"},
      {with_service("    access_policy: [{primary: nope}]\n"),
       "gtm.yaml:" + std::to_string(svc + 8) +
           ":31: unknown pool set or pool 'nope' in this "
           "service"},
      {with_service("    access_policy: [{primary: bj, secondary: bj}]\n"),
       "gtm.yaml:" + std::to_string(svc + 8) + ":46: the secondary set is the primary set"},
      {with_service("    pool_sets: {s: [bj, bj]}\n    access_policy: [{primary: s}]\n"),
       "gtm.yaml:" + std::to_string(svc + 8) + ":25: pool 'bj' is listed twice"},
      {with_service("    pool_sets: {s: [bj]}\n"),
       "gtm.yaml:" + std::to_string(svc + 8) +
           ":5: 'pool_sets' are used by 'access_policy' rules, which are missing"},
      {with_service("    switch_policy: {hold_down_s: 5}\n"),
       "gtm.yaml:" + std::to_string(svc + 8) +
           ":21: 'hold_down_s' is only valid with failback: hold-down"},
      {with_service("    switch_policy: {min_percent: 101}\n"),
       "gtm.yaml:" + std::to_string(svc + 8) +
           ":34: 'min_percent' must be an integer in 0..100, got '101'"},
      {with_service("    when_empty: explode\n"),
       "gtm.yaml:" + std::to_string(svc + 8) +
           ":17: 'when_empty' must be one of nodata, servfail, return-all, drop; got 'explode'"},
      {with_service("", "        method: [ratio, ratio]\n"),
       "gtm.yaml:" + std::to_string(svc + 6) + ":25: method 'ratio' appears twice in the chain"},
      {with_service("", "        method: [ratio, topology, random, return-all]\n"),
       "gtm.yaml:" + std::to_string(svc + 6) +
           ":17: 'method' lists at most three methods: preferred, alternate, fallback"},
      {with_service("", "        persistence: {mask_v4: 16}\n"),
       "gtm.yaml:" + std::to_string(svc + 6) +
           ":9: 'persistence' is only valid with method persistence"},
      {with_service("    method: topology\n"),
       "gtm.yaml:" + std::to_string(svc + 8) +
           ":13: method topology needs members with a 'datacenter' (on the pool or the members)"},
      {with_service("", "        members: [{name: x, address: 192.0.2.3, datacenter: mars}]\n"),
       ""},
  };
  for (const Bad& b : cases) {
    const std::string got = load_error(b.yaml);
    if (b.error.empty()) {
      EXPECT_FALSE(got.empty()) << b.yaml;
    } else {
      EXPECT_EQ(got, b.error) << b.yaml;
    }
  }
}

}  // namespace
}  // namespace gtm::control
