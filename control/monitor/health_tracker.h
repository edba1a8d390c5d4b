// Turns probe verdicts into member health. Each (member address, monitor) pair is one probe target,
// shared by every member with that address and monitor. A target becomes up after `rise`
// consecutive successes and down after `fall` consecutive failures. A member needs
// `monitors_needed` of its targets up (0: all): up once that many are up, down once too many are
// down for that to be possible, unknown in between.
//
// The tracker outlives reloads: targets that a new configuration still has keep their state and
// counters, so a reload never makes a healthy site flap.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "control/compiler/model.h"
#include "control/config/config_loader.h"
#include "control/monitor/prober.h"

namespace gtm::control {

class HealthTracker {
 public:
  // Derives the probe targets from a configuration (members in mode auto with monitors) and hands
  // them to `prober`. Targets present before keep their state.
  void configure(const SnapshotModel& model, const std::vector<MonitorSpec>& monitors,
                 Prober* prober, ProbeClock::time_point now);

  // Feeds verdicts. Returns true when some target changed state; *reason then names the last
  // change ("192.0.2.10:80 (web): down after 3 failures: connect: Connection refused").
  bool apply(const std::vector<ProbeResult>& results, std::string* reason);

  // Sets `health` of every monitored member of `model` from its targets.
  void annotate(SnapshotModel* model) const;

  size_t target_count() const { return targets_.size(); }

 private:
  struct Target {
    std::string key;  // address + monitor name: identity across reloads
    ProbeTarget probe;
    snap::MemberHealth state = snap::MemberHealth::kUnknown;
    uint32_t successes = 0;  // consecutive
    uint32_t failures = 0;   // consecutive
  };
  static std::string member_key(const std::string& service, uint16_t rtype,
                                const std::string& pool, const std::string& member);

  std::vector<Target> targets_;                          // index = prober target index
  struct MemberTargets {
    std::vector<size_t> targets;
    uint32_t needed = 0;  // resolved: 1..targets.size()
  };
  std::map<std::string, MemberTargets> members_;
};

}  // namespace gtm::control
