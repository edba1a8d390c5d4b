// The switch policy: which pool set of each access-policy rule answers first.
//
// A rule's primary set is active while it has at least `min_members` usable members and at least
// `min_percent` of its configured members usable. Below that the secondary set takes over. Back:
// at once when the primary is good again (preemptive), or only after it has stayed good for
// `hold_down_s` (hold-down), so a flapping site does not pull traffic back and forth.
//
// This depends on health only, never on the client, so it is decided here in control, once per
// published image; the builder writes the decision into the snapshot and the engine just reads it.
// A hold-down ending is a change nobody else announces: next_deadline() tells the control loop
// when to publish for it.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/compiler/model.h"

namespace gtm::control {

using SwitchClock = std::chrono::steady_clock;

// One rule's state machine. Pure: its only inputs are the arguments, so tests drive it with a
// fake clock.
class RuleSwitch {
 public:
  struct Decision {
    bool use_secondary = false;
    snap::SwitchReason reason = snap::SwitchReason::kPrimaryGood;
    uint32_t hold_down_left_s = 0;                    // kHoldDown: rounded up
    std::optional<SwitchClock::time_point> deadline;  // kHoldDown: when the primary returns
  };

  Decision update(bool primary_good, bool has_secondary, const SwitchPolicy& policy,
                  SwitchClock::time_point now);

 private:
  bool on_secondary_ = false;
  bool primary_good_since_set_ = false;
  SwitchClock::time_point primary_good_since_{};
};

// Whether a rule's primary set meets the policy's minimum, counting members as the builder does
// (member_usable). Sets *usable and *total when given.
bool primary_good(const ServiceModel& svc, const RuleModel& rule, bool unknown_health_is_up,
                  uint32_t* usable = nullptr, uint32_t* total = nullptr);

// The switch state of every rule of the running configuration.
class SwitchTracker {
 public:
  // Decides every rule of `model` (health and operator overrides already applied) at `now` and
  // writes the decision into the rules. A rule keeps its state across calls and reloads while its
  // identity (service, type, position, and the pools of its primary and secondary sets) stays.
  // `same_rules_as_last`: the caller knows `model` has the configuration of the last call's
  // (same services, rules and pools): the states are then found by position, not by identity.
  void apply(SnapshotModel* model, SwitchClock::time_point now, bool same_rules_as_last = false);

  // The earliest time a decision changes by itself (a hold-down ending), if any.
  std::optional<SwitchClock::time_point> next_deadline() const { return next_deadline_; }

 private:
  std::map<std::string, RuleSwitch> rules_;
  std::vector<RuleSwitch*> order_;  // rules_ entries in the order of the last call's rules
  std::optional<SwitchClock::time_point> next_deadline_;
};

// A rule whose active set differs between two images (matched by service name, type and rule
// position): logged and sent to the webhooks like the member, pool and service events.
struct SwitchEvent {
  std::string service;  // "www.gtm.example."
  std::string type;     // "A", "AAAA" or "CNAME"
  uint32_t rule = 0;    // position in the access policy, from 1
  bool to_secondary = false;
  std::string why;  // "primary below its minimum", "primary good again"
};

std::vector<SwitchEvent> switch_events(const SnapshotModel& before, const SnapshotModel& after);

// The log line, e.g. "www.gtm.example. A rule 1: primary set -> secondary set (primary below its
// minimum)".
std::string switch_event_text(const SwitchEvent& e);

}  // namespace gtm::control
