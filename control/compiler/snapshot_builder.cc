#include "control/compiler/snapshot_builder.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <new>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "control/compiler/answer_records.h"
#include "dataplane/dns/name.h"
#include "dataplane/dns/wire.h"
#include "dataplane/engine/rendezvous.h"
#include "dataplane/snapshot/format.h"
#include "dataplane/snapshot/pick_table.h"

namespace gtm::control {

namespace {

using dns::wire_name_length;
using snap::kNone;

// A ratio pool's wheel never holds more slots than this (weights are scaled down beyond it).
constexpr uint64_t kMaxWheelSlots = 4096;
// Bounds the O(members x slots) wheel computation and the size of a pool.
constexpr size_t kMaxPoolMembers = 4096;
// Weighted rendezvous multiplies weights by 22-bit costs in 64 bits
// (dataplane/engine/rendezvous.h).
constexpr uint32_t kMaxPersistenceWeight = 1u << 20;
// Class -> rule maps are uint16_t; so are topology maps.
constexpr size_t kMaxRules = 0xFFFE;
// Bounds the per-class tables a service or a topology pool adds to the image.
constexpr uint32_t kMaxClasses = 1u << 20;
// Bounds the pick table (format.h PickEntry, 8 octets): 128 KiB, carried by every health publish
// that changes an entry (an overlay section) and derived again by the dataplane's validator, ~10 ns
// an entry on each side. At 2^16 entries the publish at scale (10,000 members, 502 classes) went
// from a 2.0 ms to a 5.0 ms median verdict -> ack, past 10 ms under load (bench/RESULTS.md).
// Services past it are answered by the chain, as before the table existed.
constexpr uint64_t kMaxPickEntries = 1u << 14;

// Internal error path; build_snapshot turns it into a return value.
struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& msg) {
  throw BuildError(msg);
}

// Byte order of wire names for ordered maps. Written out instead of std::less<std::vector> because
// GCC 12 at -O3 reports a false -Wstringop-overread inside std::lexicographical_compare.
struct WireNameLess {
  bool operator()(const WireName& a, const WireName& b) const {
    const size_t n = std::min(a.size(), b.size());
    const int c = n ? std::memcmp(a.data(), b.data(), n) : 0;
    return c != 0 ? c < 0 : a.size() < b.size();
  }
};

// ---------------------------------------------------------------------------------------------
// Wire-name helpers.

bool is_exact_name(const std::vector<uint8_t>& bytes, size_t from = 0) {
  return from < bytes.size() &&
         wire_name_length(bytes.data() + from, bytes.size() - from) == bytes.size() - from;
}

// Presentation form for error messages: "www.example.", "." for the root; odd bytes as \DDD.
std::string text(const std::vector<uint8_t>& name) {
  std::string out;
  size_t pos = 0;
  while (pos < name.size() && name[pos] != 0) {
    size_t len = name[pos++];
    for (size_t i = 0; i < len && pos < name.size(); ++i, ++pos) {
      uint8_t c = name[pos];
      if (c > 0x20 && c < 0x7f && c != '.' && c != '\\') {
        out += static_cast<char>(c);
      } else {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\%03u", c);
        out += buf;
      }
    }
    out += '.';
  }
  return out.empty() ? "." : out;
}

void check_canonical(const WireName& name, const std::string& what) {
  if (name.empty() || name.size() > dns::kMaxNameLen) fail(what + ": bad name length");
  if (!is_exact_name(name)) fail(what + ": malformed wire name");
  for (uint8_t c : name) {
    if (c >= 'A' && c <= 'Z') fail(what + ": name " + text(name) + " is not lowercase");
  }
}

// Whether `name` is `apex` or below it.
bool within(const WireName& name, const WireName& apex) {
  if (apex.size() > name.size()) return false;
  size_t suffix = name.size() - apex.size();
  size_t pos = 0;
  while (pos < suffix) pos += 1 + static_cast<size_t>(name[pos]);
  return pos == suffix && std::equal(apex.begin(), apex.end(), name.begin() + suffix);
}

WireName parent(const WireName& name) {
  return WireName(name.begin() + 1 + name[0], name.end());
}

bool is_wildcard(const WireName& name) {
  return name.size() >= 2 && name[0] == 1 && name[1] == '*';
}

std::string type_text(uint16_t type) {
  const char* name = dns::rr_type_name(type);
  return name != nullptr ? name : "TYPE" + std::to_string(type);
}

// Offsets of the compressible names inside an RDATA of `type` (RFC 3597 section 4).
std::pair<uint16_t, uint16_t> name_offsets(uint16_t type, const WireRdata& rdata) {
  switch (type) {
    case dns::kTypeNS:
    case dns::kTypeCNAME:
    case dns::kTypePTR:
      return {0, snap::kNoNameInRdata};
    case dns::kTypeMX:
      return {2, snap::kNoNameInRdata};
    case dns::kTypeSOA:
      return {0, static_cast<uint16_t>(wire_name_length(rdata.data(), rdata.size()))};
    default:
      return {snap::kNoNameInRdata, snap::kNoNameInRdata};
  }
}

// Whether RDATA has the shape its type requires (only types whose shape the format relies on).
bool rdata_shape_ok(uint16_t type, const WireRdata& r) {
  switch (type) {
    case dns::kTypeA:
      return r.size() == 4;
    case dns::kTypeAAAA:
      return r.size() == 16;
    case dns::kTypeNS:
    case dns::kTypeCNAME:
    case dns::kTypePTR:
      return is_exact_name(r);
    case dns::kTypeMX:
      return r.size() > 2 && is_exact_name(r, 2);
    case dns::kTypeSRV:
      return r.size() > 6 && is_exact_name(r, 6);
    default:
      return true;
  }
}

bool soa_shape_ok(const WireRdata& r) {
  size_t mname = wire_name_length(r.data(), r.size());
  if (mname == 0) return false;
  size_t rname = wire_name_length(r.data() + mname, r.size() - mname);
  return rname != 0 && mname + rname + 20 == r.size();
}

uint32_t soa_minimum(const WireRdata& r) {
  return dns::load32(r.data() + r.size() - 4);
}

// ---------------------------------------------------------------------------------------------
// The smooth weighted wheel.

// Returns positions into `weights` (one per slot): each position i appears weights'[i] times, where
// weights' are the weights divided by their GCD and, beyond kMaxWheelSlots, scaled proportionally
// with a floor of 1. Order is nginx's smooth weighted round-robin, so members interleave.
std::vector<uint32_t> smooth_wheel(std::vector<uint64_t> weights) {
  if (weights.empty()) return {};
  auto reduce = [&weights] {
    uint64_t g = 0;
    for (uint64_t w : weights) g = std::gcd(g, w);
    uint64_t total = 0;
    for (uint64_t& w : weights) total += (w /= g);
    return total;
  };
  uint64_t total = reduce();
  if (total > kMaxWheelSlots) {
    for (uint64_t& w : weights) w = std::max<uint64_t>(1, w * kMaxWheelSlots / total);
    total = reduce();
  }
  std::vector<int64_t> current(weights.size(), 0);
  std::vector<uint32_t> wheel;
  wheel.reserve(total);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      current[i] += static_cast<int64_t>(weights[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= static_cast<int64_t>(total);
    wheel.push_back(static_cast<uint32_t>(best));
  }
  return wheel;
}

// ---------------------------------------------------------------------------------------------
// What health decides: the parts of an image that depend on member state (health, operator
// overrides, mode) and on control's switch-policy decisions. Shared by the full build (Builder)
// and the health-only rebuild (SnapshotCompiler), which must write the same bytes.

// The client classes of a model, for the per-class tables.
class ClassTables {
 public:
  explicit ClassTables(const SnapshotModel& model) : model_(model) {}

  uint32_t count() const { return model_.geo ? model_.geo->class_count : 1; }

  // The sets client class `c` belongs to (ascending ids).
  std::pair<const uint32_t*, size_t> sets(uint32_t c) const {
    if (!model_.geo) return {nullptr, 0};
    const geo::CompiledGeo& g = *model_.geo;
    return {g.class_sets.data() + g.class_set_first[c],
            g.class_set_first[c + 1] - g.class_set_first[c]};
  }

  uint16_t topology_score(uint32_t c, uint32_t dc) const {
    if (!model_.geo || dc == snap::kNoDatacenter) return 0;
    return model_.geo->topology_scores[static_cast<size_t>(c) * model_.datacenters.size() + dc];
  }

 private:
  const SnapshotModel& model_;
};

// Appends `values` to `table` unless the same run is already there; returns its index. Services
// and pools with the same structure (an A and an AAAA service, sites with the same datacenters)
// then share one per-class table.
uint32_t intern16(std::vector<uint16_t>* table, std::map<std::vector<uint16_t>, uint32_t>* index,
                  const std::vector<uint16_t>& values) {
  auto it = index->find(values);
  if (it != index->end()) return it->second;
  if (table->size() + values.size() >= UINT32_MAX) fail("per-class tables exceed 4 G entries");
  const uint32_t at = static_cast<uint32_t>(table->size());
  table->insert(table->end(), values.begin(), values.end());
  index->emplace(values, at);
  return at;
}

// One pool's health-decided slots. Member indexes are global (the pool's first member + position).
struct PoolHealth {
  std::vector<uint32_t> usable;       // usable members in configured order
  std::vector<uint32_t> wheel;        // kRatio: the smooth weighted wheel over them
  std::vector<uint32_t> topo_slots;   // kTopology: the picks' members, pick after pick
  std::vector<snap::TopoPick> picks;  // slot_first relative to topo_slots
  std::vector<uint16_t> topo_map;     // per class: offset into picks, or kNoPick
  bool topo_varies = false;
};

// For every client class: the usable members in the datacenter(s) with the highest score for
// it. Classes with the same winners share one pick; a class whose scored datacenters have no
// usable member maps to kNoPick (the method fails and the chain goes on).
void topology_picks(const ClassTables& classes, const std::vector<uint32_t>& usable,
                    const std::vector<uint32_t>& usable_dc, PoolHealth* out) {
  // Keyed by the members only: classes whose winners are the same members get the same answer
  // (whatever the score), so they share a pick and do not make the answer client-dependent.
  std::map<std::vector<uint32_t>, uint16_t> picks;
  std::vector<uint16_t>& map = out->topo_map;
  map.assign(classes.count(), snap::kNoPick);
  std::vector<uint32_t> group;
  for (uint32_t c = 0; c < map.size(); ++c) {
    uint16_t best = 0;
    for (uint32_t dc : usable_dc) best = std::max(best, classes.topology_score(c, dc));
    if (best == 0) continue;
    group.clear();
    uint32_t first_dc = snap::kNoDatacenter;
    for (size_t i = 0; i < usable.size(); ++i) {
      if (classes.topology_score(c, usable_dc[i]) != best) continue;
      if (group.empty()) first_dc = usable_dc[i];
      group.push_back(usable[i]);
    }
    auto [it, inserted] = picks.try_emplace(group, 0);
    if (inserted) {
      if (picks.size() >= snap::kNoPick) fail("a topology pool has too many distinct picks");
      it->second = static_cast<uint16_t>(out->picks.size());
      snap::TopoPick pick{};
      pick.slot_first = static_cast<uint32_t>(out->topo_slots.size());
      pick.slot_count = static_cast<uint32_t>(group.size());
      pick.datacenter = first_dc;
      pick.score = best;
      out->topo_slots.insert(out->topo_slots.end(), group.begin(), group.end());
      out->picks.push_back(pick);
    }
    map[c] = it->second;
  }
  out->topo_varies = !std::all_of(map.begin(), map.end(), [&](uint16_t v) { return v == map[0]; });
}

PoolHealth pool_health(const PoolModel& pm, uint32_t member_first, bool unknown_health_is_up,
                       const ClassTables& classes) {
  PoolHealth h;
  std::vector<uint32_t> usable_dc;
  std::vector<uint64_t> usable_weights;
  for (size_t i = 0; i < pm.members.size(); ++i) {
    const MemberModel& mm = pm.members[i];
    if (!member_usable(mm, unknown_health_is_up)) continue;
    h.usable.push_back(member_first + static_cast<uint32_t>(i));
    usable_dc.push_back(mm.datacenter);
    usable_weights.push_back(mm.weight);
  }
  if (pm.uses(snap::PoolMethod::kRatio)) {
    for (uint32_t pos : smooth_wheel(usable_weights)) h.wheel.push_back(h.usable[pos]);
  }
  if (pm.uses(snap::PoolMethod::kTopology)) topology_picks(classes, h.usable, usable_dc, &h);
  return h;
}

// The per-pool tables of an image, as pools are appended in order.
struct HealthTables {
  std::vector<uint32_t> slots;
  std::vector<snap::TopoPick> topo_picks;
  std::vector<uint16_t> topo_maps;
  std::map<std::vector<uint16_t>, uint32_t> topo_maps_index;

  // Writes `h` into the tables and its place into `pool`.
  void append(const PoolHealth& h, bool topology, snap::Pool* pool) {
    pool->usable_first = static_cast<uint32_t>(slots.size());
    pool->usable_count = static_cast<uint32_t>(h.usable.size());
    slots.insert(slots.end(), h.usable.begin(), h.usable.end());
    pool->wheel_first = static_cast<uint32_t>(slots.size());
    pool->wheel_count = static_cast<uint32_t>(h.wheel.size());
    slots.insert(slots.end(), h.wheel.begin(), h.wheel.end());
    pool->topo_map = kNone;
    pool->topo_pick_first = 0;
    pool->topo_pick_count = 0;
    pool->topo_varies = 0;
    if (!topology) return;
    const uint32_t base = static_cast<uint32_t>(slots.size());
    slots.insert(slots.end(), h.topo_slots.begin(), h.topo_slots.end());
    pool->topo_pick_first = static_cast<uint32_t>(topo_picks.size());
    pool->topo_pick_count = static_cast<uint32_t>(h.picks.size());
    for (snap::TopoPick pick : h.picks) {
      pick.slot_first += base;
      topo_picks.push_back(pick);
    }
    pool->topo_varies = h.topo_varies ? 1 : 0;
    pool->topo_map = intern16(&topo_maps, &topo_maps_index, h.topo_map);
  }
};

// The pick table (format.h PickEntry). Where each service's entries are is configuration: A and
// AAAA services in order get one while the table stays within kMaxPickEntries. What the entries
// say is health (usable lists, wheels, topology picks, active sets): filled on every build.
snap::PickSources pick_sources(std::span<const snap::Rule> rules,
                               std::span<const snap::PoolSet> pool_sets,
                               std::span<const uint32_t> set_pools,
                               std::span<const snap::Pool> pools,
                               std::span<const uint16_t> class_rules,
                               std::span<const uint16_t> topo_maps,
                               std::span<const snap::TopoPick> topo_picks) {
  return {.rules = rules.data(),
          .pool_sets = pool_sets.data(),
          .set_pools = set_pools.data(),
          .pools = pools.data(),
          .class_rules = class_rules.data(),
          .topo_maps = topo_maps.data(),
          .topo_picks = topo_picks.data()};
}

void place_pick_tables(std::vector<snap::Service>* services, const std::vector<snap::Pool>& pools,
                       uint32_t class_count) {
  uint64_t next = 0;
  for (snap::Service& svc : *services) {
    svc.pick_table = kNone;
    const uint32_t wanted = snap::pick_entries_wanted(svc, pools.data(), class_count);
    if (wanted == 0 || next + wanted > kMaxPickEntries) continue;
    svc.pick_table = static_cast<uint32_t>(next);
    next += wanted;
  }
}

void fill_pick_table(const snap::PickSources& src, const std::vector<snap::Service>& services,
                     uint32_t class_count, std::vector<snap::PickEntry>* out) {
  out->clear();
  for (const snap::Service& svc : services) {
    if (svc.pick_table == kNone) continue;
    const uint32_t wanted = snap::pick_entries_wanted(svc, src.pools, class_count);
    for (uint32_t c = 0; c < wanted; ++c) out->push_back(snap::derive_pick(src, svc, c));
  }
}

// A service's pool sets and rules as the image has them: a service with only pools has one
// default rule over all of them, in order.
struct Steering {
  std::vector<PoolSetModel> sets;
  std::vector<RuleModel> rules;
};

Steering steering_of(const ServiceModel& sm) {
  Steering st{sm.pool_sets, sm.rules};
  if (st.rules.empty()) {
    PoolSetModel all{"all pools", {}};
    for (uint32_t p = 0; p < sm.pools.size(); ++p) all.pools.push_back(p);
    st.sets.push_back(std::move(all));
    st.rules.push_back(RuleModel{});
    st.rules.back().primary = static_cast<uint32_t>(st.sets.size() - 1);
  }
  return st;
}

// The switch-policy decision of a rule, and the member counts explain shows with it.
void decide_rule(const ServiceModel& sm, const Steering& st, const RuleModel& rm,
                 bool unknown_health_is_up, snap::Rule* r) {
  r->active = rm.use_secondary ? 1 : 0;
  r->switch_reason = static_cast<uint8_t>(rm.switch_reason);
  r->primary_total = 0;
  r->primary_usable = 0;
  for (uint32_t p : st.sets[rm.primary].pools) {
    for (const MemberModel& m : sm.pools[p].members) {
      ++r->primary_total;
      r->primary_usable += member_usable(m, unknown_health_is_up) ? 1 : 0;
    }
  }
  r->hold_down_left_s = rm.hold_down_left_s;
}

const std::vector<uint32_t>& set_pools(const Steering& st, uint32_t set) {
  static const std::vector<uint32_t> kNoPools;
  return set == kNone ? kNoPools : st.sets[set].pools;
}

// Whether two rules answer alike: the same sets, the same one active.
bool same_outcome(const Steering& st, const RuleModel& a, const RuleModel& b) {
  return set_pools(st, a.primary) == set_pools(st, b.primary) &&
         set_pools(st, a.secondary) == set_pools(st, b.secondary) &&
         a.use_secondary == b.use_secondary;
}

// Whether the rules that client classes map to (`used`, distinct, the first class's first) answer
// differently: then the rule narrows the ECS scope (kSvcRulesVary).
bool rules_vary(const Steering& st, const std::vector<uint16_t>& used) {
  for (uint16_t v : used) {
    if (!same_outcome(st, st.rules[v], st.rules[used[0]])) return true;
  }
  return false;
}

// The distinct values of a class -> rule map, in the order they first appear.
std::vector<uint16_t> distinct_rules(const uint16_t* map, size_t count) {
  std::vector<uint16_t> used;
  for (size_t c = 0; c < count; ++c) {
    if (std::find(used.begin(), used.end(), map[c]) == used.end()) used.push_back(map[c]);
  }
  return used;
}

// Problems of the fields health and the switch policy set, or nullptr.
const char* member_state_problem(const MemberModel& m) {
  if (static_cast<uint8_t>(m.mode) > static_cast<uint8_t>(snap::MemberMode::kAlwaysDown)) {
    return "unknown mode";
  }
  if (static_cast<uint8_t>(m.health) > static_cast<uint8_t>(snap::MemberHealth::kDown)) {
    return "unknown health";
  }
  return nullptr;
}

const char* rule_decision_problem(const RuleModel& rule) {
  if (rule.use_secondary && rule.secondary == kNone) {
    return "switched to a secondary set it does not have";
  }
  if (static_cast<uint8_t>(rule.switch_reason) >
      static_cast<uint8_t>(snap::SwitchReason::kNoSecondary)) {
    return "unknown switch reason";
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// The model, checked and grouped by owner name.

struct StaticSet {
  uint32_t ttl = 0;
  std::vector<WireRdata> rdatas;  // configured order, duplicates merged
};

struct NodeInfo {
  uint32_t zone = kNone;
  std::map<uint16_t, StaticSet> statics;  // by type
  std::map<uint16_t, uint32_t> services;  // type -> ServiceModel index
};

class Builder {
 public:
  explicit Builder(const SnapshotModel& model) : model_(model), class_tables_(model) {}

  std::vector<uint8_t> build() {
    check_geo();
    check_zones();
    add_records();
    add_services();
    check_nodes();
    add_empty_non_terminals();
    emit();
    return layout();
  }

 private:
  // The deepest zone containing `name`, or kNone.
  uint32_t deepest_zone(const WireName& name) const {
    uint32_t best = kNone;
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const WireName& apex = model_.zones[z].apex;
      if (within(name, apex) && (best == kNone || apex.size() > model_.zones[best].apex.size())) {
        best = z;
      }
    }
    return best;
  }

  void check_zones() {
    std::map<WireName, uint32_t, WireNameLess> seen;
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const ZoneModel& zone = model_.zones[z];
      check_canonical(zone.apex, "zone #" + std::to_string(z) + " apex");
      std::string where = "zone " + text(zone.apex);
      if (!seen.emplace(zone.apex, z).second) fail(where + ": duplicate zone");
      if (!soa_shape_ok(zone.soa_rdata)) fail(where + ": malformed SOA rdata");
      if (zone.soa_rdata.size() > 0xFFFF) fail(where + ": SOA rdata too long");
      nodes_[zone.apex].zone = z;
    }
  }

  void add_records() {
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const ZoneModel& zone = model_.zones[z];
      for (const StaticRecord& rec : zone.records) {
        std::string where = "zone " + text(zone.apex) + ": record ";
        check_canonical(rec.owner, where + "owner");
        where += text(rec.owner) + " " + type_text(rec.type);
        if (!within(rec.owner, zone.apex)) fail(where + ": outside the zone");
        uint32_t deepest = deepest_zone(rec.owner);
        if (deepest != z) {
          fail(where + ": belongs to the child zone " + text(model_.zones[deepest].apex));
        }
        if (rec.type == dns::kTypeSOA) fail(where + ": SOA is set by the zone's soa, not a record");
        if (rec.type == 0 || rec.type == dns::kTypeOPT || (rec.type >= 128 && rec.type <= 255)) {
          fail(where + ": not a data type");
        }
        if (rec.type == dns::kTypeNS && rec.owner != zone.apex) {
          fail(where + ": NS records are only allowed at the zone apex");
        }
        if (rec.rdata.size() > 0xFFFF) fail(where + ": rdata longer than 65535 octets");
        if (!rdata_shape_ok(rec.type, rec.rdata)) fail(where + ": malformed rdata");

        NodeInfo& node = nodes_[rec.owner];
        node.zone = z;
        auto [it, inserted] = node.statics.try_emplace(rec.type);
        StaticSet& set = it->second;
        set.ttl = inserted ? rec.ttl : std::min(set.ttl, rec.ttl);
        if (std::find(set.rdatas.begin(), set.rdatas.end(), rec.rdata) == set.rdatas.end()) {
          set.rdatas.push_back(rec.rdata);
        }
      }
    }
  }

  // The compiled geo tables must belong to this model's sets and datacenters.
  void check_geo() {
    if (model_.client_set_is_isp_line.size() != model_.client_sets.size()) {
      fail("client sets: kinds do not match the names");
    }
    for (const std::string& n : model_.client_sets) {
      if (n.empty()) fail("client sets: empty name");
    }
    for (const std::string& n : model_.datacenters) {
      if (n.empty()) fail("datacenters: empty name");
    }
    if (model_.ecs_max_v4 < 1 || model_.ecs_max_v4 > 32 || model_.ecs_max_v6 < 1 ||
        model_.ecs_max_v6 > 128) {
      fail("ECS prefix limits must be 1..32 and 1..128");
    }
    if (!model_.geo) return;
    const geo::CompiledGeo& g = *model_.geo;
    if (g.set_names != model_.client_sets || g.datacenter_names != model_.datacenters) {
      fail("the geo tables were compiled for other regions, ISP lines or datacenters");
    }
    if (g.class_count == 0 || g.class_count > kMaxClasses ||
        g.class_set_first.size() != static_cast<size_t>(g.class_count) + 1 ||
        g.class_set_first.back() != g.class_sets.size() ||
        g.topology_scores.size() !=
            static_cast<size_t>(g.class_count) * g.datacenter_names.size()) {
      fail("the geo tables are inconsistent (class tables)");
    }
    for (uint32_t c = 0; c < g.class_count; ++c) {
      if (g.class_set_first[c] > g.class_set_first[c + 1]) fail("geo: class ranges out of order");
    }
    for (uint32_t set : g.class_sets) {
      if (set >= model_.client_sets.size()) fail("geo: class names an unknown set");
    }
  }

  uint32_t class_count() const { return class_tables_.count(); }

  void check_steering(const ServiceModel& svc, const std::string& where) {
    for (const PoolSetModel& ps : svc.pool_sets) {
      for (uint32_t p : ps.pools) {
        if (p >= svc.pools.size()) fail(where + ": pool set " + ps.name + ": unknown pool");
      }
    }
    if (svc.rules.size() > kMaxRules) fail(where + ": too many rules");
    for (size_t r = 0; r < svc.rules.size(); ++r) {
      const RuleModel& rule = svc.rules[r];
      const std::string rwhere = where + ": rule " + std::to_string(r + 1);
      const bool last = r + 1 == svc.rules.size();
      if (rule.client_sets.empty() != last) {
        fail(rwhere + (last ? ": the last rule must be the default rule (no regions)"
                            : ": only the last rule may be the default rule"));
      }
      for (uint32_t set : rule.client_sets) {
        if (set >= model_.client_sets.size()) fail(rwhere + ": unknown region or ISP line");
      }
      if (rule.primary >= svc.pool_sets.size()) fail(rwhere + ": unknown primary pool set");
      if (rule.secondary != kNone && rule.secondary >= svc.pool_sets.size()) {
        fail(rwhere + ": unknown secondary pool set");
      }
      if (const char* problem = rule_decision_problem(rule)) fail(rwhere + ": " + problem);
    }
  }

  void check_member_rdata(uint16_t rtype, const WireRdata& r, const std::string& where) {
    bool ok = rtype == dns::kTypeCNAME ? is_exact_name(r) : rdata_shape_ok(rtype, r);
    if (!ok) fail(where + ": rdata does not fit a " + type_text(rtype) + " answer");
  }

  void add_services() {
    for (uint32_t s = 0; s < model_.services.size(); ++s) {
      const ServiceModel& svc = model_.services[s];
      check_canonical(svc.name, "service #" + std::to_string(s));
      std::string where = "service " + text(svc.name) + " " + type_text(svc.rtype);
      if (svc.rtype != dns::kTypeA && svc.rtype != dns::kTypeAAAA && svc.rtype != dns::kTypeCNAME) {
        fail(where + ": a service answers only A, AAAA or CNAME");
      }
      uint32_t z = deepest_zone(svc.name);
      if (z == kNone) fail(where + ": not inside any zone");
      if (static_cast<uint8_t>(svc.empty_action) > static_cast<uint8_t>(snap::EmptyAction::kDrop)) {
        fail(where + ": unknown empty action");
      }
      if (svc.fallback) check_member_rdata(svc.rtype, *svc.fallback, where + ": fallback");
      for (const PoolModel& pool : svc.pools) check_pool(svc.rtype, pool, where);
      if (svc.pools.size() > UINT32_MAX / 2) fail(where + ": too many pools");
      check_steering(svc, where);

      NodeInfo& node = nodes_[svc.name];
      node.zone = z;
      if (!node.services.emplace(svc.rtype, s).second) fail(where + ": duplicate service");
    }
  }

  void check_pool(uint16_t rtype, const PoolModel& pool, const std::string& service) {
    std::string where = service + ": pool " + pool.name;
    for (const std::optional<snap::PoolMethod>& m :
         {std::optional<snap::PoolMethod>(pool.method), pool.alternate, pool.fallback_method}) {
      if (m && static_cast<uint8_t>(*m) > snap::kMaxPoolMethod) fail(where + ": unknown method");
    }
    if (pool.fallback_method && !pool.alternate) {
      fail(where + ": a fallback method needs an alternate method");
    }
    if (pool.uses(snap::PoolMethod::kReturnN) && pool.return_n == 0) {
      fail(where + ": return-n needs a count >= 1");
    }
    if (pool.persist_v4 < 1 || pool.persist_v4 > 32 || pool.persist_v6 < 1 ||
        pool.persist_v6 > 128) {
      fail(where + ": persistence prefix lengths must be 1..32 and 1..128");
    }
    if (pool.members.size() > kMaxPoolMembers) {
      fail(where + ": more than " + std::to_string(kMaxPoolMembers) + " members");
    }
    for (const MemberModel& m : pool.members) {
      std::string mwhere = where + ": member " + m.name;
      if (m.weight == 0) fail(mwhere + ": weight must be >= 1");
      if (const char* problem = member_state_problem(m)) fail(mwhere + ": " + problem);
      if (m.datacenter != snap::kNoDatacenter && m.datacenter >= model_.datacenters.size()) {
        fail(mwhere + ": unknown datacenter");
      }
      if (pool.uses(snap::PoolMethod::kPersistence) && m.weight > kMaxPersistenceWeight) {
        fail(mwhere + ": weight above " + std::to_string(kMaxPersistenceWeight) +
             " in a persistence pool");
      }
      check_member_rdata(rtype, m.rdata, mwhere);
    }
  }

  // Rules that involve everything living at one owner name.
  void check_nodes() {
    for (const auto& [name, node] : nodes_) {
      bool apex = model_.zones[node.zone].apex == name;
      bool static_cname = node.statics.count(dns::kTypeCNAME) != 0;
      bool service_cname = node.services.count(dns::kTypeCNAME) != 0;
      for (const auto& [type, s] : node.services) {
        std::string where = "service " + text(name) + " " + type_text(type);
        if (node.statics.count(type) != 0) {
          fail(where + ": clashes with a static " + type_text(type) + " record at the same name");
        }
        if (type == dns::kTypeCNAME && !node.statics.empty()) {
          fail(where + ": a CNAME service cannot coexist with static records at the same name");
        }
        if (static_cname) fail(where + ": the name has a static CNAME record");
        if (service_cname && type != dns::kTypeCNAME) {
          fail(where + ": the name also has a CNAME service");
        }
      }
      if (static_cname && node.statics.size() > 1) {
        fail("name " + text(name) + ": a CNAME record cannot coexist with other records");
      }
      if ((static_cname || service_cname) && apex) {
        fail("name " + text(name) + ": CNAME at a zone apex");
      }
      if (node.statics.size() + node.services.size() > 0xFFFF) {
        fail("name " + text(name) + ": more than 65535 RRsets");
      }
    }
  }

  // Every name between an owner and its zone apex exists as a node (RFC 4592 / NODATA answers).
  void add_empty_non_terminals() {
    std::vector<std::pair<WireName, uint32_t>> owners;
    for (const auto& [name, node] : nodes_) owners.emplace_back(name, node.zone);
    for (const auto& [name, zone] : owners) {
      const WireName& apex = model_.zones[zone].apex;
      for (WireName up = name; up != apex;) {
        up = parent(up);
        nodes_[up].zone = zone;  // the deepest zone: no other apex lies between name and apex
      }
    }
  }

  uint32_t intern(const uint8_t* data, size_t len) {
    std::string key(reinterpret_cast<const char*>(data), len);
    auto it = interned_.find(key);
    if (it != interned_.end()) return it->second;
    if (blob_.size() + len > UINT32_MAX) fail("snapshot blob exceeds 4 GiB");
    uint32_t off = static_cast<uint32_t>(blob_.size());
    blob_.insert(blob_.end(), data, data + len);
    interned_.emplace(std::move(key), off);
    return off;
  }
  snap::BlobRef blob_ref(const std::vector<uint8_t>& bytes) {
    return {intern(bytes.data(), bytes.size()), static_cast<uint32_t>(bytes.size())};
  }
  snap::BlobRef blob_ref(const std::string& s) {
    return {intern(reinterpret_cast<const uint8_t*>(s.data()), s.size()),
            static_cast<uint32_t>(s.size())};
  }

  uint32_t add_rdata(uint16_t type, const WireRdata& wire) {
    snap::Rdata r{};
    r.wire = blob_ref(wire);
    std::tie(r.name1_off, r.name2_off) = name_offsets(type, wire);
    rdatas_.push_back(r);
    return static_cast<uint32_t>(rdatas_.size() - 1);
  }

  void emit() {
    std::map<WireName, uint32_t, WireNameLess> node_index;
    for (const auto& [name, node] : nodes_) {
      node_index.emplace(name, static_cast<uint32_t>(node_index.size()));
    }
    zones_.resize(model_.zones.size());
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const ZoneModel& zm = model_.zones[z];
      snap::Zone& zone = zones_[z];
      zone.apex = blob_ref(zm.apex);
      zone.apex_node = node_index.at(zm.apex);
      zone.soa_rdata = add_rdata(dns::kTypeSOA, zm.soa_rdata);
      zone.soa_ttl = zm.soa_ttl;
      zone.negative_ttl = std::min(zm.soa_ttl, soa_minimum(zm.soa_rdata));
      zone.ns_rrset = kNone;
    }
    emit_clients();
    for (uint32_t s = 0; s < model_.services.size(); ++s) {
      emit_service(model_.services[s], node_index.at(model_.services[s].name));
    }
    place_pick_tables(&services_, pools_, class_count());
    for (const auto& [name, info] : nodes_) emit_node(name, info);
  }

  void emit_node(const WireName& name, const NodeInfo& info) {
    snap::Node node{};
    node.name = blob_ref(name);
    node.zone = info.zone;
    node.rrset_first = static_cast<uint32_t>(rrsets_.size());
    bool apex = model_.zones[info.zone].apex == name;
    node.flags = (apex ? snap::kNodeApex : 0) | (is_wildcard(name) ? snap::kNodeWildcard : 0);
    // Static and GSLB types never coincide (check_nodes), so a merge by type gives sorted RRsets.
    auto st = info.statics.begin();
    auto sv = info.services.begin();
    while (st != info.statics.end() || sv != info.services.end()) {
      snap::RRset rs{};
      if (sv == info.services.end() || (st != info.statics.end() && st->first < sv->first)) {
        rs.type = st->first;
        rs.kind = snap::kRRsetStatic;
        rs.ttl = st->second.ttl;
        rs.rdata_first = static_cast<uint32_t>(rdatas_.size());
        rs.rdata_count = static_cast<uint32_t>(st->second.rdatas.size());
        for (const WireRdata& r : st->second.rdatas) add_rdata(rs.type, r);
        if (apex && rs.type == dns::kTypeNS) {
          zones_[info.zone].ns_rrset = static_cast<uint32_t>(rrsets_.size());
        }
        ++st;
      } else {
        rs.type = sv->first;
        rs.kind = snap::kRRsetGslb;
        rs.ttl = model_.services[sv->second].ttl;
        rs.rdata_first = sv->second;
        rs.rdata_count = 0;
        ++sv;
      }
      if (rs.type == dns::kTypeCNAME) node.flags |= snap::kNodeHasCname;
      rrsets_.push_back(rs);
      ++node.rrset_count;
    }
    nodes_out_.push_back(node);
  }

  void emit_service(const ServiceModel& sm, uint32_t node) {
    snap::Service svc{};
    svc.name = blob_ref(sm.name);
    svc.node = node;
    svc.rtype = sm.rtype;
    svc.empty_action = static_cast<uint8_t>(sm.empty_action);
    svc.ttl = sm.ttl;
    svc.pool_first = static_cast<uint32_t>(pools_.size());
    svc.pool_count = static_cast<uint32_t>(sm.pools.size());
    svc.fallback_rdata = sm.fallback ? add_rdata(sm.rtype, *sm.fallback) : kNone;
    svc.ecs_max_v4 = model_.ecs_max_v4;
    svc.ecs_max_v6 = model_.ecs_max_v6;
    bool topology = false;
    bool persistence = false;
    for (const PoolModel& pm : sm.pools) {
      emit_pool(sm.rtype, pm);
      topology |= pm.uses(snap::PoolMethod::kTopology);
      persistence |= pm.uses(snap::PoolMethod::kPersistence);
    }

    const Steering st = steering_of(sm);
    const uint32_t set_base = static_cast<uint32_t>(pool_sets_.size());
    for (const PoolSetModel& ps : st.sets) {
      snap::PoolSet out{};
      out.name = blob_ref(ps.name);
      out.pool_first = static_cast<uint32_t>(set_pools_.size());
      out.pool_count = static_cast<uint32_t>(ps.pools.size());
      for (uint32_t p : ps.pools) set_pools_.push_back(svc.pool_first + p);
      pool_sets_.push_back(out);
    }
    svc.rule_first = static_cast<uint32_t>(rules_.size());
    svc.rule_count = static_cast<uint32_t>(st.rules.size());
    for (const RuleModel& rm : st.rules) {
      snap::Rule r{};
      r.primary = set_base + rm.primary;
      r.secondary = rm.secondary == kNone ? kNone : set_base + rm.secondary;
      r.set_first = static_cast<uint32_t>(rule_sets_.size());
      r.set_count = static_cast<uint32_t>(rm.client_sets.size());
      rule_sets_.insert(rule_sets_.end(), rm.client_sets.begin(), rm.client_sets.end());
      decide_rule(sm, st, rm, model_.unknown_health_is_up, &r);
      r.min_members = sm.switch_policy.min_members;
      r.min_percent = sm.switch_policy.min_percent;
      rules_.push_back(r);
    }

    // Class -> rule: the first rule naming a set the class is in, else the default (last) rule.
    // Precomputed here so that a query does one array index, never a loop over rules.
    svc.class_rules = kNone;
    svc.fixed_rule = static_cast<uint16_t>(st.rules.size() - 1);
    bool vary = false;
    if (st.rules.size() > 1) {
      std::vector<uint16_t> map(class_count());
      for (uint32_t c = 0; c < map.size(); ++c) map[c] = rule_for_class(st.rules, c);
      if (std::all_of(map.begin(), map.end(), [&](uint16_t v) { return v == map[0]; })) {
        svc.fixed_rule = map[0];  // no class tells the rules apart: no client dependency
      } else {
        svc.class_rules = intern16(&class_rules_, &class_rules_index_, map);
        // Different rules may still answer alike (same sets, same active one): then the rule
        // is named in explain but the answer does not depend on the client.
        vary = rules_vary(st, distinct_rules(map.data(), map.size()));
      }
    }
    svc.flags = static_cast<uint8_t>(
        (sm.use_ecs ? snap::kSvcUseEcs : 0) | (vary ? snap::kSvcRulesVary : 0) |
        (svc.class_rules != kNone || topology ? snap::kSvcNeedsClass : 0) |
        (persistence ? snap::kSvcNeedsAddress : 0));
    services_.push_back(svc);
  }

  uint16_t rule_for_class(const std::vector<RuleModel>& rules, uint32_t c) const {
    const auto [sets, count] = class_tables_.sets(c);
    for (size_t r = 0; r + 1 < rules.size(); ++r) {
      for (uint32_t want : rules[r].client_sets) {
        if (std::binary_search(sets, sets + count, want)) return static_cast<uint16_t>(r);
      }
    }
    return static_cast<uint16_t>(rules.size() - 1);
  }

  void emit_pool(uint16_t rtype, const PoolModel& pm) {
    snap::Pool pool{};
    pool.name = blob_ref(pm.name);
    pool.method = static_cast<uint8_t>(pm.method);
    pool.alternate = pm.alternate ? static_cast<uint8_t>(*pm.alternate) : snap::kNoMethod;
    pool.fallback =
        pm.fallback_method ? static_cast<uint8_t>(*pm.fallback_method) : snap::kNoMethod;
    pool.return_n = pm.return_n;
    pool.persist_v4 = pm.persist_v4;
    pool.persist_v6 = pm.persist_v6;
    pool.member_first = static_cast<uint32_t>(members_.size());
    pool.member_count = static_cast<uint32_t>(pm.members.size());
    for (const MemberModel& mm : pm.members) {
      snap::Member m{};
      m.name = blob_ref(mm.name);
      m.rdata = add_rdata(rtype, mm.rdata);
      m.weight = mm.weight;
      m.mode = static_cast<uint8_t>(mm.mode);
      m.health = static_cast<uint8_t>(mm.health);
      m.enabled = mm.enabled ? 1 : 0;
      m.usable = member_usable(mm, model_.unknown_health_is_up) ? 1 : 0;
      m.datacenter = mm.datacenter;
      m.persist_key = engine::member_persist_key(reinterpret_cast<const uint8_t*>(mm.name.data()),
                                                 mm.name.size(), mm.rdata.data(), mm.rdata.size());
      if (mm.weight != pm.members.front().weight) pool.persist_weighted = 1;
      members_.push_back(m);
    }
    if (!pm.uses(snap::PoolMethod::kPersistence)) pool.persist_weighted = 0;
    health_.append(pool_health(pm, pool.member_first, model_.unknown_health_is_up, class_tables_),
                   pm.uses(snap::PoolMethod::kTopology), &pool);
    pools_.push_back(pool);
  }

  // Regions, ISP lines, datacenters, classes and the LPM tables: the same for every service.
  void emit_clients() {
    for (size_t i = 0; i < model_.client_sets.size(); ++i) {
      snap::ClientSet cs{};
      cs.name = blob_ref(model_.client_sets[i]);
      cs.is_isp_line = model_.client_set_is_isp_line[i] ? 1 : 0;
      client_sets_.push_back(cs);
    }
    for (const std::string& name : model_.datacenters) datacenters_.push_back({blob_ref(name)});
    if (!model_.geo) {
      classes_.push_back({0, 0});
      topo_scores_.assign(model_.datacenters.size(), 0);
      return;
    }
    const geo::CompiledGeo& g = *model_.geo;
    for (uint32_t c = 0; c < g.class_count; ++c) {
      classes_.push_back({g.class_set_first[c], g.class_set_first[c + 1] - g.class_set_first[c]});
    }
    class_sets_ = g.class_sets;
    topo_scores_ = g.topology_scores;
  }

  std::vector<uint32_t> name_index() const {
    uint64_t buckets = 1;
    while (buckets < 2 * static_cast<uint64_t>(nodes_out_.size())) buckets <<= 1;
    if (buckets > (1ull << 31)) fail("too many names");
    std::vector<uint32_t> index(buckets, 0);
    uint32_t mask = static_cast<uint32_t>(buckets - 1);
    for (uint32_t n = 0; n < nodes_out_.size(); ++n) {
      const uint8_t* name = blob_.data() + nodes_out_[n].name.off;
      uint32_t b = snap::name_hash(name, nodes_out_[n].name.len) & mask;
      while (index[b] != 0) b = (b + 1) & mask;
      index[b] = n + 1;
    }
    return index;
  }

  template <typename T>
  static void add_section(std::vector<uint8_t>& image, snap::Header& h, uint32_t id,
                          const std::vector<T>& items) {
    while (image.size() % 8 != 0) image.push_back(0);
    snap::SectionEntry& e = h.sections[h.section_count++];
    e.id = id;
    e.elem_size = sizeof(T);
    e.offset = image.size();
    e.size = items.size() * sizeof(T);
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(items.data());
    image.insert(image.end(), bytes, bytes + e.size);
  }

  std::vector<uint8_t> layout() const {
    for (size_t count : {nodes_out_.size(), rrsets_.size(), rdatas_.size(), members_.size(),
                         pools_.size(), health_.slots.size(), pool_sets_.size(), set_pools_.size(),
                         rules_.size(), rule_sets_.size(), health_.topo_picks.size()}) {
      if (count >= UINT32_MAX) fail("snapshot has too many entries");
    }
    snap::Header h{};
    std::memcpy(h.magic, snap::kMagic, sizeof(h.magic));
    h.format_version = snap::kFormatVersion;
    h.header_size = sizeof(snap::Header);
    h.generation = model_.generation;
    h.created_unix_ms =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
    std::vector<uint8_t> image(sizeof(snap::Header), 0);
    add_section(image, h, snap::kSecBlob, blob_);
    add_section(image, h, snap::kSecZones, zones_);
    add_section(image, h, snap::kSecNodes, nodes_out_);
    add_section(image, h, snap::kSecNameIndex, name_index());
    add_section(image, h, snap::kSecRRsets, rrsets_);
    add_section(image, h, snap::kSecRdatas, rdatas_);
    add_section(image, h, snap::kSecServices, services_);
    add_section(image, h, snap::kSecPools, pools_);
    add_section(image, h, snap::kSecMembers, members_);
    add_section(image, h, snap::kSecPoolSlots, health_.slots);
    static const std::vector<uint8_t> kNoTable;
    add_section(image, h, snap::kSecLpm4, model_.geo ? model_.geo->lpm4 : kNoTable);
    add_section(image, h, snap::kSecLpm6, model_.geo ? model_.geo->lpm6 : kNoTable);
    add_section(image, h, snap::kSecClientSets, client_sets_);
    add_section(image, h, snap::kSecClasses, classes_);
    add_section(image, h, snap::kSecClassSets, class_sets_);
    add_section(image, h, snap::kSecDatacenters, datacenters_);
    add_section(image, h, snap::kSecTopoScores, topo_scores_);
    add_section(image, h, snap::kSecPoolSets, pool_sets_);
    add_section(image, h, snap::kSecSetPools, set_pools_);
    add_section(image, h, snap::kSecRules, rules_);
    add_section(image, h, snap::kSecClassRules, class_rules_);
    add_section(image, h, snap::kSecTopoMaps, health_.topo_maps);
    add_section(image, h, snap::kSecTopoPicks, health_.topo_picks);
    add_section(image, h, snap::kSecRuleSets, rule_sets_);
    const AnswerRecords answers =
        render_answer_records(blob_, rrsets_, rdatas_, services_, pools_, members_);
    add_section(image, h, snap::kSecAnswerRecords, answers.bytes);
    add_section(image, h, snap::kSecRRsetAnswers, answers.rrsets);
    add_section(image, h, snap::kSecMemberAnswers, answers.members);
    std::vector<snap::PickEntry> picks;
    fill_pick_table(pick_sources(rules_, pool_sets_, set_pools_, pools_, class_rules_,
                                 health_.topo_maps, health_.topo_picks),
                    services_, class_count(), &picks);
    add_section(image, h, snap::kSecPickTable, picks);
    while (image.size() % 8 != 0) image.push_back(0);
    h.total_size = image.size();
    h.checksum = snap::image_checksum(image.data() + sizeof(h), image.size() - sizeof(h));
    std::memcpy(image.data(), &h, sizeof(h));
    return image;
  }

  const SnapshotModel& model_;
  const ClassTables class_tables_;
  std::map<WireName, NodeInfo, WireNameLess>
      nodes_;  // byte order of wire names: deterministic node order

  std::vector<uint8_t> blob_;
  std::map<std::string, uint32_t> interned_;
  std::vector<snap::Zone> zones_;
  std::vector<snap::Node> nodes_out_;
  std::vector<snap::RRset> rrsets_;
  std::vector<snap::Rdata> rdatas_;
  std::vector<snap::Service> services_;
  std::vector<snap::Pool> pools_;
  std::vector<snap::Member> members_;
  std::vector<snap::ClientSet> client_sets_;
  std::vector<snap::Datacenter> datacenters_;
  std::vector<snap::ClientClass> classes_;
  std::vector<uint32_t> class_sets_;
  std::vector<uint16_t> topo_scores_;
  std::vector<snap::PoolSet> pool_sets_;
  std::vector<uint32_t> set_pools_;
  std::vector<snap::Rule> rules_;
  std::vector<uint32_t> rule_sets_;
  std::vector<uint16_t> class_rules_;
  std::map<std::vector<uint16_t>, uint32_t> class_rules_index_;
  HealthTables health_;  // pool slots, topology picks and maps
};

}  // namespace

bool member_usable(const MemberModel& m, bool unknown_health_is_up) {
  if (!m.enabled) return false;
  switch (m.mode) {
    case snap::MemberMode::kAlwaysUp:
      return true;
    case snap::MemberMode::kAuto:
      return m.health == snap::MemberHealth::kUp ||
             (m.health == snap::MemberHealth::kUnknown && unknown_health_is_up);
    default:
      return false;
  }
}

bool build_snapshot(const SnapshotModel& model, std::vector<uint8_t>* image, std::string* error) {
  try {
    *image = Builder(model).build();
    return true;
  } catch (const BuildError& e) {
    if (error != nullptr) *error = e.what();
  } catch (const std::bad_alloc&) {
    if (error != nullptr) *error = "out of memory while building the snapshot";
  } catch (const std::exception& e) {
    if (error != nullptr) *error = std::string("snapshot build failed: ") + e.what();
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Health-only rebuilds.

namespace {

// A field added to the model must be sorted into configuration (compared below) or health
// (copied below, recomputed by build_health): these sizes make the compiler say so.
static_assert(sizeof(StaticRecord) == 56 && sizeof(ZoneModel) == 80 && sizeof(MemberModel) == 96 &&
                  sizeof(PoolModel) == 64 && sizeof(PoolSetModel) == 56 &&
                  sizeof(SwitchPolicy) == 16 && sizeof(RuleModel) == 40 &&
                  sizeof(ServiceModel) == 160 && sizeof(SnapshotModel) == 176,
              "the model changed: update same_configuration, copy_health_fields and "
              "SnapshotCompiler::build_health");

bool same_record(const StaticRecord& a, const StaticRecord& b) {
  return a.type == b.type && a.ttl == b.ttl && a.owner == b.owner && a.rdata == b.rdata;
}

bool same_zone(const ZoneModel& a, const ZoneModel& b) {
  return a.soa_ttl == b.soa_ttl && a.apex == b.apex && a.soa_rdata == b.soa_rdata &&
         std::equal(a.records.begin(), a.records.end(), b.records.begin(), b.records.end(),
                    same_record);
}

bool same_member(const MemberModel& a, const MemberModel& b) {
  return a.weight == b.weight && a.mode == b.mode && a.datacenter == b.datacenter &&
         a.monitors_needed == b.monitors_needed && a.name == b.name && a.rdata == b.rdata &&
         a.monitors == b.monitors;
}

bool same_pool(const PoolModel& a, const PoolModel& b) {
  return a.method == b.method && a.alternate == b.alternate &&
         a.fallback_method == b.fallback_method && a.return_n == b.return_n &&
         a.persist_v4 == b.persist_v4 && a.persist_v6 == b.persist_v6 && a.name == b.name &&
         std::equal(a.members.begin(), a.members.end(), b.members.begin(), b.members.end(),
                    same_member);
}

bool same_rule(const RuleModel& a, const RuleModel& b) {
  return a.primary == b.primary && a.secondary == b.secondary && a.client_sets == b.client_sets;
}

bool same_service(const ServiceModel& a, const ServiceModel& b) {
  const SwitchPolicy& p = a.switch_policy;
  const SwitchPolicy& q = b.switch_policy;
  return a.rtype == b.rtype && a.empty_action == b.empty_action && a.use_ecs == b.use_ecs &&
         p.min_members == q.min_members && p.min_percent == q.min_percent &&
         p.hold_down == q.hold_down && p.hold_down_s == q.hold_down_s && a.name == b.name &&
         a.fallback == b.fallback &&
         std::equal(a.pool_sets.begin(), a.pool_sets.end(), b.pool_sets.begin(), b.pool_sets.end(),
                    [](const PoolSetModel& x, const PoolSetModel& y) {
                      return x.name == y.name && x.pools == y.pools;
                    }) &&
         std::equal(a.rules.begin(), a.rules.end(), b.rules.begin(), b.rules.end(), same_rule) &&
         std::equal(a.pools.begin(), a.pools.end(), b.pools.begin(), b.pools.end(), same_pool);
}

uint64_t micros_since(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
}

// Section `id` of a valid-by-construction image, read in place (sections are 8-byte aligned
// and the image's buffer comes from the allocator, so the elements are aligned).
template <typename T>
std::span<const T> section_span(const std::vector<uint8_t>& image, uint32_t id) {
  const snap::Header& h = *reinterpret_cast<const snap::Header*>(image.data());
  for (uint32_t i = 0; i < h.section_count; ++i) {
    const snap::SectionEntry& e = h.sections[i];
    if (e.id != id) continue;
    return {reinterpret_cast<const T*>(image.data() + e.offset), e.size / sizeof(T)};
  }
  fail("internal: the image has no section " + std::to_string(id));
}

// The same as a copy: the sections health builds rewrite in place.
template <typename T>
std::vector<T> section_copy(const std::vector<uint8_t>& image, uint32_t id) {
  const std::span<const T> in = section_span<T>(image, id);
  return std::vector<T>(in.begin(), in.end());
}

uint64_t unix_ms_now() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

bool same_configuration(const SnapshotModel& a, const SnapshotModel& b) {
  return a.unknown_health_is_up == b.unknown_health_is_up && a.geo == b.geo &&
         a.ecs_max_v4 == b.ecs_max_v4 && a.ecs_max_v6 == b.ecs_max_v6 &&
         a.client_sets == b.client_sets && a.client_set_is_isp_line == b.client_set_is_isp_line &&
         a.datacenters == b.datacenters &&
         std::equal(a.zones.begin(), a.zones.end(), b.zones.begin(), b.zones.end(), same_zone) &&
         std::equal(a.services.begin(), a.services.end(), b.services.begin(), b.services.end(),
                    same_service);
}

void copy_health_fields(const SnapshotModel& from, SnapshotModel* to) {
  to->generation = from.generation;
  for (size_t s = 0; s < from.services.size(); ++s) {
    const ServiceModel& src = from.services[s];
    ServiceModel& dst = to->services[s];
    dst.ttl = src.ttl;
    for (size_t r = 0; r < src.rules.size(); ++r) {
      dst.rules[r].use_secondary = src.rules[r].use_secondary;
      dst.rules[r].switch_reason = src.rules[r].switch_reason;
      dst.rules[r].hold_down_left_s = src.rules[r].hold_down_left_s;
    }
    for (size_t p = 0; p < src.pools.size(); ++p) {
      for (size_t m = 0; m < src.pools[p].members.size(); ++m) {
        dst.pools[p].members[m].health = src.pools[p].members[m].health;
        dst.pools[p].members[m].enabled = src.pools[p].members[m].enabled;
      }
    }
  }
}

void reset_to_configuration(const SnapshotModel& config, SnapshotModel* image_model) {
  if (same_configuration(config, *image_model)) {
    copy_health_fields(config, image_model);
  } else {
    *image_model = config;
  }
}

std::vector<uint8_t> ImageParts::flatten() const {
  std::vector<uint8_t> out;
  out.reserve(size);
  for (const auto& [data, len] : parts) out.insert(out.end(), data, data + len);
  return out;
}

// The last full build and what health-only builds reuse of it, plus their output buffers (kept
// from one build to the next, so a health build allocates almost nothing).
struct SnapshotCompiler::Kept {
  SnapshotModel config;       // the model of the full build
  std::vector<uint8_t> base;  // its image
  std::vector<snap::Service> services;
  std::vector<snap::Pool> pools;
  std::vector<snap::Member> members;
  std::vector<snap::Rule> rules;
  std::vector<snap::RRset> rrsets;
  // What the answer records are rendered from (in `base`): a health build re-renders them only
  // when a service's TTL (unstable_ttl) differs from the full build's, since a member's record
  // carries it.
  std::span<const uint8_t> blob;
  std::span<const snap::Rdata> rdatas;
  // What the pick table is derived from besides the health sections (configuration, in `base`).
  std::span<const snap::PoolSet> pool_sets;
  std::span<const uint32_t> set_pools;
  std::span<const uint16_t> class_rules;
  uint32_t class_count = 1;
  std::vector<uint32_t> base_ttls;                // per service
  std::vector<std::vector<uint16_t>> used_rules;  // per service: distinct class -> rule values
  // Per pool: the usable members its cached slots were computed for, and those slots.
  std::vector<std::vector<uint32_t>> usable_key;
  std::vector<PoolHealth> pool_health;
  std::vector<bool> cached;
  // Output of the latest build.
  HealthTables tables;
  AnswerRecords answers;
  std::vector<snap::PickEntry> picks;
  snap::Header header{};
  std::vector<uint8_t> flat;  // with_checksum: the image in one piece
  snap::OverlayHeader overlay_header{};
  ImageParts overlay;  // of the latest health build
};

SnapshotCompiler::SnapshotCompiler() = default;
SnapshotCompiler::~SnapshotCompiler() = default;

void SnapshotCompiler::reset() {
  kept_.reset();
}

bool SnapshotCompiler::build(const SnapshotModel& model, ImageParts* out, std::string* error,
                             bool with_checksum, bool same_configuration_as_last) {
  stats_ = Stats();
  auto start = std::chrono::steady_clock::now();
  // The kept configuration is that of every successful build since the full one.
  const bool same = kept_ != nullptr && ((same_configuration_as_last && last_build_ok_) ||
                                         same_configuration(kept_->config, model));
  last_build_ok_ = false;
  stats_.compare_us = micros_since(start);
  start = std::chrono::steady_clock::now();
  if (same) {
    stats_.incremental = true;
    last_build_ok_ = build_health(model, out, error, with_checksum);
    stats_.build_us = micros_since(start);
    return last_build_ok_;
  }
  kept_.reset();
  auto kept = std::make_unique<Kept>();
  if (!build_snapshot(model, &kept->base, error)) return false;
  try {
    const std::vector<uint8_t>& image = kept->base;
    kept->config = model;
    kept->services = section_copy<snap::Service>(image, snap::kSecServices);
    kept->pools = section_copy<snap::Pool>(image, snap::kSecPools);
    kept->members = section_copy<snap::Member>(image, snap::kSecMembers);
    kept->rules = section_copy<snap::Rule>(image, snap::kSecRules);
    kept->rrsets = section_copy<snap::RRset>(image, snap::kSecRRsets);
    kept->blob = section_span<uint8_t>(image, snap::kSecBlob);
    kept->rdatas = section_span<snap::Rdata>(image, snap::kSecRdatas);
    kept->pool_sets = section_span<snap::PoolSet>(image, snap::kSecPoolSets);
    kept->set_pools = section_span<uint32_t>(image, snap::kSecSetPools);
    kept->class_rules = section_span<uint16_t>(image, snap::kSecClassRules);
    kept->class_count = ClassTables(model).count();
    for (const snap::Service& svc : kept->services) kept->base_ttls.push_back(svc.ttl);
    const std::span<const uint16_t> class_rules =
        section_span<uint16_t>(image, snap::kSecClassRules);
    const uint32_t classes = ClassTables(model).count();
    for (const snap::Service& svc : kept->services) {
      kept->used_rules.push_back(
          svc.class_rules == kNone ? std::vector<uint16_t>{}
                                   : distinct_rules(class_rules.data() + svc.class_rules, classes));
    }
    kept->usable_key.resize(kept->pools.size());
    kept->pool_health.resize(kept->pools.size());
    kept->cached.assign(kept->pools.size(), false);
  } catch (const std::exception& e) {
    if (error != nullptr) *error = std::string("snapshot build failed: ") + e.what();
    return false;
  }
  kept_ = std::move(kept);
  // Fills the per-pool caches now, while a full build takes its time anyway: the first health
  // change after it then recomputes only the pools it touches (it would otherwise pay for all).
  ImageParts scratch;
  if (!build_health(model, &scratch, error, /*with_checksum=*/false)) {
    kept_.reset();
    return false;
  }
  ++base_id_;
  last_build_ok_ = true;
  out->parts = {{kept_->base.data(), kept_->base.size()}};
  out->size = kept_->base.size();
  stats_.pools = static_cast<uint32_t>(kept_->pools.size());
  stats_.pools_recomputed = stats_.pools;
  stats_.build_us = micros_since(start);
  return true;
}

bool SnapshotCompiler::build_health(const SnapshotModel& model, ImageParts* out, std::string* error,
                                    bool with_checksum) {
  Kept& k = *kept_;
  bool ttl_changed = false;
  try {
    const ClassTables classes(model);
    const bool unknown_up = model.unknown_health_is_up;
    HealthTables& tables = k.tables;
    tables.slots.clear();
    tables.topo_picks.clear();
    tables.topo_maps.clear();
    tables.topo_maps_index.clear();
    // Every health field of these is rewritten below; the rest is the full build's.
    std::vector<snap::Service>& services = k.services;
    std::vector<snap::Pool>& pools = k.pools;
    std::vector<snap::Member>& members = k.members;
    std::vector<snap::Rule>& rules = k.rules;
    std::vector<uint32_t> usable;
    uint32_t recomputed = 0;
    for (size_t s = 0; s < model.services.size(); ++s) {
      const ServiceModel& sm = model.services[s];
      snap::Service& svc = services[s];
      for (size_t i = 0; i < sm.pools.size(); ++i) {
        const PoolModel& pm = sm.pools[i];
        const uint32_t p = svc.pool_first + static_cast<uint32_t>(i);
        snap::Pool& pool = pools[p];
        usable.clear();
        for (uint32_t j = 0; j < pm.members.size(); ++j) {
          const MemberModel& mm = pm.members[j];
          if (const char* problem = member_state_problem(mm)) {
            fail("service " + text(sm.name) + " " + type_text(sm.rtype) + ": pool " + pm.name +
                 ": member " + mm.name + ": " + problem);
          }
          snap::Member& m = members[pool.member_first + j];
          m.mode = static_cast<uint8_t>(mm.mode);
          m.health = static_cast<uint8_t>(mm.health);
          m.enabled = mm.enabled ? 1 : 0;
          m.usable = member_usable(mm, unknown_up) ? 1 : 0;
          if (m.usable) usable.push_back(pool.member_first + j);
        }
        if (!k.cached[p] || k.usable_key[p] != usable) {
          k.pool_health[p] = pool_health(pm, pool.member_first, unknown_up, classes);
          k.usable_key[p] = usable;
          k.cached[p] = true;
          ++recomputed;
        }
        tables.append(k.pool_health[p], pm.uses(snap::PoolMethod::kTopology), &pool);
      }
      const Steering st = steering_of(sm);
      for (size_t r = 0; r < st.rules.size(); ++r) {
        if (const char* problem = rule_decision_problem(st.rules[r])) {
          fail("service " + text(sm.name) + " " + type_text(sm.rtype) + ": rule " +
               std::to_string(r + 1) + ": " + problem);
        }
        decide_rule(sm, st, st.rules[r], unknown_up, &rules[svc.rule_first + r]);
      }
      svc.ttl = sm.ttl;
      const bool vary = svc.class_rules != kNone && rules_vary(st, k.used_rules[s]);
      svc.flags = static_cast<uint8_t>((svc.flags & ~snap::kSvcRulesVary) |
                                       (vary ? snap::kSvcRulesVary : 0));
    }
    for (snap::RRset& rs : k.rrsets) {
      if (rs.kind == snap::kRRsetGslb) rs.ttl = services[rs.rdata_first].ttl;
    }
    if (tables.slots.size() >= UINT32_MAX || tables.topo_picks.size() >= UINT32_MAX) {
      fail("snapshot has too many entries");
    }
    fill_pick_table(pick_sources(k.rules, k.pool_sets, k.set_pools, k.pools, k.class_rules,
                                 tables.topo_maps, tables.topo_picks),
                    k.services, k.class_count, &k.picks);
    ttl_changed = false;
    for (size_t s = 0; s < services.size(); ++s) ttl_changed |= services[s].ttl != k.base_ttls[s];
    if (ttl_changed) {
      k.answers = render_answer_records(k.blob, k.rrsets, k.rdatas, k.services, k.pools, k.members);
    }
    stats_.pools = static_cast<uint32_t>(k.pools.size());
    stats_.pools_recomputed = recomputed;
  } catch (const BuildError& e) {
    if (error != nullptr) *error = e.what();
    return false;
  } catch (const std::bad_alloc&) {
    if (error != nullptr) *error = "out of memory while building the snapshot";
    return false;
  }

  // The base image's layout with the health sections replaced: same order, same alignment.
  auto bytes_of = [](uint32_t id, const auto& v) {
    snap::SectionBytes b;
    b.id = id;
    b.elem_size = sizeof(v[0]);
    b.data = reinterpret_cast<const uint8_t*>(v.data());
    b.size = v.size() * sizeof(v[0]);
    return b;
  };
  const snap::SectionBytes recomputed[] = {
      bytes_of(ttl_changed ? snap::kSecAnswerRecords : snap::kMaxSections, k.answers.bytes),
      bytes_of(ttl_changed ? snap::kSecRRsetAnswers : snap::kMaxSections, k.answers.rrsets),
      bytes_of(ttl_changed ? snap::kSecMemberAnswers : snap::kMaxSections, k.answers.members),
      bytes_of(snap::kSecServices, k.services),
      bytes_of(snap::kSecPools, k.pools),
      bytes_of(snap::kSecMembers, k.members),
      bytes_of(snap::kSecRules, k.rules),
      bytes_of(snap::kSecRRsets, k.rrsets),
      bytes_of(snap::kSecPoolSlots, k.tables.slots),
      bytes_of(snap::kSecTopoPicks, k.tables.topo_picks),
      bytes_of(snap::kSecTopoMaps, k.tables.topo_maps),
      bytes_of(snap::kSecPickTable, k.picks),
  };
  const snap::Header& base = *reinterpret_cast<const snap::Header*>(k.base.data());
  snap::SectionBytes flat_sections[snap::kMaxSections];
  snap::SectionBytes changed[snap::kMaxSections];
  uint32_t changed_count = 0;
  for (uint32_t i = 0; i < base.section_count; ++i) {
    const snap::SectionEntry& e = base.sections[i];
    snap::SectionBytes& b = flat_sections[i];
    b = {e.id, e.elem_size, k.base.data() + e.offset, e.size};
    for (const snap::SectionBytes& fresh : recomputed) {
      if (fresh.id != e.id) continue;
      // The overlay carries only what differs from the base: the dataplane reads the rest from
      // the base it has mapped.
      const bool same =
          fresh.size == e.size && (e.size == 0 || std::memcmp(fresh.data, b.data, e.size) == 0);
      b = fresh;
      if (!same) changed[changed_count++] = fresh;
    }
  }
  snap::Header& h = k.header;
  h = base;
  h.generation = model.generation;
  h.created_unix_ms = unix_ms_now();
  h.checksum = 0;
  out->parts.clear();
  out->parts.emplace_back(reinterpret_cast<const uint8_t*>(&h), sizeof(h));
  snap::layout_sections(flat_sections, base.section_count, &h, &out->parts);
  out->size = h.total_size;

  snap::OverlayHeader& oh = k.overlay_header;
  oh = snap::OverlayHeader();
  std::memcpy(oh.magic, snap::kOverlayMagic, sizeof(oh.magic));
  oh.format_version = snap::kFormatVersion;
  oh.header_size = sizeof(oh);
  oh.generation = h.generation;
  oh.base_generation = base.generation;
  oh.created_unix_ms = h.created_unix_ms;
  k.overlay.parts.clear();
  k.overlay.parts.emplace_back(reinterpret_cast<const uint8_t*>(&oh), sizeof(oh));
  snap::layout_sections(changed, changed_count, &oh, &k.overlay.parts);
  k.overlay.size = oh.total_size;

  if (with_checksum) {
    k.flat = out->flatten();
    h.checksum = snap::image_checksum(k.flat.data() + sizeof(h), k.flat.size() - sizeof(h));
    std::memcpy(k.flat.data(), &h, sizeof(h));
    out->parts = {{k.flat.data(), k.flat.size()}};
  }
  return true;
}

const ImageParts* SnapshotCompiler::overlay() const {
  return kept_ != nullptr && stats_.incremental ? &kept_->overlay : nullptr;
}

const std::vector<uint8_t>* SnapshotCompiler::base_image() const {
  return kept_ != nullptr ? &kept_->base : nullptr;
}

}  // namespace gtm::control
