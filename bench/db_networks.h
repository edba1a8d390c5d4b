// The networks of a MaxMind database, for the benchmarks that run on the full-scale country
// database (../shared/geo/full): the geo table benchmarks (geo_bench.cc) draw lookup addresses
// from them, and the topology+ECS benchmarks (engine_bench.cc, dataplane_bench.cc) draw their
// ECS client subnets from them, at bench time, so no copy of the data is checked in.
#pragma once

#include <maxminddb.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_queries.h"
#include "control/geo/lpm_builder.h"

namespace gtm::bench {

// The full-scale database: $GTM_GEO_FULL_DB, else ../shared/geo/full next to the source tree.
inline std::string full_db_path(const std::string& source_dir) {
  const char* env = std::getenv("GTM_GEO_FULL_DB");
  return env != nullptr ? env : source_dir + "/../shared/geo/full/geo-whois-asn-country.mmdb";
}

struct DbNetwork {
  control::geo::u128 prefix;  // address bits at the top of the word (IPv4 data under ::/96)
  int len;
  uint32_t offset;  // of the data record
};

// Every data network of an open database, by a walk of its search tree (the IPv4 subtree also
// under each alias that points at it).
inline void walk_db(const MMDB_s& db, uint32_t node, control::geo::u128 prefix, int depth,
                    std::vector<DbNetwork>* out) {
  MMDB_search_node_s n;
  if (depth >= 128 || MMDB_read_node(&db, node, &n) != MMDB_SUCCESS) return;
  for (int side = 0; side < 2; ++side) {
    const control::geo::u128 p = side ? prefix | (control::geo::u128{1} << (127 - depth)) : prefix;
    const uint8_t type = side ? n.right_record_type : n.left_record_type;
    if (type == MMDB_RECORD_TYPE_SEARCH_NODE) {
      walk_db(db, static_cast<uint32_t>(side ? n.right_record : n.left_record), p, depth + 1, out);
    } else if (type == MMDB_RECORD_TYPE_DATA) {
      out->push_back({p, depth + 1, (side ? n.right_record_entry : n.left_record_entry).offset});
    }
  }
}

// ECS client subnets as resolvers send them, drawn from the networks of the database at `path`
// (empty on failure): `count` subnets, three IPv4 /24s for each IPv6 subnet (alternately /48 and
// /56). Half of them come from networks picked with equal probability (most networks are small
// allocations in the densest regions, the deepest LPM paths), half from networks picked in
// proportion to the /24s (/56s) they hold (large ISP blocks, most of the address space). The
// subnet is a random one inside the network, or the one containing a network longer than it.
// IPv6 picks skip the IPv4 data and its aliases (::/8, 2001::/32, 2002::/16): resolvers send IPv4
// clients as IPv4. Deterministic: a fixed seed and no std distribution (their algorithms differ
// between standard libraries).
inline std::vector<EcsSubnet> db_ecs_subnets(const std::string& path, size_t count,
                                             uint64_t seed = 42) {
  using control::geo::u128;
  MMDB_s db;
  if (MMDB_open(path.c_str(), MMDB_MODE_MMAP, &db) != MMDB_SUCCESS) return {};
  std::vector<DbNetwork> nets;
  walk_db(db, 0, 0, 0, &nets);
  MMDB_close(&db);
  std::vector<DbNetwork> nets4, nets6;
  for (const DbNetwork& n : nets) {
    const uint64_t top = static_cast<uint64_t>(n.prefix >> 64);
    if ((n.prefix >> 32) == 0 && n.len >= 96) {
      nets4.push_back({n.prefix << 96, n.len - 96, n.offset});
    } else if ((top >> 56) != 0 && (top >> 32) != 0x20010000u && (top >> 48) != 0x2002u) {
      nets6.push_back(n);
    }
  }
  if (nets4.empty() || nets6.empty()) return {};
  uint64_t state = seed;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  // Cumulative weights for the picks by size: 2^(subnet length - network length), at least 1.
  auto cumulative = [](const std::vector<DbNetwork>& v, int subnet_len) {
    std::vector<uint64_t> c;
    uint64_t sum = 0;
    for (const DbNetwork& n : v) {
      sum += n.len >= subnet_len ? 1 : uint64_t{1} << std::min(40, subnet_len - n.len);
      c.push_back(sum);
    }
    return c;
  };
  const std::vector<uint64_t> by_size4 = cumulative(nets4, 24), by_size6 = cumulative(nets6, 56);
  auto pick = [&next](const std::vector<DbNetwork>& v, const std::vector<uint64_t>& c,
                      bool sized) -> const DbNetwork& {
    if (!sized) return v[next() % v.size()];
    const uint64_t r = next() % c.back();
    return v[static_cast<size_t>(std::upper_bound(c.begin(), c.end(), r) - c.begin())];
  };
  std::vector<EcsSubnet> out;
  for (size_t i = 0; i < count; ++i) {
    const bool v6 = i % 4 == 3;
    const bool sized = (i / 4) % 2 == 1;
    const DbNetwork& n = v6 ? pick(nets6, by_size6, sized) : pick(nets4, by_size4, sized);
    const int len = v6 ? (i / 8) % 2 == 0 ? 48 : 56 : 24;
    const int bits = v6 ? 128 : 32;
    const u128 random = (u128{next()} << 64) | next();
    u128 a = n.prefix | (n.len >= bits ? 0 : random >> n.len);  // a random address in it
    a = control::geo::prefix_mask(a, len);
    EcsSubnet s;
    s.family = v6 ? 6 : 4;
    s.prefix = static_cast<uint8_t>(len);
    uint8_t bytes[16];
    control::geo::key6_to_bytes(a, bytes);
    std::memcpy(s.addr, bytes, v6 ? 16 : 4);
    out.push_back(s);
  }
  return out;
}

}  // namespace gtm::bench
