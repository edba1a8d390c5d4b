// Geo tables at full scale: compiling the full-scale country database (../shared/geo/full) and
// one LPM lookup per query against the result. The configuration is one region per country the
// database holds (field `country_code`) plus two CIDR sets, one of them an ISP line with
// topology records.
//
//   BM_geo_compile_full      compile_geo() of the whole configuration (ms per compilation)
//   BM_lpm_lookup_v4         IPv4 addresses uniformly random over the whole space
//   BM_lpm_lookup_v6         IPv6 addresses uniformly random over 2000::/3 (global unicast)
//   BM_lpm_lookup_v6_covered IPv6 addresses uniformly random over the space the database covers
//                            (a network is picked with probability in proportion to its size)
//   BM_lpm_lookup_v6_networks, BM_lpm_lookup_v4_networks
//                            every network of the database equally likely, a random address in
//                            it: the stress case (dense regions, deep trie paths, cache misses)
//   BM_lpm_validate          both Lpm*View::validate() calls, as every snapshot load does
//
// The database path can be overridden with GTM_GEO_FULL_DB.
#include <benchmark/benchmark.h>
#include <maxminddb.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench/db_networks.h"
#include "control/geo/geo_compiler.h"
#include "control/geo/lpm_builder.h"
#include "dataplane/geo/lpm.h"

namespace {

namespace geo = gtm::control::geo;
using geo::u128;

std::string db_path() {
  return gtm::bench::full_db_path(GTM_SOURCE_DIR);
}

using Network = gtm::bench::DbNetwork;

struct Fixture {
  bool ok = false;
  std::string error;
  geo::GeoConfig config;
  geo::CompiledGeo compiled;
  gtm::geo::Lpm4View v4;
  gtm::geo::Lpm6View v6;
  std::vector<uint32_t> uniform4, networks4;
  std::vector<std::array<uint8_t, 16>> uniform6, covered6, networks6;

  Fixture() {
    MMDB_s db;
    if (MMDB_open(db_path().c_str(), MMDB_MODE_MMAP, &db) != MMDB_SUCCESS) {
      error = db_path() + ": cannot open";
      return;
    }
    std::vector<Network> nets;
    gtm::bench::walk_db(db, 0, 0, 0, &nets);
    std::set<std::string> countries;
    std::set<uint32_t> seen;
    for (const Network& n : nets) {
      if (!seen.insert(n.offset).second) continue;
      MMDB_entry_s e{&db, n.offset};
      MMDB_entry_data_s d;
      if (MMDB_get_value(&e, &d, "country_code", nullptr) == MMDB_SUCCESS && d.has_data &&
          d.type == MMDB_DATA_TYPE_UTF8_STRING) {
        countries.emplace(d.utf8_string, d.data_size);
      }
    }
    MMDB_close(&db);

    config.databases.push_back({"country", db_path(), "bench"});
    for (const std::string& c : countries) {
      geo::ClientSetDef s;
      s.name = c;
      s.mmdb.push_back({"country", {"country_code"}, {c}, "bench"});
      config.sets.push_back(std::move(s));
    }
    geo::ClientSetDef corp, line;
    corp.name = "corp";
    line.name = "line-telco";
    line.kind = geo::ClientSetDef::Kind::kIspLine;
    geo::Cidr c;
    for (const char* text : {"10.0.0.0/8", "172.16.0.0/12", "2001:db8::/32"}) {
      geo::parse_cidr(text, &c, &error);
      corp.cidrs.push_back(c);
    }
    for (int i = 0; i < 64; ++i) {
      geo::parse_cidr("100." + std::to_string(64 + i) + ".0.0/16", &c, &error);
      line.cidrs.push_back(c);
    }
    config.sets.push_back(corp);
    config.sets.push_back(line);
    config.datacenters = {"east", "west"};
    for (uint32_t dc = 0; dc < 2; ++dc) {
      geo::TopologyRecord r;
      r.set = static_cast<uint32_t>(config.sets.size() - 1);
      r.datacenter = dc;
      r.score = static_cast<uint16_t>(100 + dc);
      config.topology.push_back(r);
    }
    if (!geo::compile_geo(config, &compiled, &error) ||
        !v4.validate(compiled.lpm4.data(), compiled.lpm4.size(), compiled.class_count, &error) ||
        !v6.validate(compiled.lpm6.data(), compiled.lpm6.size(), compiled.class_count, &error)) {
      return;
    }

    std::mt19937_64 rng(42);
    constexpr size_t kAddrs = 1 << 20;
    std::vector<Network> nets4, nets6;
    for (const Network& n : nets)
      ((n.prefix >> 32) == 0 && n.len >= 96 ? nets4 : nets6).push_back(n);
    auto random_in = [&rng](const Network& n) {
      const u128 r = (u128{rng()} << 64) | rng();
      return n.len >= 128 ? n.prefix : n.prefix | (r & ((u128{1} << (128 - n.len)) - 1));
    };
    std::vector<double> sizes;
    for (const Network& n : nets6) sizes.push_back(std::ldexp(1.0, 64 - n.len));
    std::discrete_distribution<size_t> by_size(sizes.begin(), sizes.end());
    for (size_t i = 0; i < kAddrs; ++i) {
      uniform4.push_back(static_cast<uint32_t>(rng()));
      networks4.push_back(static_cast<uint32_t>(random_in(nets4[rng() % nets4.size()])));
      std::array<uint8_t, 16> a;
      geo::key6_to_bytes((u128{1} << 125) | (((u128{rng()} << 64) | rng()) >> 3), a.data());
      uniform6.push_back(a);
      geo::key6_to_bytes(random_in(nets6[rng() % nets6.size()]), a.data());
      networks6.push_back(a);
      geo::key6_to_bytes(random_in(nets6[by_size(rng)]), a.data());
      covered6.push_back(a);
    }
    ok = true;
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

void counters(benchmark::State& state, const geo::CompiledGeo& g) {
  state.counters["networks"] = static_cast<double>(g.networks_read);
  state.counters["classes"] = g.class_count;
  state.counters["ranges4"] = static_cast<double>(g.lpm4_entries);
  state.counters["ranges6"] = static_cast<double>(g.lpm6_entries);
  state.counters["bytes4"] = static_cast<double>(g.lpm4.size());
  state.counters["bytes6"] = static_cast<double>(g.lpm6.size());
}

void BM_geo_compile_full(benchmark::State& state) {
  const Fixture& f = fixture();
  if (!f.ok) return state.SkipWithError(f.error.c_str());
  geo::CompiledGeo out;
  std::string error;
  for (auto _ : state) {
    if (!geo::compile_geo(f.config, &out, &error)) return state.SkipWithError(error.c_str());
  }
  counters(state, out);
}
BENCHMARK(BM_geo_compile_full)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

template <class Addrs, class Lookup>
void run_lookups(benchmark::State& state, const Addrs& addrs, Lookup lookup) {
  const Fixture& f = fixture();
  if (!f.ok) return state.SkipWithError(f.error.c_str());
  const size_t mask = addrs.size() - 1;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(lookup(addrs[i & mask]));
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  counters(state, f.compiled);
}

void BM_lpm_lookup_v4(benchmark::State& state) {
  run_lookups(state, fixture().uniform4, [](uint32_t a) { return fixture().v4.lookup(a); });
}
void BM_lpm_lookup_v6(benchmark::State& state) {
  run_lookups(state, fixture().uniform6,
              [](const std::array<uint8_t, 16>& a) { return fixture().v6.lookup(a.data()); });
}
void BM_lpm_lookup_v6_covered(benchmark::State& state) {
  run_lookups(state, fixture().covered6,
              [](const std::array<uint8_t, 16>& a) { return fixture().v6.lookup(a.data()); });
}
void BM_lpm_lookup_v4_networks(benchmark::State& state) {
  run_lookups(state, fixture().networks4, [](uint32_t a) { return fixture().v4.lookup(a); });
}
void BM_lpm_lookup_v6_networks(benchmark::State& state) {
  run_lookups(state, fixture().networks6,
              [](const std::array<uint8_t, 16>& a) { return fixture().v6.lookup(a.data()); });
}
BENCHMARK(BM_lpm_lookup_v4);
BENCHMARK(BM_lpm_lookup_v6);
BENCHMARK(BM_lpm_lookup_v6_covered);
BENCHMARK(BM_lpm_lookup_v4_networks);
BENCHMARK(BM_lpm_lookup_v6_networks);

void BM_lpm_validate(benchmark::State& state) {
  const Fixture& f = fixture();
  if (!f.ok) return state.SkipWithError(f.error.c_str());
  const geo::CompiledGeo& g = f.compiled;
  std::string error;
  for (auto _ : state) {
    gtm::geo::Lpm4View v4;
    gtm::geo::Lpm6View v6;
    if (!v4.validate(g.lpm4.data(), g.lpm4.size(), g.class_count, &error) ||
        !v6.validate(g.lpm6.data(), g.lpm6.size(), g.class_count, &error)) {
      return state.SkipWithError(error.c_str());
    }
  }
  counters(state, g);
}
BENCHMARK(BM_lpm_validate)->Unit(benchmark::kMillisecond);

}  // namespace
