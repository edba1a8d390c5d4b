// Traffic steering in the answer engine: client identity (ECS or source address), access-policy
// rules and pool sets, the switch decision, method chains, persistence, all-down actions and the
// ECS SCOPE of the response. Real snapshots (YAML -> model -> [geo tables] -> image -> view) and
// real query packets; responses are decoded by a small independent reader below.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "control/geo/geo_job.h"
#include "dataplane/engine/answer.h"

namespace gtm::engine {
namespace {

const std::string kGeoDir = std::string(GTM_SOURCE_DIR) + "/../shared/geo";

const char* kZone = R"(
zones:
  - name: gtm.example.
    soa: {mname: ns1, rname: hostmaster, serial: 1, minimum: 60}
    ns: [ns1]
    records:
      - {name: ns1, type: A, data: 192.0.2.53}
)";

// ---------------------------------------------------------------------------------------------
// Queries and responses on the wire.

struct Ecs {
  std::string address;  // "175.16.199.0" or "2001:250::"
  uint8_t source = 0;
};

std::vector<uint8_t> make_query(const std::string& dotted, uint16_t qtype,
                                const Ecs* ecs = nullptr) {
  std::vector<uint8_t> q = {0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    q.push_back(static_cast<uint8_t>(dot - start));
    q.insert(q.end(), dotted.begin() + static_cast<long>(start),
             dotted.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  q.push_back(0);
  q.insert(q.end(), {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), 0, 1});
  std::vector<uint8_t> opt;
  if (ecs != nullptr) {
    uint8_t addr[16] = {};
    const bool v6 = ecs->address.find(':') != std::string::npos;
    EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, ecs->address.c_str(), addr), 1);
    const size_t len = (ecs->source + 7u) / 8u;
    opt = {0,           8, 0, static_cast<uint8_t>(4 + len), 0, static_cast<uint8_t>(v6 ? 2 : 1),
           ecs->source, 0};
    opt.insert(opt.end(), addr, addr + len);
  }
  q.insert(q.end(), {0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, static_cast<uint8_t>(opt.size())});
  q.insert(q.end(), opt.begin(), opt.end());
  return q;
}

struct Reply {
  bool dropped = true;
  uint16_t rcode = 0;
  std::vector<std::string> answers;  // A/AAAA addresses, CNAME targets as "cname:"
  bool has_ecs = false;
  uint8_t ecs_source = 0;
  uint8_t ecs_scope = 0;
};

size_t skip_name(const std::vector<uint8_t>& w, size_t p) {
  while (p < w.size()) {
    if (w[p] == 0) return p + 1;
    if ((w[p] & 0xC0) == 0xC0) return p + 2;
    p += 1 + w[p];
  }
  return w.size();
}

Reply decode(const std::vector<uint8_t>& w) {
  Reply r;
  if (w.size() < 12) return r;
  r.dropped = false;
  r.rcode = w[3] & 0xF;
  auto u16 = [&](size_t p) { return static_cast<uint16_t>(w[p] << 8 | w[p + 1]); };
  const uint16_t counts[3] = {u16(6), u16(8), u16(10)};
  size_t p = skip_name(w, 12) + 4;
  for (int sec = 0; sec < 3; ++sec) {
    for (uint16_t i = 0; i < counts[sec] && p < w.size(); ++i) {
      p = skip_name(w, p);
      const uint16_t type = u16(p);
      const uint16_t rdlen = u16(p + 8);
      const size_t rd = p + 10;
      if (sec == 0 && (type == 1 || type == 28)) {
        char text[64];
        inet_ntop(type == 1 ? AF_INET : AF_INET6, &w[rd], text, sizeof(text));
        r.answers.push_back(text);
      } else if (sec == 0 && type == 5) {
        r.answers.push_back("cname");
      } else if (type == 41) {
        for (size_t o = rd; o + 4 <= rd + rdlen;) {
          const uint16_t code = u16(o);
          const uint16_t len = u16(o + 2);
          if (code == 8 && len >= 4) {
            r.has_ecs = true;
            r.ecs_source = w[o + 6];
            r.ecs_scope = w[o + 7];
          }
          o += 4 + len;
        }
      }
      p = rd + rdlen;
    }
  }
  std::sort(r.answers.begin(), r.answers.end());
  return r;
}

ClientAddr source(const std::string& text) {
  ClientAddr c;
  if (inet_pton(AF_INET, text.c_str(), c.addr) == 1) {
    c.family = 4;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), c.addr), 1) << text;
    c.family = 6;
  }
  return c;
}

std::string dump(const Explain& ex) {
  std::string s;
  for (int i = 0; i < ex.count; ++i) s += std::string(ex.lines[i]) + "\n";
  return s;
}
bool has(const Explain& ex, const std::string& needle) {
  return dump(ex).find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------

class Steering : public ::testing::Test {
 protected:
  // Loads `services` (YAML after the zone), compiles its geo tables when it has any, applies
  // `mutate` to the model, builds and validates the image.
  void load(const std::string& yaml,
            const std::function<void(control::SnapshotModel&)>& mutate = nullptr) {
    control::LoadedConfig cfg;
    control::ConfigError err;
    ASSERT_TRUE(
        control::load_config_string(std::string(kZone) + yaml, kGeoDir + "/test.yaml", &cfg, &err))
        << err.to_string();
    if (!cfg.geo.empty()) {
      std::string error;
      ASSERT_TRUE(control::geo::compile_shared(cfg.geo, &cfg.model.geo, &error)) << error;
    }
    if (mutate) mutate(cfg.model);
    model_ = cfg.model;
    std::string error;
    ASSERT_TRUE(control::build_snapshot(cfg.model, &image_, &error)) << error;
    ASSERT_TRUE(view_.validate(image_.data(), image_.size(), &error)) << error;
  }

  Reply ask(const std::string& name, const std::string& from, const Ecs* ecs = nullptr,
            uint16_t qtype = 1, Explain* ex = nullptr) {
    const std::vector<uint8_t> q = make_query(name, qtype, ecs);
    std::vector<uint8_t> out(4096);
    const size_t n = answer_query(&view_, q.data(), q.size(), out.data(), out.size(), source(from),
                                  Transport::kUdp, ws_, ex);
    out.resize(n);
    return decode(out);
  }
  Reply ask_ecs(const std::string& name, const std::string& subnet, uint8_t prefix,
                uint16_t qtype = 1, Explain* ex = nullptr, const std::string& from = "127.0.0.1") {
    const Ecs e{subnet, prefix};
    return ask(name, from, &e, qtype, ex);
  }

  control::SnapshotModel model_;
  std::vector<uint8_t> image_;
  snap::SnapshotView view_;
  WorkerState ws_;
};

void set_mode(control::SnapshotModel& m, const std::string& member, snap::MemberMode mode) {
  int found = 0;
  for (auto& svc : m.services) {
    for (auto& pool : svc.pools) {
      for (auto& mem : pool.members) {
        if (mem.name == member) {
          mem.mode = mode;
          ++found;
        }
      }
    }
  }
  ASSERT_GT(found, 0) << member;
}

// ---------------------------------------------------------------------------------------------
// Pool sets, rules and the switch decision (no geo: every client is in class 0).

const char* kDr = R"(
services:
  - name: dr.gtm.example.
    type: A
    ttl: 30
    pools:
      - {name: main, method: return-all, members: [{name: m1, address: 192.0.2.1}, {name: m2, address: 192.0.2.2}]}
      - {name: backup, members: [{name: b1, address: 198.51.100.1}]}
    access_policy:
      - {primary: main, secondary: backup}
    switch_policy: {min_members: 2}
)";

TEST_F(Steering, PrimarySetAnswersWhileGood) {
  load(kDr);
  Explain ex;
  Reply r = ask("dr.gtm.example", "192.0.2.200", nullptr, 1, &ex);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_TRUE(has(ex, "primary set main active: primary has 2 of 2 members usable")) << dump(ex);
  EXPECT_FALSE(has(ex, "client ")) << "a service without geo or persistence has no client";
}

TEST_F(Steering, SwitchDecisionPutsTheSecondaryFirst) {
  // What control's switch policy writes when the primary is below its minimum (1 of 2 < 2):
  // the secondary answers although the primary still has a usable member.
  load(kDr, [](control::SnapshotModel& m) {
    set_mode(m, "m2", snap::MemberMode::kAlwaysDown);
    m.services[0].rules[0].use_secondary = true;
    m.services[0].rules[0].switch_reason = snap::SwitchReason::kPrimaryBelowMin;
  });
  Explain ex;
  Reply r = ask("dr.gtm.example", "192.0.2.200", nullptr, 1, &ex);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"198.51.100.1"}));
  EXPECT_TRUE(has(ex, "secondary set backup active: primary below its minimum (1 of 2 usable"))
      << dump(ex);
  EXPECT_EQ(ws_.counters.gslb_other_set, 0u);
}

TEST_F(Steering, EmptyActiveSetFallsToTheOtherSet) {
  load(kDr, [](control::SnapshotModel& m) {
    set_mode(m, "b1", snap::MemberMode::kAlwaysDown);
    m.services[0].rules[0].use_secondary = true;
  });
  Explain ex;
  Reply r = ask("dr.gtm.example", "192.0.2.200", nullptr, 1, &ex);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_TRUE(has(ex, "trying the primary set")) << dump(ex);
  EXPECT_EQ(ws_.counters.gslb_other_set, 1u);
}

// ---------------------------------------------------------------------------------------------
// All-down actions.

std::string all_down(const std::string& action) {
  return R"(
services:
  - name: x.gtm.example.
    type: A
    ttl: 30
    when_empty: )" +
         action + R"(
    pools:
      - {name: p1, members: [{name: a, address: 192.0.2.1, mode: always-down}, {name: b, address: 192.0.2.2, mode: always-down}]}
      - {name: p2, members: [{name: c, address: 192.0.2.3, mode: always-down}]}
      - {name: p3, members: [{name: d, address: 192.0.2.4, mode: always-down}]}
    access_policy:
      - {primary: [p1, p2], secondary: p3}
)";
}

TEST_F(Steering, AllDownReturnAllFailsOpenWithThePrimarySet) {
  load(all_down("return-all"));
  Explain ex;
  Reply r = ask("x.gtm.example", "192.0.2.200", nullptr, 1, &ex);
  EXPECT_EQ(r.rcode, 0);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.1", "192.0.2.2", "192.0.2.3"}));
  EXPECT_TRUE(has(ex, "fail open")) << dump(ex);
  EXPECT_EQ(ws_.counters.gslb_fail_open, 1u);
}

TEST_F(Steering, AllDownDropSendsNothingAndCountsItApart) {
  load(all_down("drop"));
  Reply r = ask("x.gtm.example", "192.0.2.200");
  EXPECT_TRUE(r.dropped);
  EXPECT_EQ(ws_.counters.gslb_dropped, 1u);
  EXPECT_EQ(ws_.counters.malformed_dropped, 0u);
  EXPECT_EQ(ws_.counters.responses, 0u);
  EXPECT_EQ(ws_.counters.queries, 1u);
}

TEST_F(Steering, AllDownNodataAndServfail) {
  load(all_down("nodata"));
  Reply r = ask("x.gtm.example", "192.0.2.200");
  EXPECT_EQ(r.rcode, 0);
  EXPECT_TRUE(r.answers.empty());
  load(all_down("servfail"));
  r = ask("x.gtm.example", "192.0.2.200");
  EXPECT_EQ(r.rcode, 2);
}

// ---------------------------------------------------------------------------------------------
// Persistence.

std::string persistence_pool(int n, const std::string& extra = "") {
  std::string yaml = R"(
services:
  - name: p.gtm.example.
    type: A
    ttl: 30
)" + extra + R"(
    pools:
      - name: p
        method: persistence
        members:
)";
  for (int i = 0; i < n; ++i) {
    yaml += "          - {name: m" + std::to_string(i) + ", address: 192.0.2." +
            std::to_string(i + 1) + "}\n";
  }
  return yaml;
}

TEST_F(Steering, PersistenceKeepsAClientPrefixOnOneMember) {
  load(persistence_pool(5));
  const std::string first = ask_ecs("p.gtm.example", "203.0.113.0", 24).answers.at(0);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(ask_ecs("p.gtm.example", "203.0.113.0", 24).answers.at(0), first);
  }
  // Every address of the /24 is the same client for a /24 mask (the default).
  EXPECT_EQ(ask("p.gtm.example", "203.0.113.77").answers.at(0), first);
  EXPECT_EQ(ask("p.gtm.example", "::ffff:203.0.113.9").answers.at(0), first)
      << "an IPv4-mapped source is the IPv4 client";
}

TEST_F(Steering, PersistenceScopeIsTheMaskCutToTheSourcePrefix) {
  load(persistence_pool(5, "    persistence: {mask_v4: 20}\n"));
  Reply r = ask_ecs("p.gtm.example", "203.0.113.0", 24);
  EXPECT_TRUE(r.has_ecs);
  EXPECT_EQ(r.ecs_source, 24);
  EXPECT_EQ(r.ecs_scope, 20);
  r = ask_ecs("p.gtm.example", "203.0.0.0", 16);
  EXPECT_EQ(r.ecs_scope, 16) << "never more bits than the client gave";
  // SOURCE PREFIX-LENGTH 0: the resolver's own address decides, and the answer is for everyone
  // behind it: SCOPE 0.
  r = ask_ecs("p.gtm.example", "0.0.0.0", 0);
  EXPECT_TRUE(r.has_ecs);
  EXPECT_EQ(r.ecs_scope, 0);
  EXPECT_EQ(r.answers.at(0), ask("p.gtm.example", "127.0.0.1").answers.at(0));
}

TEST_F(Steering, EcsSwitchOffUsesTheSourceAndScopeZero) {
  load(persistence_pool(8, "    ecs: false\n"));
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    Reply r = ask_ecs("p.gtm.example", "198.51." + std::to_string(i) + ".0", 24, 1, nullptr,
                      "192.0.2.99");
    EXPECT_EQ(r.ecs_scope, 0);
    seen.insert(r.answers.at(0));
  }
  EXPECT_EQ(seen.size(), 1u) << "one resolver, one member, whatever the ECS says";
}

// Maps `clients` /24 prefixes through the engine.
std::vector<std::string> persisted(Steering* t, const std::vector<uint32_t>& clients,
                                   const std::function<Reply(const std::string&)>& ask) {
  std::vector<std::string> out;
  for (uint32_t c : clients) {
    char text[32];
    snprintf(text, sizeof(text), "%u.%u.%u.0", c >> 24, (c >> 16) & 0xFF, (c >> 8) & 0xFF);
    out.push_back(ask(text).answers.at(0));
  }
  (void)t;
  return out;
}

TEST_F(Steering, PersistenceMovesOnlyTheClientsOfARemovedMember) {
  constexpr int kMembers = 10;
  constexpr int kClients = 20000;
  std::mt19937 rng(7);
  std::vector<uint32_t> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(rng() & 0xFFFFFF00u);
  auto query = [this](const std::string& subnet) { return ask_ecs("p.gtm.example", subnet, 24); };

  load(persistence_pool(kMembers));
  const std::vector<std::string> before = persisted(this, clients, query);
  std::map<std::string, int> share;
  for (const std::string& m : before) ++share[m];
  EXPECT_EQ(share.size(), static_cast<size_t>(kMembers));
  for (const auto& [m, n] : share) {
    EXPECT_NEAR(n, kClients / kMembers, kClients / kMembers * 0.1) << m << " gets a fair share";
  }

  const std::string removed = "192.0.2.4";  // member m3
  load(persistence_pool(kMembers),
       [](control::SnapshotModel& m) { set_mode(m, "m3", snap::MemberMode::kAlwaysDown); });
  const std::vector<std::string> after = persisted(this, clients, query);
  int moved = 0;
  for (int i = 0; i < kClients; ++i) {
    if (before[i] == after[i]) continue;
    ++moved;
    EXPECT_EQ(before[i], removed) << "only the removed member's clients move";
  }
  const double fraction = static_cast<double>(moved) / kClients;
  EXPECT_NEAR(fraction, 1.0 / kMembers, 0.01);
  std::printf("persistence: %d of %d clients moved (%.4f, 1/N = %.4f)\n", moved, kClients, fraction,
              1.0 / kMembers);

  load(persistence_pool(kMembers));
  EXPECT_EQ(persisted(this, clients, query), before) << "adding it back restores every client";
}

TEST_F(Steering, WeightedPersistenceFollowsTheWeights) {
  load(R"(
services:
  - name: p.gtm.example.
    type: A
    ttl: 30
    pools:
      - name: p
        method: persistence
        members:
          - {name: heavy, address: 192.0.2.1, weight: 3}
          - {name: light, address: 192.0.2.2, weight: 1}
)");
  std::mt19937 rng(11);
  int heavy = 0;
  constexpr int kClients = 20000;
  for (int i = 0; i < kClients; ++i) {
    const uint32_t c = rng();
    char text[32];
    snprintf(text, sizeof(text), "%u.%u.%u.0", c >> 24, (c >> 16) & 0xFF, (c >> 8) & 0xFF);
    heavy += ask_ecs("p.gtm.example", text, 24).answers.at(0) == "192.0.2.1" ? 1 : 0;
  }
  EXPECT_NEAR(static_cast<double>(heavy) / kClients, 0.75, 0.015);
}

TEST_F(Steering, PersistenceIsTheSameOnEveryWorker) {
  // The pick is a function of the client and the members only: no per-worker rotation.
  load(persistence_pool(6));
  const std::string first = ask_ecs("p.gtm.example", "100.64.7.0", 24).answers.at(0);
  WorkerState other;
  other.rr_counter = 12345;
  const Ecs e{"100.64.7.0", 24};
  const std::vector<uint8_t> qe = make_query("p.gtm.example", 1, &e);
  std::vector<uint8_t> out(512);
  const size_t n = answer_query(&view_, qe.data(), qe.size(), out.data(), out.size(),
                                source("127.0.0.1"), Transport::kUdp, other);
  out.resize(n);
  EXPECT_EQ(decode(out).answers.at(0), first);
}

// ---------------------------------------------------------------------------------------------
// Rules by region (MaxMind test database) and the SCOPE they give.

const std::string kRegions = R"(
geo:
  databases:
    - {name: country, path: GeoIP2-Country-Test.mmdb}
regions:
  - {name: cn, mmdb: {field: country.iso_code, values: [CN]}}
  - {name: se, mmdb: {field: country.iso_code, values: [SE]}}
  - {name: us, mmdb: {field: country.iso_code, values: [US]}}
services:
  - name: r.gtm.example.
    ttl: 30
    pools:
      - {name: asia, members: [{address: 192.0.2.1}, {address: "2001:db8::1"}]}
      - {name: europe, members: [{address: 192.0.2.2}, {address: "2001:db8::2"}]}
      - {name: america, members: [{address: 192.0.2.3}]}
      - {name: rest, members: [{address: 192.0.2.4}, {address: "2001:db8::4"}]}
    access_policy:
      - {regions: [cn], primary: asia, secondary: rest}
      - {regions: [se], primary: europe, secondary: rest}
      - {regions: [us], primary: america, secondary: rest}
      - {primary: rest}
)";

// The fast path (no explain record) writes the same bytes as the general path for every buffer
// size from the exact response up: it echoes the ECS address as its whole 16-octet field only when
// the buffer has room past the response, and by length otherwise.
TEST_F(Steering, FastPathMatchesTheGeneralPathAtEveryBufferSize) {
  load(kRegions);
  const Ecs subnets[] = {{"175.16.199.0", 24}, {"2001:250:1::", 48}, {"81.2.69.0", 23},
                         {"2001:250::", 31},   {"10.0.0.0", 0},      {"2.125.160.216", 32}};
  for (const Ecs& e : subnets) {
    for (uint16_t qtype : {1, 28}) {
      const std::vector<uint8_t> q = make_query("r.gtm.example", qtype, &e);
      std::vector<uint8_t> general(4096);
      Explain ex;
      WorkerState gws;
      const size_t n = answer_query(&view_, q.data(), q.size(), general.data(), general.size(),
                                    source("127.0.0.1"), Transport::kUdp, gws, &ex);
      ASSERT_GT(n, 0u) << e.address;
      general.resize(n);
      // In place the buffer also holds the query, which may be the longer of the two.
      const size_t smallest = std::max(n, q.size());
      for (size_t cap = smallest; cap <= smallest + 40; ++cap) {
        // In place, as the DPDK lcores answer: the query at the start of a `cap`-octet buffer.
        std::vector<uint8_t> buf(cap, 0xEE);
        std::memcpy(buf.data(), q.data(), q.size());
        WorkerState fws;
        const size_t m = answer_query(&view_, buf.data(), q.size(), buf.data(), buf.size(),
                                      source("127.0.0.1"), Transport::kUdp, fws);
        ASSERT_EQ(m, n) << e.address << " cap " << cap;
        buf.resize(m);
        EXPECT_EQ(buf, general) << e.address << "/" << int{e.source} << " qtype " << qtype
                                << " cap " << cap;
        EXPECT_EQ(fws.counters.responses, gws.counters.responses);
        EXPECT_EQ(fws.rr_counter, gws.rr_counter);
      }
    }
  }
}

// The fast path copies a question of up to 32 octets without a call: every question length
// from the shortest service name here to past that bound, into a separate buffer, as the socket
// backend answers, byte for byte as the general path.
TEST_F(Steering, FastPathCopiesQuestionsOfEveryLength) {
  std::string yaml = "services:\n";
  for (size_t len = 1; len <= 30; ++len) {
    yaml += "  - {name: " + std::string(len, 'q') +
            ".gtm.example., type: A, ttl: 30, pools: [{name: p, members: [{address: 192.0.2." +
            std::to_string(len) + "}]}]}\n";
  }
  load(yaml);
  for (size_t len = 1; len <= 30; ++len) {
    const std::vector<uint8_t> q = make_query(std::string(len, 'Q') + ".gtm.example", 1);
    std::vector<uint8_t> fast(512, 0xEE), general(512, 0xEE);
    Explain ex;
    WorkerState fws, gws;
    const size_t n = answer_query(&view_, q.data(), q.size(), fast.data(), fast.size(),
                                  source("127.0.0.1"), Transport::kUdp, fws);
    const size_t m = answer_query(&view_, q.data(), q.size(), general.data(), general.size(),
                                  source("127.0.0.1"), Transport::kUdp, gws, &ex);
    ASSERT_GT(n, 0u) << len;
    ASSERT_EQ(n, m) << len;
    fast.resize(n);
    general.resize(m);
    EXPECT_EQ(fast, general) << len;
    EXPECT_EQ(decode(fast).answers, (std::vector<std::string>{"192.0.2." + std::to_string(len)}));
  }
}

TEST_F(Steering, RegionRulesDecideAndScopeIsTheClassBlock) {
  load(kRegions);
  Explain ex;
  Reply r = ask_ecs("r.gtm.example", "175.16.199.0", 24, 1, &ex);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.1"}));
  EXPECT_EQ(r.ecs_scope, 24);
  EXPECT_TRUE(has(ex, "client 175.16.199.0/24 (ECS) -> class")) << dump(ex);
  EXPECT_TRUE(has(ex, "region cn; prefix 175.16.199.0/24")) << dump(ex);
  EXPECT_TRUE(has(ex, "rule 1 of 4: matches region cn")) << dump(ex);
  // 214.78.120.0/22 is one US network.
  r = ask_ecs("r.gtm.example", "214.78.121.0", 24);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.3"}));
  EXPECT_EQ(r.ecs_scope, 22);
  // No ECS: the source address decides; a source in no region gets the default rule.
  EXPECT_EQ(ask("r.gtm.example", "175.16.199.7").answers, (std::vector<std::string>{"192.0.2.1"}));
  EXPECT_EQ(ask("r.gtm.example", "10.0.0.1").answers, (std::vector<std::string>{"192.0.2.4"}));
  // IPv6: 2001:250::/31 is CN; an IPv6 client asking for A gets the A of its rule.
  r = ask_ecs("r.gtm.example", "2001:250:1::", 48, 28);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"2001:db8::1"}));
  EXPECT_EQ(r.ecs_scope, 31);
  EXPECT_EQ(ask_ecs("r.gtm.example", "2001:250:1::", 48, 1).answers,
            (std::vector<std::string>{"192.0.2.1"}));
  EXPECT_EQ(ask("r.gtm.example", "2001:250::5", nullptr, 28).answers,
            (std::vector<std::string>{"2001:db8::1"}));
}

TEST_F(Steering, LongestHonouredSourcePrefixIsConfigurable) {
  // 89.160.20.128/25 is SE, 89.160.20.0/25 is not. By default an ECS subnet is cut to /24, so
  // the /25 cannot be told apart: the client is 89.160.20.0/24, not in SE.
  load(kRegions);
  Reply r = ask_ecs("r.gtm.example", "89.160.20.128", 25);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.4"}));
  EXPECT_LE(r.ecs_scope, 24);
  // Honouring up to /32, the /25 is SE.
  load("options: {ecs_max_prefix_v4: 32, ecs_max_prefix_v6: 64}\n" + kRegions);
  r = ask_ecs("r.gtm.example", "89.160.20.128", 25);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.2"}));
  EXPECT_EQ(r.ecs_scope, 25);
}

TEST_F(Steering, AnswerNotDependingOnTheClientHasScopeZero) {
  // One region, but both rules lead to the same set: the builder sees that no class changes the
  // outcome, so nothing about the client decided (explain still names the rule that matched).
  load(R"(
regions:
  - {name: lab, cidr: [198.18.0.0/15]}
services:
  - name: s.gtm.example.
    type: A
    ttl: 30
    pools: [{name: p, members: [{address: 192.0.2.1}]}]
    access_policy:
      - {regions: [lab], primary: p}
      - {primary: p}
)");
  Explain ex;
  EXPECT_EQ(ask_ecs("s.gtm.example", "198.18.0.0", 24, 1, &ex).ecs_scope, 0);
  EXPECT_TRUE(has(ex, "rule 1 of 2: matches region lab")) << dump(ex);
  EXPECT_EQ(ask_ecs("s.gtm.example", "203.0.113.0", 24).ecs_scope, 0);
}

// ---------------------------------------------------------------------------------------------
// Topology with ISP lines (CIDR lists) and scores.

const char* kTopology = R"(
isp_lines:
  - {name: CNC, cidr: [123.112.0.0/12]}
  - {name: TEL, cidr: [180.96.0.0/11]}
datacenters: [cnc, tel, bgp]
topology:
  - {client: CNC, datacenter: cnc, score: 200}
  - {client: TEL, datacenter: tel, score: 200}
  - {client: CNC, datacenter: bgp, score: 100}
  - {client: TEL, datacenter: bgp, score: 100}
  - {client: 180.100.0.0/16, datacenter: cnc, score: 300}
services:
  - name: t.gtm.example.
    type: A
    ttl: 30
    pools:
      - name: p
        method: [topology, global-availability]
        members:
          - {name: c1, address: 192.0.2.1, datacenter: cnc}
          - {name: c2, address: 192.0.2.2, datacenter: cnc}
          - {name: t1, address: 192.0.2.3, datacenter: tel}
          - {name: g1, address: 192.0.2.4, datacenter: bgp}
)";

TEST_F(Steering, TopologyPicksTheBestScoredDatacenterAndRotatesTies) {
  load(kTopology);
  Explain ex;
  Reply r = ask_ecs("t.gtm.example", "180.96.1.0", 24, 1, &ex);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.3"}));
  // TEL is a /11, but the /16 record inside it makes 180.96.0.0/14 the widest block where the
  // client's class (and so the answer) stays the same.
  EXPECT_EQ(r.ecs_scope, 14);
  EXPECT_TRUE(has(ex, "isp-line TEL")) << dump(ex);
  EXPECT_TRUE(has(ex, "topology: datacenter tel, score 200, 1 usable member(s)")) << dump(ex);
  // CNC: two members in the best datacenter take turns.
  std::set<std::string> seen;
  for (int i = 0; i < 4; ++i)
    seen.insert(ask_ecs("t.gtm.example", "123.112.9.0", 24).answers.at(0));
  EXPECT_EQ(seen, (std::set<std::string>{"192.0.2.1", "192.0.2.2"}));
  // A longer topology record inside TEL wins for its block: cnc, score 300.
  Reply inner = ask_ecs("t.gtm.example", "180.100.3.0", 24);
  EXPECT_TRUE(inner.answers.at(0) == "192.0.2.1" || inner.answers.at(0) == "192.0.2.2")
      << inner.answers.at(0);
  EXPECT_EQ(inner.ecs_scope, 16);
  // A client scored nowhere: the alternate method answers.
  Explain other;
  r = ask_ecs("t.gtm.example", "8.8.8.0", 24, 1, &other);
  EXPECT_EQ(r.answers, (std::vector<std::string>{"192.0.2.1"}));
  EXPECT_TRUE(has(other, "topology cannot pick")) << dump(other);
  EXPECT_GT(r.ecs_scope, 0) << "that nothing scores this client is a fact about the client";
}

TEST_F(Steering, TopologySkipsADatacenterWithNothingUsable) {
  load(kTopology,
       [](control::SnapshotModel& m) { set_mode(m, "t1", snap::MemberMode::kAlwaysDown); });
  EXPECT_EQ(ask_ecs("t.gtm.example", "180.96.1.0", 24).answers,
            (std::vector<std::string>{"192.0.2.4"}))
      << "TEL's own datacenter is down: its second choice, bgp";
}

// ---------------------------------------------------------------------------------------------
// The pick table (format.h PickEntry): the fast path reads the chain's decision for the client's
// class from one entry. The general path (an explain record) still walks the chain: the two must
// agree byte for byte, in counters and in rotation, for every class and turn.

const char* kPicks = R"(
regions:
  - {name: cn, cidr: [10.1.0.0/16, "2001:db8:1::/48"]}
  - {name: eu, cidr: [10.2.0.0/16, "2001:db8:2::/48"]}
  - {name: lab, cidr: [10.3.0.0/16]}
isp_lines:
  - {name: tel, cidr: [10.1.128.0/17, 10.4.0.0/16]}
datacenters: [bj, sh, fra, lon]
topology:
  - {client: tel, datacenter: bj, score: 200}
  - {client: cn, datacenter: sh, score: 100}
  - {client: eu, datacenter: fra, score: 100}
  - {client: eu, datacenter: lon, score: 50}
  - {client: 10.2.7.0/24, datacenter: lon, score: 300}
services:
  - name: geo.gtm.example.
    ttl: 30
    pools:
      - name: china
        method: [topology, round-robin]
        members:
          - {name: bj1, address: 192.0.2.1, datacenter: bj}
          - {name: bj2, address: 192.0.2.2, datacenter: bj}
          - {name: sh1, address: 192.0.2.3, datacenter: sh}
          - {name: bj6, address: "2001:db8::1", datacenter: bj}
          - {name: sh6, address: "2001:db8::3", datacenter: sh}
      - name: world
        method: [topology, ratio]
        members:
          - {name: fra1, address: 198.51.100.1, datacenter: fra, weight: 2}
          - {name: fra2, address: 198.51.100.2, datacenter: fra}
          - {name: lon1, address: 198.51.100.3, datacenter: lon}
          - {name: fra6, address: "2001:db8::11", datacenter: fra}
    access_policy:
      - {regions: [cn, tel], primary: china, secondary: world}
      - {primary: world, secondary: china}
  - name: mix.gtm.example.
    type: A
    ttl: 30
    pools:
      - {name: n, method: return-n, count: 2, members: [{address: 192.0.2.40}, {address: 192.0.2.41}, {address: 192.0.2.42}]}
      - {name: all, method: return-all, members: [{address: 192.0.2.50}, {address: 192.0.2.51}]}
      - {name: ga, method: global-availability, members: [{address: 192.0.2.60, mode: always-down}, {address: 192.0.2.61}]}
      - {name: rnd, method: random, members: [{address: 192.0.2.70}, {address: 192.0.2.71}]}
      - {name: sticky, method: persistence, members: [{address: 192.0.2.80}, {address: 192.0.2.81}]}
      - {name: down, members: [{address: 192.0.2.90, mode: always-down}]}
    access_policy:
      - {regions: [cn], primary: n}
      - {regions: [eu], primary: all}
      - {regions: [lab], primary: [down, ga]}
      - {regions: [tel], primary: rnd}
      - {primary: sticky}
)";

// Clients of every class above (regions, the ISP line inside cn and outside it, the /24 topology
// record, nothing), by ECS of several lengths, SOURCE PREFIX-LENGTH 0, and by source address.
const Ecs kPickClients[] = {
    {"10.1.1.0", 24},     {"10.1.200.0", 24}, {"10.2.1.0", 24},       {"10.2.7.0", 24},
    {"10.2.7.0", 20},     {"10.3.9.0", 24},   {"10.4.1.0", 24},       {"10.9.9.0", 24},
    {"10.1.0.0", 12},     {"10.2.0.0", 0},    {"2001:db8:1:5::", 56}, {"2001:db8:2::", 48},
    {"2001:db8:9::", 48}, {"2001:db8::", 16},
};

// Asks `q` through the general path (explain) and the fast path from the same worker state:
// the same bytes, counters and rotation. Returns the fast path's reply and leaves ws_ advanced.
Reply same_on_both_paths(const snap::SnapshotView& view, const std::vector<uint8_t>& q,
                         const ClientAddr& from, WorkerState* ws, const std::string& what) {
  std::vector<uint8_t> general(1232), fast(1232);
  WorkerState gws = *ws;
  Explain ex;
  const size_t n = answer_query(&view, q.data(), q.size(), general.data(), general.size(), from,
                                Transport::kUdp, gws, &ex);
  const size_t m =
      answer_query(&view, q.data(), q.size(), fast.data(), fast.size(), from, Transport::kUdp, *ws);
  general.resize(n);
  fast.resize(m);
  EXPECT_EQ(fast, general) << what << "\n" << dump(ex);
  EXPECT_EQ(ws->rr_counter, gws.rr_counter) << what;
  EXPECT_EQ(ws->rng, gws.rng) << what;
  EXPECT_EQ(std::memcmp(&ws->counters, &gws.counters, sizeof(gws.counters)), 0) << what;
  return decode(fast);
}

TEST_F(Steering, PickTableAnswersAsTheChainForEveryClassAndTurn) {
  load(kPicks);
  // The table holds flat entries, both class-dependent and not, and entries left to the chain
  // (random, persistence).
  uint32_t flat = 0, scoped = 0, chain = 0;
  for (uint32_t s = 0; s < view_.service_count(); ++s) {
    const snap::Service& svc = view_.services()[s];
    ASSERT_NE(svc.pick_table, snap::kNone) << "every A/AAAA service here has a table";
    for (uint32_t c = 0; c < view_.class_count(); ++c) {
      const snap::PickEntry& e = view_.pick_table()[svc.pick_table + c];
      flat += e.slot_count != 0;
      scoped += (e.meta & snap::kPickScopeClass) != 0;
      chain += e.slot_count == 0;
    }
  }
  EXPECT_GT(flat, 0u);
  EXPECT_GT(scoped, 0u);
  EXPECT_GT(chain, 0u);
  std::set<uint8_t> scopes;
  for (const char* name : {"geo.gtm.example", "mix.gtm.example"}) {
    for (uint16_t qtype : {1, 28}) {
      for (const Ecs& e : kPickClients) {
        const std::vector<uint8_t> q = make_query(name, qtype, &e);
        for (int turn = 0; turn < 7; ++turn) {
          const Reply r =
              same_on_both_paths(view_, q, source("127.0.0.1"), &ws_,
                                 std::string(name) + " " + e.address + "/" +
                                     std::to_string(e.source) + " turn " + std::to_string(turn));
          scopes.insert(r.ecs_scope);
        }
      }
      for (const char* from : {"10.1.1.1", "10.2.7.9", "10.4.0.1", "2001:db8:1::1", "192.0.2.1"}) {
        const std::vector<uint8_t> q = make_query(name, qtype);
        for (int turn = 0; turn < 3; ++turn) {
          same_on_both_paths(view_, q, source(from), &ws_, std::string(name) + " from " + from);
        }
      }
    }
  }
  EXPECT_GT(scopes.size(), 2u) << "scopes 0, the class blocks and the /24 record's";
}

// The fast path answers from the table, not from the chain: an entry patched after validation
// (the view reads the image in place) changes the fast answer and not the general one.
TEST_F(Steering, FastPathReadsThePickTable) {
  load(kPicks);
  const Ecs eu{"10.2.1.0", 24};
  const std::vector<uint8_t> q = make_query("geo.gtm.example", 1, &eu);
  WorkerState ws;
  const Reply before = same_on_both_paths(view_, q, source("127.0.0.1"), &ws, "before");
  ASSERT_EQ(before.answers.size(), 1u);
  EXPECT_EQ(before.answers[0].rfind("198.51.100.", 0), 0u) << "eu: the world pool, fra";
  const snap::Service& svc =
      view_.services()
          [view_
               .rrsets()[view_
                             .nodes()[view_.find_node(
                                 reinterpret_cast<const uint8_t*>("\3geo\3gtm\7example"), 17)]
                             .rrset_first]
               .rdata_first];
  const uint32_t cls = view_.lpm4().lookup(0x0A020100u).value;
  snap::PickEntry& e = const_cast<snap::PickEntry&>(view_.pick_table()[svc.pick_table + cls]);
  ASSERT_NE(e.slot_count, 0u);
  // Point it at the china pool's usable list, first member only.
  e.slot_first = view_.pools()[svc.pool_first].usable_first;
  e.slot_count = 1;
  e.meta = 1;
  std::vector<uint8_t> out(512);
  WorkerState fast;
  const size_t n = answer_query(&view_, q.data(), q.size(), out.data(), out.size(),
                                source("127.0.0.1"), Transport::kUdp, fast);
  out.resize(n);
  EXPECT_EQ(decode(out).answers, (std::vector<std::string>{"192.0.2.1"}));
  Explain ex;
  WorkerState general;
  std::vector<uint8_t> out2(512);
  out2.resize(answer_query(&view_, q.data(), q.size(), out2.data(), out2.size(),
                           source("127.0.0.1"), Transport::kUdp, general, &ex));
  EXPECT_EQ(decode(out2).answers.at(0).rfind("198.51.100.", 0), 0u);
}

// Health decides the entries: a datacenter going down moves its classes to the next best one in
// the table, as in the chain.
TEST_F(Steering, PickTableFollowsHealth) {
  load(kPicks, [](control::SnapshotModel& m) {
    set_mode(m, "fra1", snap::MemberMode::kAlwaysDown);
    set_mode(m, "fra2", snap::MemberMode::kAlwaysDown);
  });
  const Ecs eu{"10.2.1.0", 24};
  const Reply r = same_on_both_paths(view_, make_query("geo.gtm.example", 1, &eu),
                                     source("127.0.0.1"), &ws_, "fra down");
  EXPECT_EQ(r.answers, (std::vector<std::string>{"198.51.100.3"})) << "eu's second choice: lon";
  // eu is 10.2.0.0/16 less the /24 topology record: 10.2.0.0/22 is the client's class block.
  EXPECT_EQ(r.ecs_scope, 22);
}

// The table is bounded (kMaxPickEntries, 2^14 entries, in the builder): services past it keep no
// table and are answered by the chain, as alike on both paths. 100 disjoint regions make 101
// classes, so 700 steered services need 70,700 entries: most do not fit.
TEST_F(Steering, ServicesPastThePickTableCapAreAnsweredByTheChain) {
  std::string yaml = "regions:\n";
  for (int r = 0; r < 100; ++r) {
    yaml += "  - {name: r" + std::to_string(r) + ", cidr: [10." + std::to_string(r) + ".0.0/16]}\n";
  }
  yaml += "services:\n";
  constexpr int kServices = 700;
  for (int s = 0; s < kServices; ++s) {
    yaml += "  - {name: s" + std::to_string(s) +
            ".gtm.example., type: A, ttl: 30, pools: [{name: a, members: [{address: 192.0.2.1}]}, "
            "{name: b, members: [{address: 192.0.2.2}]}], access_policy: [{regions: [r" +
            std::to_string(s % 100) + "], primary: a}, {primary: b}]}\n";
  }
  load(yaml);
  ASSERT_EQ(view_.class_count(), 101u);
  uint32_t with_table = 0;
  for (uint32_t s = 0; s < view_.service_count(); ++s) {
    with_table += view_.services()[s].pick_table != snap::kNone;
  }
  EXPECT_EQ(with_table, (1u << 14) / 101) << "as many services as fit, the others none";
  EXPECT_LT(with_table, static_cast<uint32_t>(kServices));
  for (const int s : {0, kServices - 1}) {
    const std::string name = "s" + std::to_string(s) + ".gtm.example";
    const Ecs in{"10." + std::to_string(s % 100) + ".1.0", 24};
    const Ecs out{"10.200.1.0", 24};
    EXPECT_EQ(same_on_both_paths(view_, make_query(name, 1, &in), source("127.0.0.1"), &ws_, name)
                  .answers,
              (std::vector<std::string>{"192.0.2.1"}));
    EXPECT_EQ(same_on_both_paths(view_, make_query(name, 1, &out), source("127.0.0.1"), &ws_, name)
                  .answers,
              (std::vector<std::string>{"192.0.2.2"}));
  }
}

}  // namespace
}  // namespace gtm::engine
