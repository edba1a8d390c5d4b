// Per-query cost of the answer engine (parse + answer + write), one core, pre-built query packets.
//
// Each benchmark answers the same query repeatedly; items_per_second is queries per second and
// the reported time per iteration is ns per query. "_inplace" variants write the response over the
// query buffer, as the DPDK path does.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_queries.h"
#include "bench/db_networks.h"
#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "control/geo/geo_job.h"
#include "dataplane/engine/answer.h"
#include "dataplane/geo/lpm.h"

namespace {

const char* kYaml = R"(
zones:
  - name: gtm.example.
    soa:
      mname: ns1.gtm.example.
      rname: hostmaster.gtm.example.
      serial: 1
      minimum: 60
      ttl: 3600
    ns: [ns1.gtm.example., ns2.gtm.example.]
    records:
      - {name: ns1, type: A, data: 192.0.2.53}
      - {name: ns2, type: A, data: 192.0.2.54}
      - {name: static, type: A, data: 192.0.2.1}
      - {name: mail, type: A, data: 192.0.2.25}
      - {name: "@", type: MX, data: "10 mail"}
services:
  - name: www.gtm.example.
    type: A
    ttl: 30
    pools:
      - name: site-a
        method: ratio
        members:
          - {name: a1, address: 192.0.2.10, weight: 3}
          - {name: a2, address: 192.0.2.11, weight: 1}
      - name: site-b
        method: round-robin
        members:
          - {name: b1, address: 198.51.100.10}
  - name: rr.gtm.example.
    type: A
    ttl: 30
    pools:
      - name: p
        method: round-robin
        members:
          - {name: m1, address: 192.0.2.21}
          - {name: m2, address: 192.0.2.22}
          - {name: m3, address: 192.0.2.23}
)";

// Steering: regions from MaxMind's test database, an access policy, and topology inside the
// chosen pool (examples/geo holds the database).
const std::string kSteeringYaml = R"(
geo:
  databases:
    - {name: country, path: GeoIP2-Country-Test.mmdb}
regions:
  - {name: cn, mmdb: {field: country.iso_code, values: [CN]}}
  - {name: eu, mmdb: {field: continent.code, values: [EU]}}
isp_lines:
  - {name: CNC, cidr: [175.16.0.0/16, 123.112.0.0/12]}
datacenters: [bj, sh, fra]
topology:
  - {client: CNC, datacenter: bj, score: 200}
  - {client: cn, datacenter: sh, score: 100}
  - {client: eu, datacenter: fra, score: 100}
services:
  - name: geo.gtm.example.
    type: A
    ttl: 30
    pools:
      - name: china
        method: [topology, round-robin]
        members:
          - {name: bj1, address: 203.0.113.1, datacenter: bj}
          - {name: bj2, address: 203.0.113.2, datacenter: bj}
          - {name: sh1, address: 203.0.113.3, datacenter: sh}
      - name: world
        members: [{name: fra1, address: 198.51.100.1, datacenter: fra}]
    access_policy:
      - {regions: [cn], primary: china, secondary: world}
      - {primary: world, secondary: china}
  - name: sticky.gtm.example.
    type: A
    ttl: 30
    pools:
      - name: p
        method: persistence
        members:
          - {name: m1, address: 192.0.2.31}
          - {name: m2, address: 192.0.2.32}
          - {name: m3, address: 192.0.2.33}
          - {name: m4, address: 192.0.2.34}
)";

struct Snapshot {
  std::vector<uint8_t> image;
  gtm::snap::SnapshotView view;
  Snapshot() {
    gtm::control::LoadedConfig cfg;
    gtm::control::ConfigError err;
    std::string error;
    const std::string yaml = kYaml + kSteeringYaml.substr(kSteeringYaml.find("services:") + 10);
    const std::string head = kSteeringYaml.substr(0, kSteeringYaml.find("services:"));
    if (!gtm::control::load_config_string(head + yaml, GTM_SOURCE_DIR "/examples/geo/bench.yaml",
                                          &cfg, &err) ||
        !gtm::control::geo::compile_shared(cfg.geo, &cfg.model.geo, &error) ||
        !gtm::control::build_snapshot(cfg.model, &image, &error) ||
        !view.validate(image.data(), image.size(), &error)) {
      fprintf(stderr, "bench snapshot: %s %s\n", err.to_string().c_str(), error.c_str());
      abort();
    }
  }
};

const Snapshot& snapshot() {
  static const Snapshot s;
  return s;
}

// A query as a stub resolver sends it: RD set, optionally EDNS (payload 1232) with ECS /24 of
// `subnet` (198.51.100.0 unless given).
std::vector<uint8_t> make_query(const char* dotted, uint16_t qtype, bool edns, bool ecs,
                                const uint8_t* subnet = nullptr) {
  static const uint8_t kEcsNet[3] = {198, 51, 100};
  return gtm::bench::make_query(dotted, qtype, edns,
                                ecs ? (subnet != nullptr ? subnet : kEcsNet) : nullptr);
}

// Answers `queries` in turn against `view`.
void run_queries(benchmark::State& state, const gtm::snap::SnapshotView& view,
                 const std::vector<std::vector<uint8_t>>& queries, bool in_place) {
  gtm::engine::WorkerState ws;
  const gtm::engine::ClientAddr client{};
  alignas(64) uint8_t out[2048];
  alignas(64) uint8_t buf[2048];
  size_t total = 0, i = 0;
  for (auto _ : state) {
    const std::vector<uint8_t>& query = queries[i];
    i = i + 1 == queries.size() ? 0 : i + 1;
    size_t n;
    if (in_place) {
      memcpy(buf, query.data(), query.size());
      n = gtm::engine::answer_query(&view, buf, query.size(), buf, sizeof(buf), client,
                                    gtm::engine::Transport::kUdp, ws);
    } else {
      n = gtm::engine::answer_query(&view, query.data(), query.size(), out, sizeof(out), client,
                                    gtm::engine::Transport::kUdp, ws);
    }
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
    total += n;
  }
  if (total == 0 || ws.counters.responses != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("engine did not answer");
  }
  state.SetItemsProcessed(state.iterations());
}

void run(benchmark::State& state, const std::vector<uint8_t>& query, bool in_place) {
  run_queries(state, snapshot().view, {query}, in_place);
}

void BM_static_a(benchmark::State& s) {
  run(s, make_query("static.gtm.example", 1, false, false), false);
}
void BM_static_a_inplace(benchmark::State& s) {
  run(s, make_query("static.gtm.example", 1, false, false), true);
}
void BM_static_a_edns(benchmark::State& s) {
  run(s, make_query("static.gtm.example", 1, true, false), false);
}
void BM_static_a_ecs(benchmark::State& s) {
  run(s, make_query("static.gtm.example", 1, true, true), false);
}
void BM_gslb_weighted(benchmark::State& s) {
  run(s, make_query("www.gtm.example", 1, false, false), false);
}
void BM_gslb_weighted_inplace(benchmark::State& s) {
  run(s, make_query("www.gtm.example", 1, false, false), true);
}
void BM_gslb_round_robin(benchmark::State& s) {
  run(s, make_query("rr.gtm.example", 1, false, false), false);
}
void BM_nxdomain(benchmark::State& s) {
  run(s, make_query("nothere.gtm.example", 1, false, false), false);
}
void BM_mx_with_edns(benchmark::State& s) {
  run(s, make_query("gtm.example", 15, true, false), false);
}
// Parse + geo LPM lookup (ECS 175.16.199.0/24: CN, ISP line CNC) + access-policy rule + topology
// pick + answer with the ECS option and its scope.
void BM_topology_ecs(benchmark::State& s) {
  static constexpr uint8_t kChina[3] = {175, 16, 199};
  run(s, make_query("geo.gtm.example", 1, true, true, kChina), false);
}
// The same query written over itself, as the DPDK path does.
void BM_topology_ecs_inplace(benchmark::State& s) {
  static constexpr uint8_t kChina[3] = {175, 16, 199};
  run(s, make_query("geo.gtm.example", 1, true, true, kChina), true);
}
// The same for an IPv6 client: ECS 2001:250::/56 (CN in MaxMind's test database), the IPv6 table.
void BM_topology_ecs_v6(benchmark::State& s) {
  gtm::bench::EcsSubnet subnet;
  gtm::bench::parse_subnet("2001:250::/56", &subnet);
  run(s, gtm::bench::make_query_subnet("geo.gtm.example", 1, true, &subnet, 0x1234), false);
}
// Rendezvous over four members for the ECS /24.
void BM_persistence_ecs(benchmark::State& s) {
  run(s, make_query("sticky.gtm.example", 1, true, true), false);
}

// Topology+ECS with the geo tables of the full-scale country database
// (bench/configs/topology_ecs_full.yaml) and ECS subnets drawn from its networks
// (bench/db_networks.h), one query per subnet, answered in turn: the LPM lookup of real tables.
struct FullDbCase {
  std::vector<uint8_t> image;
  gtm::snap::SnapshotView view;
  std::vector<gtm::bench::EcsSubnet> subnets;
  std::shared_ptr<const gtm::control::geo::CompiledGeo> geo;
  gtm::geo::Lpm4View lpm4;
  gtm::geo::Lpm6View lpm6;
  FullDbCase() {
    gtm::control::LoadedConfig cfg;
    gtm::control::ConfigError err;
    std::string error;
    subnets = gtm::bench::db_ecs_subnets(gtm::bench::full_db_path(GTM_SOURCE_DIR), 1024);
    if (subnets.empty() ||
        !gtm::control::load_config_file(GTM_SOURCE_DIR "/bench/configs/topology_ecs_full.yaml",
                                        &cfg, &err) ||
        !gtm::control::geo::compile_shared(cfg.geo, &cfg.model.geo, &error) ||
        !gtm::control::build_snapshot(cfg.model, &image, &error) ||
        !view.validate(image.data(), image.size(), &error)) {
      fprintf(stderr, "full-database bench snapshot: %s %s\n", err.to_string().c_str(),
              error.c_str());
      abort();
    }
    geo = cfg.model.geo;
    if (!lpm4.validate(geo->lpm4.data(), geo->lpm4.size(), geo->class_count, &error) ||
        !lpm6.validate(geo->lpm6.data(), geo->lpm6.size(), geo->class_count, &error)) {
      fprintf(stderr, "full-database LPM tables: %s\n", error.c_str());
      abort();
    }
  }
};

const FullDbCase& full_db_case() {
  static const FullDbCase c;
  return c;
}

// `family` 0: every subnet; 4 or 6: that family's only.
void run_full_db(benchmark::State& state, uint8_t family) {
  const FullDbCase& c = full_db_case();
  std::vector<std::vector<uint8_t>> queries;
  for (const gtm::bench::EcsSubnet& s : c.subnets) {
    if (family == 0 || s.family == family) {
      queries.push_back(gtm::bench::make_query_subnet("geo.gtm.example", 1, true, &s, 0x1234));
    }
  }
  run_queries(state, c.view, queries, false);
  state.counters["classes"] = c.geo->class_count;
  state.counters["ranges4"] = static_cast<double>(c.geo->lpm4_entries);
  state.counters["ranges6"] = static_cast<double>(c.geo->lpm6_entries);
  state.counters["bytes4"] = static_cast<double>(c.geo->lpm4.size());
  state.counters["bytes6"] = static_cast<double>(c.geo->lpm6.size());
}
// The LPM lookups alone of those queries' ECS subnets (the IPv4 or IPv6 table by family).
void BM_lpm_full_ecs_mix(benchmark::State& state) {
  const FullDbCase& c = full_db_case();
  size_t i = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    const gtm::bench::EcsSubnet& s = c.subnets[i];
    i = i + 1 == c.subnets.size() ? 0 : i + 1;
    uint32_t a4;
    std::memcpy(&a4, s.addr, 4);
    const gtm::geo::LpmMatch m =
        s.family == 4 ? c.lpm4.lookup(__builtin_bswap32(a4)) : c.lpm6.lookup(s.addr);
    benchmark::DoNotOptimize(m);
    sum += m.prefix_len;
  }
  if (sum == 0) state.SkipWithError("no lookup found a prefix");
  state.SetItemsProcessed(state.iterations());
}
void BM_topology_ecs_full(benchmark::State& s) {
  run_full_db(s, 0);
}
void BM_topology_ecs_full_v4(benchmark::State& s) {
  run_full_db(s, 4);
}
void BM_topology_ecs_full_v6(benchmark::State& s) {
  run_full_db(s, 6);
}

// GTM_BENCH_ITERATIONS=N runs each benchmark exactly N times: bench/instructions.sh counts
// instructions per query as the difference between two such runs of the whole program.
void fixed_iterations(benchmark::internal::Benchmark* b) {
  if (const char* n = getenv("GTM_BENCH_ITERATIONS")) b->Iterations(atoll(n));
}

BENCHMARK(BM_static_a)->Apply(fixed_iterations);
BENCHMARK(BM_static_a_inplace)->Apply(fixed_iterations);
BENCHMARK(BM_static_a_edns)->Apply(fixed_iterations);
BENCHMARK(BM_static_a_ecs)->Apply(fixed_iterations);
BENCHMARK(BM_gslb_weighted)->Apply(fixed_iterations);
BENCHMARK(BM_gslb_weighted_inplace)->Apply(fixed_iterations);
BENCHMARK(BM_gslb_round_robin)->Apply(fixed_iterations);
BENCHMARK(BM_nxdomain)->Apply(fixed_iterations);
BENCHMARK(BM_mx_with_edns)->Apply(fixed_iterations);
BENCHMARK(BM_topology_ecs)->Apply(fixed_iterations);
BENCHMARK(BM_topology_ecs_inplace)->Apply(fixed_iterations);
BENCHMARK(BM_topology_ecs_v6)->Apply(fixed_iterations);
BENCHMARK(BM_persistence_ecs)->Apply(fixed_iterations);
BENCHMARK(BM_topology_ecs_full)->Apply(fixed_iterations);
BENCHMARK(BM_lpm_full_ecs_mix)->Apply(fixed_iterations);
BENCHMARK(BM_topology_ecs_full_v4)->Apply(fixed_iterations);
BENCHMARK(BM_topology_ecs_full_v6)->Apply(fixed_iterations);

}  // namespace

BENCHMARK_MAIN();
