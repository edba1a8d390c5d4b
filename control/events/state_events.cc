#include "control/events/state_events.h"

#include <map>
#include <tuple>

#include "control/admin_state.h"
#include "control/compiler/snapshot_builder.h"
#include "control/json_text.h"
#include "dataplane/dns/name.h"

namespace gtm::control {
namespace {

using Kind = StateEvent::Kind;

struct Key {
  Kind kind;
  std::string service, type, pool, member;
  bool operator<(const Key& o) const {
    return std::tie(service, type, kind, pool, member) <
           std::tie(o.service, o.type, o.kind, o.pool, o.member);
  }
};

// Every entity of a model with its state, plus the order entities were met in.
struct States {
  std::map<Key, bool> up;
  std::vector<Key> order;
  void add(Key k, bool is_up) {
    if (up.emplace(k, is_up).second) order.push_back(std::move(k));
  }
};

States states_of(const SnapshotModel& m) {
  States s;
  for (const ServiceModel& svc : m.services) {
    const std::string service = wire_name_text(svc.name);
    const char* type_name = dns::rr_type_name(svc.rtype);
    const std::string type = type_name != nullptr ? type_name : std::to_string(svc.rtype);
    bool service_up = false;
    for (const PoolModel& p : svc.pools) {
      bool pool_up = false;
      for (const MemberModel& mm : p.members) {
        const bool usable = member_usable(mm, m.unknown_health_is_up);
        pool_up |= usable;
        s.add({Kind::kMember, service, type, p.name, mm.name}, usable);
      }
      service_up |= pool_up;
      s.add({Kind::kPool, service, type, p.name, ""}, pool_up);
    }
    s.add({Kind::kService, service, type, "", ""}, service_up);
  }
  return s;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kMember:
      return "member";
    case Kind::kPool:
      return "pool";
    case Kind::kService:
      return "service";
  }
  return "member";
}

const char* state_name(bool up) { return up ? "up" : "down"; }

// Whether two models name the same services, pools and members in the same order: then their
// entities pair up by position (the common case: a health change), without a map of keys.
bool same_shape(const SnapshotModel& a, const SnapshotModel& b) {
  if (a.services.size() != b.services.size()) return false;
  for (size_t s = 0; s < a.services.size(); ++s) {
    const ServiceModel& x = a.services[s];
    const ServiceModel& y = b.services[s];
    if (x.rtype != y.rtype || x.name != y.name || x.pools.size() != y.pools.size()) return false;
    for (size_t p = 0; p < x.pools.size(); ++p) {
      const PoolModel& px = x.pools[p];
      const PoolModel& py = y.pools[p];
      if (px.name != py.name || px.members.size() != py.members.size()) return false;
      for (size_t m = 0; m < px.members.size(); ++m) {
        if (px.members[m].name != py.members[m].name) return false;
      }
    }
  }
  return true;
}

// diff_states for models of the same shape: the same events in the same order.
std::vector<StateEvent> diff_by_position(const SnapshotModel& before, const SnapshotModel& after) {
  std::vector<StateEvent> events;
  for (size_t s = 0; s < after.services.size(); ++s) {
    const ServiceModel& was = before.services[s];
    const ServiceModel& now = after.services[s];
    std::string service;  // made when the first event of the service needs it
    std::string type;
    auto add = [&](Kind kind, const std::string& pool, const std::string& member, bool from,
                   bool to) {
      if (service.empty()) {
        service = wire_name_text(now.name);
        const char* type_name = dns::rr_type_name(now.rtype);
        type = type_name != nullptr ? type_name : std::to_string(now.rtype);
      }
      events.push_back({kind, service, type, pool, member, from, to});
    };
    bool service_was = false;
    bool service_is = false;
    for (size_t p = 0; p < now.pools.size(); ++p) {
      bool pool_was = false;
      bool pool_is = false;
      for (size_t m = 0; m < now.pools[p].members.size(); ++m) {
        const bool from = member_usable(was.pools[p].members[m], before.unknown_health_is_up);
        const bool to = member_usable(now.pools[p].members[m], after.unknown_health_is_up);
        pool_was |= from;
        pool_is |= to;
        if (from != to)
          add(Kind::kMember, now.pools[p].name, now.pools[p].members[m].name, from, to);
      }
      service_was |= pool_was;
      service_is |= pool_is;
      if (pool_was != pool_is) add(Kind::kPool, now.pools[p].name, "", pool_was, pool_is);
    }
    if (service_was != service_is) add(Kind::kService, "", "", service_was, service_is);
  }
  return events;
}

}  // namespace

std::vector<StateEvent> diff_states(const SnapshotModel& before, const SnapshotModel& after) {
  if (same_shape(before, after)) return diff_by_position(before, after);
  const States old_states = states_of(before);
  const States new_states = states_of(after);
  std::vector<StateEvent> events;
  for (const Key& k : new_states.order) {
    auto was = old_states.up.find(k);
    if (was == old_states.up.end()) continue;  // new in this configuration: no transition
    const bool is_up = new_states.up.at(k);
    if (was->second == is_up) continue;
    events.push_back({k.kind, k.service, k.type, k.pool, k.member, was->second, is_up});
  }
  return events;
}

std::string event_text(const StateEvent& e, const std::string& reason) {
  std::string where = e.service + " " + e.type;
  if (!e.pool.empty()) where += " " + e.pool;
  if (!e.member.empty()) where += " " + e.member;
  return std::string(kind_name(e.kind)) + " " + where + ": " + state_name(e.was_up) + " -> " +
         state_name(e.is_up) + (reason.empty() ? "" : " (" + reason + ")");
}

std::string event_json(const StateEvent& e, const std::string& reason, uint64_t generation,
                       uint64_t time_ms) {
  std::string out = "{\"event\":\"" + std::string(kind_name(e.kind)) + "\",\"service\":\"" +
                    json_escape(e.service) + "\",\"type\":\"" + json_escape(e.type) + "\"";
  if (!e.pool.empty()) out += ",\"pool\":\"" + json_escape(e.pool) + "\"";
  if (!e.member.empty()) out += ",\"member\":\"" + json_escape(e.member) + "\"";
  out += ",\"from\":\"" + std::string(state_name(e.was_up)) + "\",\"to\":\"" +
         state_name(e.is_up) + "\",\"reason\":\"" + json_escape(reason) +
         "\",\"generation\":" + std::to_string(generation) +
         ",\"time_ms\":" + std::to_string(time_ms) + "}";
  return out;
}

std::string switch_event_json(const SwitchEvent& e, const std::string& reason, uint64_t generation,
                              uint64_t time_ms) {
  const char* primary = "primary";
  const char* secondary = "secondary";
  return "{\"event\":\"switch\",\"service\":\"" + json_escape(e.service) + "\",\"type\":\"" +
         json_escape(e.type) + "\",\"rule\":" + std::to_string(e.rule) + ",\"from\":\"" +
         (e.to_secondary ? primary : secondary) + "\",\"to\":\"" +
         (e.to_secondary ? secondary : primary) + "\",\"why\":\"" + json_escape(e.why) +
         "\",\"reason\":\"" + json_escape(reason) +
         "\",\"generation\":" + std::to_string(generation) +
         ",\"time_ms\":" + std::to_string(time_ms) + "}";
}

}  // namespace gtm::control
