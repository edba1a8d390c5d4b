#include "control/monitor/health_tracker.h"

#include <algorithm>

#include "control/admin_state.h"

namespace gtm::control {

std::string HealthTracker::member_key(const std::string& service, uint16_t rtype,
                                      const std::string& pool, const std::string& member) {
  return service + "|" + std::to_string(rtype) + "|" + pool + "|" + member;
}

bool HealthTracker::configure(const SnapshotModel& model, const std::vector<MonitorSpec>& monitors,
                              Prober* prober, ProbeClock::time_point now, std::string* error) {
  std::map<std::string, Target*> previous;
  for (Target& t : targets_) previous.emplace(t.key, &t);
  std::vector<Target> targets;
  std::map<std::string, MemberTargets> members;

  std::map<std::string, size_t> index_of;  // target key -> index in targets
  for (const ServiceModel& svc : model.services) {
    const std::string service = wire_name_text(svc.name);
    for (const PoolModel& pool : svc.pools) {
      for (const MemberModel& m : pool.members) {
        if (m.mode != snap::MemberMode::kAuto || m.monitors.empty()) continue;
        const std::string key = member_key(service, svc.rtype, pool.name, m.name);
        MemberTargets& member = members[key];
        if (auto old = members_.find(key); old != members_.end()) {
          member.health = old->second.health;
          member.changed_at = old->second.changed_at;
        }
        std::vector<size_t>& mine = member.targets;
        for (const std::string& monitor : m.monitors) {
          const MonitorSpec* spec = nullptr;
          for (const MonitorSpec& s : monitors) {
            if (s.name == monitor) spec = &s;
          }
          if (spec == nullptr) continue;  // the loader refuses unknown names
          ProbeTarget probe;
          if (!make_probe_address(m.rdata, spec->port, &probe.addr, &probe.addr_len, &probe.host)) {
            continue;
          }
          probe.spec = *spec;
          // An echo has no port: its label is the bare address.
          probe.label =
              (spec->type == MonitorSpec::Type::kIcmp ? probe.host : endpoint_text(probe)) + " (" +
              spec->name + ")";
          const std::string target_key = probe.label;
          auto [it, inserted] = index_of.emplace(target_key, targets.size());
          if (inserted) {
            Target t;
            auto old = previous.find(target_key);
            if (old != previous.end()) t = *old->second;
            t.key = target_key;
            t.probe = std::move(probe);  // the spec may have changed (interval, thresholds)
            targets.push_back(std::move(t));
          }
          mine.push_back(it->second);
        }
        member.needed = m.monitors_needed == 0 || m.monitors_needed > mine.size()
                            ? static_cast<uint32_t>(mine.size())
                            : m.monitors_needed;
      }
    }
  }
  std::vector<ProbeTarget> probes;
  probes.reserve(targets.size());
  for (const Target& t : targets) probes.push_back(t.probe);
  if (!prober->set_targets(std::move(probes), now, error)) return false;

  targets_ = std::move(targets);
  members_ = std::move(members);
  members_of_target_.assign(targets_.size(), {});
  for (auto& [key, member] : members_) {
    for (size_t i : member.targets) members_of_target_[i].push_back(&member);
    refresh(&member, now);  // the monitors or the rule may have changed
  }
  shape_ = Shape();
  for (const ServiceModel& svc : model.services) {
    const std::string service = wire_name_text(svc.name);
    shape_.services.emplace_back(svc.name, svc.rtype);
    shape_.pool_counts.push_back(svc.pools.size());
    for (const PoolModel& pool : svc.pools) {
      shape_.pools.push_back(pool.name);
      shape_.member_counts.push_back(pool.members.size());
      for (const MemberModel& m : pool.members) {
        shape_.members.push_back(m.name);
        shape_.tracked.push_back(find_member(service, svc, pool, m));
      }
    }
  }
  return true;
}

const HealthTracker::MemberTargets* HealthTracker::find_member(const std::string& service,
                                                               const ServiceModel& svc,
                                                               const PoolModel& pool,
                                                               const MemberModel& m) const {
  auto it = members_.find(member_key(service, svc.rtype, pool.name, m.name));
  return it == members_.end() ? nullptr : &it->second;
}

const std::vector<const HealthTracker::MemberTargets*>* HealthTracker::positions_for(
    const SnapshotModel& model) const {
  const Shape& sh = shape_;
  if (model.services.size() != sh.services.size()) return nullptr;
  size_t p = 0;
  size_t m = 0;
  for (size_t s = 0; s < model.services.size(); ++s) {
    const ServiceModel& svc = model.services[s];
    if (svc.rtype != sh.services[s].second || svc.name != sh.services[s].first ||
        svc.pools.size() != sh.pool_counts[s]) {
      return nullptr;
    }
    for (const PoolModel& pool : svc.pools) {
      if (pool.name != sh.pools[p] || pool.members.size() != sh.member_counts[p]) return nullptr;
      ++p;
      for (const MemberModel& member : pool.members) {
        if (member.name != sh.members[m++]) return nullptr;
      }
    }
  }
  return &sh.tracked;
}

snap::MemberHealth HealthTracker::health_of(const MemberTargets& mt,
                                            const std::vector<Target>& targets) {
  if (mt.targets.empty()) return snap::MemberHealth::kUnknown;
  uint32_t up = 0;
  uint32_t down = 0;
  for (size_t i : mt.targets) {
    up += targets[i].state == snap::MemberHealth::kUp;
    down += targets[i].state == snap::MemberHealth::kDown;
  }
  const uint32_t total = static_cast<uint32_t>(mt.targets.size());
  if (up >= mt.needed) return snap::MemberHealth::kUp;
  if (total - down < mt.needed) return snap::MemberHealth::kDown;  // too few left to say up
  return snap::MemberHealth::kUnknown;
}

void HealthTracker::refresh(MemberTargets* member, ProbeClock::time_point now) {
  const snap::MemberHealth next = health_of(*member, targets_);
  if (next == member->health) return;
  // Only a change between up and down is instability; unknown is the start (or a member whose
  // monitors disagree), and leaving it is not a flap.
  const snap::MemberHealth last_known = member->health;
  member->health = next;
  if (last_known != snap::MemberHealth::kUnknown && next != snap::MemberHealth::kUnknown) {
    member->changed_at = now;
  }
}

bool HealthTracker::apply(const std::vector<ProbeResult>& results, ProbeClock::time_point now,
                          std::string* reason) {
  bool changed = false;
  for (const ProbeResult& r : results) {
    if (r.target >= targets_.size()) continue;
    Target& t = targets_[r.target];
    if (r.ok) {
      ++t.successes;
      t.failures = 0;
    } else {
      ++t.failures;
      t.successes = 0;
    }
    snap::MemberHealth next = t.state;
    if (r.ok && t.state != snap::MemberHealth::kUp && t.successes >= t.probe.spec.rise) {
      next = snap::MemberHealth::kUp;
    } else if (!r.ok && t.state != snap::MemberHealth::kDown &&
               t.failures >= t.probe.spec.fall) {
      next = snap::MemberHealth::kDown;
    }
    if (next == t.state) continue;
    t.state = next;
    changed = true;
    for (MemberTargets* member : members_of_target_[r.target]) refresh(member, now);
    *reason = t.probe.label + ": " + (next == snap::MemberHealth::kUp ? "up after " : "down after ") +
              std::to_string(r.ok ? t.successes : t.failures) +
              (r.ok ? " successes: " : " failures: ") + r.detail;
  }
  return changed;
}

void HealthTracker::annotate(SnapshotModel* model) const {
  const std::vector<const MemberTargets*>* positions = positions_for(*model);
  size_t i = 0;
  for (ServiceModel& svc : model->services) {
    const std::string service = positions == nullptr ? wire_name_text(svc.name) : std::string();
    for (PoolModel& pool : svc.pools) {
      for (MemberModel& m : pool.members) {
        const MemberTargets* mt =
            positions == nullptr ? find_member(service, svc, pool, m) : (*positions)[i];
        ++i;
        if (mt == nullptr || mt->targets.empty()) continue;
        m.health = mt->health;
      }
    }
  }
}

ProbeClock::time_point HealthTracker::apply_unstable_ttl(
    SnapshotModel* model, const std::map<WireName, UnstableTtl>& policies,
    ProbeClock::time_point now) const {
  ProbeClock::time_point restore = ProbeClock::time_point::max();
  if (policies.empty()) return restore;
  const std::vector<const MemberTargets*>* positions = positions_for(*model);
  size_t i = 0;
  for (ServiceModel& svc : model->services) {
    size_t members = 0;
    for (const PoolModel& pool : svc.pools) members += pool.members.size();
    const size_t first = i;
    i += members;
    auto policy = policies.find(svc.name);
    if (policy == policies.end() || policy->second.ttl >= svc.ttl) continue;
    const auto window = std::chrono::milliseconds(policy->second.window_ms);
    const std::string service = positions == nullptr ? wire_name_text(svc.name) : std::string();
    std::optional<ProbeClock::time_point> last;
    size_t k = first;
    for (const PoolModel& pool : svc.pools) {
      for (const MemberModel& m : pool.members) {
        const MemberTargets* mt =
            positions == nullptr ? find_member(service, svc, pool, m) : (*positions)[k];
        ++k;
        if (mt == nullptr || !mt->changed_at) continue;
        last = std::max(last.value_or(*mt->changed_at), *mt->changed_at);
      }
    }
    if (!last || now - *last >= window) continue;
    svc.ttl = policy->second.ttl;
    restore = std::min(restore, *last + window);
  }
  return restore;
}

}  // namespace gtm::control
