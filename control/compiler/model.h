// The compiled, validated form of a configuration: what the snapshot builder turns into an image.
//
// The config loader (control/config) produces it from YAML; tests build it directly. All names are
// canonical wire form (lowercase, uncompressed, ending with the root label) and all RDATA is
// uncompressed wire form, so the builder does no text parsing at all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/snapshot/format.h"

namespace gtm::control {

using WireName = std::vector<uint8_t>;   // canonical wire name, e.g. {3,'w','w','w',3,'g','t','m',...,0}
using WireRdata = std::vector<uint8_t>;

struct StaticRecord {
  WireName owner;      // inside the zone (or the apex itself); may start with the '*' label
  uint16_t type = 0;   // SOA is not allowed here (it is ZoneModel::soa_rdata); NS only at the apex
  uint32_t ttl = 0;
  WireRdata rdata;
};

struct ZoneModel {
  WireName apex;
  WireRdata soa_rdata;     // MNAME, RNAME, SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM
  uint32_t soa_ttl = 0;
  std::vector<StaticRecord> records;  // NS at the apex, A, AAAA, CNAME, MX, TXT, SRV, PTR, CAA
};

struct MemberModel {
  std::string name;          // label shown by explain: configured name or address text
  WireRdata rdata;           // 4 bytes (A service), 16 bytes (AAAA), or a wire name (CNAME)
  uint32_t weight = 1;       // >= 1
  snap::MemberMode mode = snap::MemberMode::kAuto;
  snap::MemberHealth health = snap::MemberHealth::kUnknown;
  bool enabled = true;
  // Control only (the builder ignores it): the monitors whose results set `health` when mode is
  // kAuto; the member is up while all of them say up.
  std::vector<std::string> monitors;
  uint32_t monitors_needed = 0;  // how many must be up: 0 = all of them (`monitor_rule`)
};

struct PoolModel {
  std::string name;
  snap::PoolMethod method = snap::PoolMethod::kRoundRobin;
  uint8_t return_n = 0;      // for kReturnN, >= 1
  std::vector<MemberModel> members;  // may be empty (e.g. an A view of an IPv6-only pool)
};

// One GSLB service for one record type. A configured service answering A and AAAA becomes two
// ServiceModels with the same name: one with the IPv4 members, one with the IPv6 members.
struct ServiceModel {
  WireName name;             // must be inside one of the zones; no static record of the same type
                             // (or any static record at all for CNAME services)
  uint16_t rtype = 0;        // kTypeA, kTypeAAAA or kTypeCNAME
  uint32_t ttl = 0;
  std::vector<PoolModel> pools;
  std::optional<WireRdata> fallback;  // answered when no pool has a usable member
  snap::EmptyAction empty_action = snap::EmptyAction::kNodata;
};

struct SnapshotModel {
  uint64_t generation = 0;
  std::vector<ZoneModel> zones;
  std::vector<ServiceModel> services;
  bool unknown_health_is_up = true;  // how kUnknown members count when mode is kAuto
};

}  // namespace gtm::control
