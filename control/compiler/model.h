// The compiled, validated form of a configuration: what the snapshot builder turns into an image.
//
// The config loader (control/config) produces it from YAML; tests build it directly. All names are
// canonical wire form (lowercase, uncompressed, ending with the root label) and all RDATA is
// uncompressed wire form, so the builder does no text parsing at all.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/geo/geo_model.h"
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
  uint32_t datacenter = snap::kNoDatacenter;  // index into SnapshotModel::datacenters
};

struct PoolModel {
  std::string name;
  // The method chain: the preferred method, then the alternate, then the fallback method, each
  // tried when the one before cannot pick (no usable member; topology: none in a datacenter the
  // client's class scores).
  snap::PoolMethod method = snap::PoolMethod::kRoundRobin;
  std::optional<snap::PoolMethod> alternate;
  std::optional<snap::PoolMethod> fallback_method;  // only together with alternate
  uint8_t return_n = 0;      // for kReturnN, >= 1
  uint8_t persist_v4 = 24;   // kPersistence: client prefix lengths hashed
  uint8_t persist_v6 = 56;
  std::vector<MemberModel> members;  // may be empty (e.g. an A view of an IPv6-only pool)

  bool uses(snap::PoolMethod m) const {
    return method == m || alternate == m || fallback_method == m;
  }
};

// An ordered list of a service's pools (indexes into ServiceModel::pools).
struct PoolSetModel {
  std::string name;
  std::vector<uint32_t> pools;
};

// When a rule's secondary set takes over (control/policy/switch_policy.h).
struct SwitchPolicy {
  uint32_t min_members = 1;  // the primary set needs at least this many usable members
  uint32_t min_percent = 0;  // ... and at least this share of its configured members
  bool hold_down = false;    // false: back to the primary as soon as it is good again
  uint32_t hold_down_s = 0;  // true: only once it has been good for this long
};

// One access-policy rule. Clients in any of `client_sets` (ids into SnapshotModel::client_sets)
// are answered from `primary`, or `secondary` when the switch policy says so. A rule without
// sets is the default rule; it is the last one.
struct RuleModel {
  std::vector<uint32_t> client_sets;
  uint32_t primary = 0;              // PoolSetModel index
  uint32_t secondary = snap::kNone;  // PoolSetModel index or kNone
  // Decided by control's switch policy before every build; the defaults mean "primary".
  bool use_secondary = false;
  snap::SwitchReason switch_reason = snap::SwitchReason::kPrimaryGood;
  uint32_t hold_down_left_s = 0;
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
  bool use_ecs = true;  // identify the client by its ECS subnet when the query carries one
  // Steering. With no rules the service has one implicit default rule whose primary set is all
  // pools in order (what a service with only `pools:` has always done).
  std::vector<PoolSetModel> pool_sets;
  std::vector<RuleModel> rules;
  SwitchPolicy switch_policy;
};

struct SnapshotModel {
  uint64_t generation = 0;
  std::vector<ZoneModel> zones;
  std::vector<ServiceModel> services;
  bool unknown_health_is_up = true;  // how kUnknown members count when mode is kAuto
  // Clients: regions and ISP lines (one id space) and datacenters, by name, as configured.
  std::vector<std::string> client_sets;
  std::vector<bool> client_set_is_isp_line;
  std::vector<std::string> datacenters;
  // The compiled geo tables for exactly these sets and datacenters (control/geo), shared by every
  // image until a geo source or the geo configuration changes. Null: every client is in class 0
  // (no set, no topology score), e.g. before compilation or in tests that do not need it.
  std::shared_ptr<const geo::CompiledGeo> geo;
  uint8_t ecs_max_v4 = 24;  // longest ECS source prefixes used to identify a client
  uint8_t ecs_max_v6 = 56;
};

}  // namespace gtm::control
