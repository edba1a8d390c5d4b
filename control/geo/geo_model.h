// What the configuration says about clients (`geo:`, `regions:`, `isp_lines:`, `datacenters:`,
// `topology:` in the YAML; docs/config.md), and what control compiles it into.
//
// Compilation (control/geo/geo_compiler.h) walks each MaxMind database's search tree once, maps
// every network to the client sets (regions and ISP lines) it belongs to, overlays the CIDR lists
// and topology records, and partitions the whole address space into *client classes*: a class is
// one distinct combination of set memberships and topology scores. The dataplane's per-query work
// is then one LPM lookup (address -> class, dataplane/geo/lpm.h) and array indexes by class id.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gtm::control::geo {

// A CIDR block, e.g. 175.16.199.0/24 or 2001:250::/31. Address bits past prefix_len are zero.
struct Cidr {
  uint8_t family = 4;      // 4 or 6
  uint8_t prefix_len = 0;  // 0..32 or 0..128
  uint8_t addr[16] = {};   // network order; IPv4 uses addr[0..4)
  std::string where;       // "file:line[:column]" it came from, for messages
};

// A MaxMind database a set refers to by name.
struct GeoDatabase {
  std::string name;  // unique
  std::string path;  // as configured, resolved relative to the configuration file's directory
  std::string where;
};

// "The value at `field_path` in `database` is one of `values`". The path is a list of map keys and
// array indexes, written in the config as "country.iso_code", "country_code" or
// "subdivisions.0.iso_code". Strings compare ASCII-case-insensitively; integers (e.g.
// autonomous_system_number) and booleans compare by their decimal / true|false text.
struct MmdbMatch {
  std::string database;
  std::vector<std::string> field_path;
  std::vector<std::string> values;
  std::string where;
};

// A region or an ISP line: a named set of client addresses. An address belongs to the set when any
// of its matchers matches it. Regions and ISP lines share one name space and one id space (their
// index in GeoConfig::sets); they differ only in how they are presented.
struct ClientSetDef {
  enum class Kind : uint8_t { kRegion, kIspLine };
  std::string name;
  Kind kind = Kind::kRegion;
  std::vector<MmdbMatch> mmdb;
  std::vector<Cidr> cidrs;              // inline `cidr:` lists
  std::vector<std::string> cidr_files;  // one CIDR per line, '#' comments, blank lines ignored
  std::string where;
};

// One row of the topology table (F5 BIG-IP DNS topology records): clients matching `client` prefer
// datacenter `datacenter` with `score` (1..65535, higher is better). For one client and one
// datacenter the matching record with the longest prefix wins (a set matches with the prefix of
// the network that put the address in it); equally long matches are decided by the higher score.
struct TopologyRecord {
  enum class Kind : uint8_t { kSet, kCidr };
  Kind kind = Kind::kSet;
  uint32_t set = 0;         // index into GeoConfig::sets (kSet)
  Cidr cidr;                // kCidr
  uint32_t datacenter = 0;  // index into GeoConfig::datacenters
  uint16_t score = 1;
  std::string where;
};

struct GeoConfig {
  std::vector<GeoDatabase> databases;
  std::vector<ClientSetDef> sets;
  std::vector<std::string> datacenters;  // names; members refer to them by index
  std::vector<TopologyRecord> topology;

  bool empty() const { return sets.empty() && topology.empty(); }
};

// A file the compilation read, for change detection: control recompiles when any of these
// differs from what stat() says now.
struct SourceFile {
  std::string path;
  uint64_t device = 0, inode = 0, size = 0;
  int64_t mtime_ns = 0;
};

// The compiled form, shared (read-only) by every snapshot built until the sources change, so a
// health-only publish copies these bytes instead of recompiling them.
struct CompiledGeo {
  std::vector<std::string> set_names;         // index = set id (GeoConfig::sets order)
  std::vector<uint8_t> set_is_isp_line;       // per set id: 1 for ISP lines
  std::vector<std::string> datacenter_names;  // index = datacenter id

  // Class 0 (geo::kNoClass) is "in no set, no topology record". Class c belongs to the sets
  // class_sets[class_set_first[c] .. class_set_first[c + 1]) (ascending set ids);
  // class_set_first has class_count + 1 entries.
  uint32_t class_count = 1;
  std::vector<uint32_t> class_set_first{0, 0};
  std::vector<uint32_t> class_sets;
  // topology_scores[c * datacenter_count + d]: the score of datacenter d for class c, 0 = none.
  std::vector<uint16_t> topology_scores;

  // LPM images (dataplane/geo/lpm.h) whose values are class ids; they validate with
  // value_limit = class_count.
  std::vector<uint8_t> lpm4;
  std::vector<uint8_t> lpm6;

  std::vector<SourceFile> files;  // databases and CIDR files read
  // For logs and `gtmctl status`: how big the result is and what it cost.
  uint64_t networks_read = 0;  // MaxMind networks visited, all databases
  uint64_t lpm4_entries = 0, lpm6_entries = 0;
  double compile_ms = 0;
};

}  // namespace gtm::control::geo
