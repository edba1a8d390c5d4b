#include "control/monitor/health_tracker.h"

#include "control/admin_state.h"

namespace gtm::control {

std::string HealthTracker::member_key(const std::string& service, uint16_t rtype,
                                      const std::string& pool, const std::string& member) {
  return service + "|" + std::to_string(rtype) + "|" + pool + "|" + member;
}

void HealthTracker::configure(const SnapshotModel& model, const std::vector<MonitorSpec>& monitors,
                              Prober* prober, ProbeClock::time_point now) {
  std::map<std::string, Target> previous;
  for (Target& t : targets_) previous.emplace(t.key, std::move(t));
  targets_.clear();
  members_.clear();

  std::map<std::string, size_t> index_of;  // target key -> index in targets_
  for (const ServiceModel& svc : model.services) {
    const std::string service = wire_name_text(svc.name);
    for (const PoolModel& pool : svc.pools) {
      for (const MemberModel& m : pool.members) {
        if (m.mode != snap::MemberMode::kAuto || m.monitors.empty()) continue;
        MemberTargets& member = members_[member_key(service, svc.rtype, pool.name, m.name)];
        std::vector<size_t>& mine = member.targets;
        for (const std::string& monitor : m.monitors) {
          const MonitorSpec* spec = nullptr;
          for (const MonitorSpec& s : monitors) {
            if (s.name == monitor) spec = &s;
          }
          if (spec == nullptr) continue;  // the loader refuses unknown names
          ProbeTarget probe;
          std::string where;
          if (!make_probe_address(m.rdata, spec->port, &probe.addr, &probe.addr_len, &where)) {
            continue;
          }
          probe.spec = *spec;
          probe.label = where + " (" + spec->name + ")";
          const std::string key = probe.label;
          auto [it, inserted] = index_of.emplace(key, targets_.size());
          if (inserted) {
            Target t;
            auto old = previous.find(key);
            if (old != previous.end()) t = std::move(old->second);
            t.key = key;
            t.probe = std::move(probe);  // the spec may have changed (interval, thresholds)
            targets_.push_back(std::move(t));
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
  probes.reserve(targets_.size());
  for (const Target& t : targets_) probes.push_back(t.probe);
  prober->set_targets(std::move(probes), now);
}

bool HealthTracker::apply(const std::vector<ProbeResult>& results, std::string* reason) {
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
    *reason = t.probe.label + ": " + (next == snap::MemberHealth::kUp ? "up after " : "down after ") +
              std::to_string(r.ok ? t.successes : t.failures) +
              (r.ok ? " successes: " : " failures: ") + r.detail;
  }
  return changed;
}

void HealthTracker::annotate(SnapshotModel* model) const {
  for (ServiceModel& svc : model->services) {
    const std::string service = wire_name_text(svc.name);
    for (PoolModel& pool : svc.pools) {
      for (MemberModel& m : pool.members) {
        auto it = members_.find(member_key(service, svc.rtype, pool.name, m.name));
        if (it == members_.end() || it->second.targets.empty()) continue;
        const MemberTargets& mt = it->second;
        uint32_t up = 0;
        uint32_t down = 0;
        for (size_t i : mt.targets) {
          up += targets_[i].state == snap::MemberHealth::kUp;
          down += targets_[i].state == snap::MemberHealth::kDown;
        }
        const uint32_t total = static_cast<uint32_t>(mt.targets.size());
        if (up >= mt.needed) {
          m.health = snap::MemberHealth::kUp;
        } else if (total - down < mt.needed) {
          m.health = snap::MemberHealth::kDown;  // not enough monitors left that could say up
        } else {
          m.health = snap::MemberHealth::kUnknown;
        }
      }
    }
  }
}

}  // namespace gtm::control
