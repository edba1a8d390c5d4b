// Turns probe verdicts into member health. Each (member address, monitor) pair is one probe target,
// shared by every member with that address and monitor. A target becomes up after `rise`
// consecutive successes and down after `fall` consecutive failures. A member needs
// `monitors_needed` of its targets up (0: all): up once that many are up, down once too many are
// down for that to be possible, unknown in between.
//
// The tracker outlives reloads: targets that a new configuration still has keep their state and
// counters, so a reload never makes a healthy site flap.
//
// It also remembers when each member last went between up and down, for the services that answer
// with a shorter TTL while a member is unstable (`unstable_ttl`, apply_unstable_ttl below).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/compiler/model.h"
#include "control/config/config_loader.h"
#include "control/monitor/prober.h"

namespace gtm::control {

class HealthTracker {
 public:
  // Derives the probe targets from a configuration (members in mode auto with monitors) and hands
  // them to `prober`. Targets and members present before keep their state. Fails, changing
  // nothing, when the prober cannot take the targets (*error says why).
  bool configure(const SnapshotModel& model, const std::vector<MonitorSpec>& monitors,
                 Prober* prober, ProbeClock::time_point now, std::string* error);

  // Feeds verdicts. Returns true when some target changed state; *reason then names the last
  // change ("192.0.2.10:80 (web): down after 3 failures: connect: Connection refused").
  bool apply(const std::vector<ProbeResult>& results, ProbeClock::time_point now,
             std::string* reason);

  // Sets `health` of every monitored member of `model` from its targets.
  void annotate(SnapshotModel* model) const;

  // Lowers the TTL of every service of `model` with a policy in `policies` (by service name) to
  // at most the policy's ttl while one of its members went between up and down less than the
  // policy's window ago. Returns when the earliest of those windows ends (the moment to publish
  // the normal TTL again), or time_point::max() when no TTL was lowered.
  ProbeClock::time_point apply_unstable_ttl(SnapshotModel* model,
                                            const std::map<WireName, UnstableTtl>& policies,
                                            ProbeClock::time_point now) const;

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

  struct MemberTargets {
    std::vector<size_t> targets;
    uint32_t needed = 0;  // resolved: 1..targets.size()
    snap::MemberHealth health = snap::MemberHealth::kUnknown;  // from the targets
    // The last change between up and down (unknown -> up at start-up is not one).
    std::optional<ProbeClock::time_point> changed_at;
  };
  static snap::MemberHealth health_of(const MemberTargets& member,
                                      const std::vector<Target>& targets);
  // Re-derives the member's health; records the time when it went between up and down.
  void refresh(MemberTargets* member, ProbeClock::time_point now);

  // The tracked member of every member of `model`, in model order (nullptr: none), when `model`
  // has the services, pools and members, by name, of the model last configured: then no key is
  // built per member (annotate runs for every image). nullptr when it has not.
  const std::vector<const MemberTargets*>* positions_for(const SnapshotModel& model) const;
  const MemberTargets* find_member(const std::string& service, const ServiceModel& svc,
                                   const PoolModel& pool, const MemberModel& m) const;

  std::vector<Target> targets_;  // index = prober target index
  std::map<std::string, MemberTargets> members_;
  std::vector<std::vector<MemberTargets*>> members_of_target_;  // index = target index
  // The configured model's names in model order, and what each member resolves to.
  struct Shape {
    std::vector<std::pair<WireName, uint16_t>> services;  // name, rtype
    std::vector<size_t> pool_counts;                      // per service
    std::vector<std::string> pools;
    std::vector<size_t> member_counts;  // per pool
    std::vector<std::string> members;
    std::vector<const MemberTargets*> tracked;  // per member
  } shape_;
};

}  // namespace gtm::control
