#include "control/policy/switch_policy.h"

#include "control/admin_state.h"
#include "control/compiler/snapshot_builder.h"
#include "dataplane/dns/name.h"

namespace gtm::control {

RuleSwitch::Decision RuleSwitch::update(bool primary_good, bool has_secondary,
                                        const SwitchPolicy& policy, SwitchClock::time_point now) {
  Decision d;
  if (!has_secondary) {
    on_secondary_ = false;
    primary_good_since_set_ = false;
    d.reason = primary_good ? snap::SwitchReason::kPrimaryGood : snap::SwitchReason::kNoSecondary;
    return d;
  }
  if (!primary_good) {
    on_secondary_ = true;
    primary_good_since_set_ = false;  // a hold-down starts over from the next good verdict
    d.use_secondary = true;
    d.reason = snap::SwitchReason::kPrimaryBelowMin;
    return d;
  }
  if (on_secondary_ && policy.hold_down) {
    if (!primary_good_since_set_) {
      primary_good_since_set_ = true;
      primary_good_since_ = now;
    }
    const auto until = primary_good_since_ + std::chrono::seconds(policy.hold_down_s);
    if (now < until) {
      d.use_secondary = true;
      d.reason = snap::SwitchReason::kHoldDown;
      d.hold_down_left_s =
          static_cast<uint32_t>(std::chrono::ceil<std::chrono::seconds>(until - now).count());
      d.deadline = until;
      return d;
    }
  }
  on_secondary_ = false;
  primary_good_since_set_ = false;
  return d;
}

bool primary_good(const ServiceModel& svc, const RuleModel& rule, bool unknown_health_is_up,
                  uint32_t* usable_out, uint32_t* total_out) {
  uint32_t usable = 0;
  uint32_t total = 0;
  if (rule.primary < svc.pool_sets.size()) {
    for (uint32_t p : svc.pool_sets[rule.primary].pools) {
      if (p >= svc.pools.size()) continue;
      for (const MemberModel& m : svc.pools[p].members) {
        ++total;
        usable += member_usable(m, unknown_health_is_up) ? 1 : 0;
      }
    }
  }
  if (usable_out != nullptr) *usable_out = usable;
  if (total_out != nullptr) *total_out = total;
  const SwitchPolicy& pol = svc.switch_policy;
  return usable >= pol.min_members &&
         static_cast<uint64_t>(usable) * 100 >= static_cast<uint64_t>(pol.min_percent) * total;
}

namespace {

// What makes a rule "the same rule" across images and reloads.
std::string rule_key(const ServiceModel& svc, size_t r) {
  const RuleModel& rule = svc.rules[r];
  const char* type = dns::rr_type_name(svc.rtype);
  std::string key =
      wire_name_text(svc.name) + " " + (type != nullptr ? type : "?") + " #" + std::to_string(r);
  for (uint32_t set : {rule.primary, rule.secondary}) {
    key += " |";
    if (set >= svc.pool_sets.size()) continue;
    for (uint32_t p : svc.pool_sets[set].pools) {
      if (p < svc.pools.size()) key += " " + svc.pools[p].name;
    }
  }
  return key;
}

}  // namespace

void SwitchTracker::apply(SnapshotModel* model, SwitchClock::time_point now,
                          bool same_rules_as_last) {
  next_deadline_.reset();
  auto decide = [&](ServiceModel& svc, RuleModel& rule, RuleSwitch& state) {
    const bool good = primary_good(svc, rule, model->unknown_health_is_up);
    const RuleSwitch::Decision d =
        state.update(good, rule.secondary != snap::kNone, svc.switch_policy, now);
    rule.use_secondary = d.use_secondary;
    rule.switch_reason = d.reason;
    rule.hold_down_left_s = d.hold_down_left_s;
    if (d.deadline && (!next_deadline_ || *d.deadline < *next_deadline_)) {
      next_deadline_ = d.deadline;
    }
  };
  size_t rule_count = 0;
  for (const ServiceModel& svc : model->services) rule_count += svc.rules.size();
  if (same_rules_as_last && order_.size() == rule_count) {
    // The rules of the last call, in the same order: their states by position, no keys built.
    size_t i = 0;
    for (ServiceModel& svc : model->services) {
      for (RuleModel& rule : svc.rules) decide(svc, rule, *order_[i++]);
    }
    return;
  }
  std::map<std::string, RuleSwitch> kept;
  std::vector<std::string> keys;
  keys.reserve(rule_count);
  for (ServiceModel& svc : model->services) {
    for (size_t r = 0; r < svc.rules.size(); ++r) {
      keys.push_back(rule_key(svc, r));
      auto found = rules_.find(keys.back());
      RuleSwitch state = found != rules_.end() ? found->second : RuleSwitch();
      decide(svc, svc.rules[r], state);
      kept.insert_or_assign(keys.back(), state);
    }
  }
  rules_ = std::move(kept);
  order_.clear();
  for (const std::string& key : keys) order_.push_back(&rules_.at(key));
}

std::vector<SwitchEvent> switch_events(const SnapshotModel& before, const SnapshotModel& after) {
  std::map<std::pair<WireName, uint16_t>, const ServiceModel*> old_services;
  for (const ServiceModel& old : before.services)
    old_services.emplace(std::pair(old.name, old.rtype), &old);
  std::vector<SwitchEvent> out;
  for (const ServiceModel& now : after.services) {
    auto found = old_services.find(std::pair(now.name, now.rtype));
    if (found == old_services.end()) continue;
    const ServiceModel& old = *found->second;
    for (size_t r = 0; r < now.rules.size() && r < old.rules.size(); ++r) {
      if (old.rules[r].use_secondary == now.rules[r].use_secondary) continue;
      const char* type = dns::rr_type_name(now.rtype);
      SwitchEvent e;
      e.service = wire_name_text(now.name);
      e.type = type != nullptr ? type : std::to_string(now.rtype);
      e.rule = static_cast<uint32_t>(r + 1);
      e.to_secondary = now.rules[r].use_secondary;
      e.why = now.rules[r].switch_reason == snap::SwitchReason::kPrimaryBelowMin
                  ? "primary below its minimum"
                  : "primary good again";
      out.push_back(std::move(e));
    }
  }
  return out;
}

std::string switch_event_text(const SwitchEvent& e) {
  return e.service + " " + e.type + " rule " + std::to_string(e.rule) + ": " +
         (e.to_secondary ? "primary set -> secondary set" : "secondary set -> primary set") + " (" +
         e.why + ")";
}

}  // namespace gtm::control
