// State-change events: what changed between two published images in whether a member, a pool or a
// service can answer. Computed from the models (configuration plus health and operator overrides)
// at publish time, so every source of change (reload, `gtmctl member disable`, probes) yields the
// same events, logged and sent to webhooks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/compiler/model.h"
#include "control/policy/switch_policy.h"

namespace gtm::control {

struct StateEvent {
  enum class Kind { kMember, kPool, kService };
  Kind kind = Kind::kMember;
  std::string service;  // "www.gtm.example."
  std::string type;     // "A", "AAAA" or "CNAME"
  std::string pool;     // empty for service events
  std::string member;   // empty for pool and service events
  bool was_up = false;
  bool is_up = false;
};

// Events for every member, pool and service present in both models whose state differs. A pool is
// up while it has a usable member; a service while one of its pools is up (its fallback does not
// count: answering from the fallback is the failure an operator wants to hear about). Ordered
// member, pool, service for each service, in configuration order.
std::vector<StateEvent> diff_states(const SnapshotModel& before, const SnapshotModel& after);

// One line for the log: "member www.gtm.example. A site-a a1: up -> down (reason)".
std::string event_text(const StateEvent& e, const std::string& reason);

// The webhook body (docs/config.md, `alerts`).
std::string event_json(const StateEvent& e, const std::string& reason, uint64_t generation,
                       uint64_t time_ms);
// The webhook body of a switch-policy transition: {"event":"switch",...,"rule":1,
// "from":"primary","to":"secondary","why":"primary below its minimum",...}.
std::string switch_event_json(const SwitchEvent& e, const std::string& reason, uint64_t generation,
                              uint64_t time_ms);

}  // namespace gtm::control
