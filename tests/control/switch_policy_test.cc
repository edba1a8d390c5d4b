// The switch policy (control/policy/switch_policy.h): failover to the secondary set below the
// minimum, preemptive return, hold-down return, and the tracker that carries state across images
// and reloads. Time is a fake clock: every test says exactly when things happen.
#include "control/policy/switch_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <tuple>
#include <vector>

namespace gtm::control {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Reason = snap::SwitchReason;

const SwitchClock::time_point t0 = SwitchClock::time_point() + std::chrono::hours(1);

SwitchPolicy hold_down(uint32_t s) {
  SwitchPolicy p;
  p.hold_down = true;
  p.hold_down_s = s;
  return p;
}

TEST(RuleSwitch, PrimaryWhileGoodSecondaryWhenBelowMinimum) {
  RuleSwitch rs;
  const SwitchPolicy pol;
  auto d = rs.update(true, true, pol, t0);
  EXPECT_FALSE(d.use_secondary);
  EXPECT_EQ(d.reason, Reason::kPrimaryGood);
  d = rs.update(false, true, pol, t0 + seconds(1));
  EXPECT_TRUE(d.use_secondary);
  EXPECT_EQ(d.reason, Reason::kPrimaryBelowMin);
  EXPECT_FALSE(d.deadline);
}

TEST(RuleSwitch, PreemptiveReturnsAtOnce) {
  RuleSwitch rs;
  const SwitchPolicy pol;
  rs.update(false, true, pol, t0);
  const auto d = rs.update(true, true, pol, t0 + milliseconds(10));
  EXPECT_FALSE(d.use_secondary);
  EXPECT_EQ(d.reason, Reason::kPrimaryGood);
}

TEST(RuleSwitch, HoldDownReturnsOnlyAfterGoodForTheWholeTime) {
  RuleSwitch rs;
  const SwitchPolicy pol = hold_down(30);
  rs.update(false, true, pol, t0);
  auto d = rs.update(true, true, pol, t0 + seconds(5));  // good from t0 + 5 s
  EXPECT_TRUE(d.use_secondary);
  EXPECT_EQ(d.reason, Reason::kHoldDown);
  EXPECT_EQ(d.hold_down_left_s, 30u);
  ASSERT_TRUE(d.deadline);
  EXPECT_EQ(*d.deadline, t0 + seconds(35));
  d = rs.update(true, true, pol, t0 + seconds(20));
  EXPECT_TRUE(d.use_secondary);
  EXPECT_EQ(d.hold_down_left_s, 15u);
  EXPECT_EQ(*d.deadline, t0 + seconds(35));  // the clock did not restart
  d = rs.update(true, true, pol, t0 + seconds(35) - milliseconds(1));
  EXPECT_TRUE(d.use_secondary);
  EXPECT_EQ(d.hold_down_left_s, 1u);  // rounded up
  d = rs.update(true, true, pol, t0 + seconds(35));
  EXPECT_FALSE(d.use_secondary);
  EXPECT_EQ(d.reason, Reason::kPrimaryGood);
  EXPECT_FALSE(d.deadline);
}

TEST(RuleSwitch, FlapDuringHoldDownStartsItOver) {
  RuleSwitch rs;
  const SwitchPolicy pol = hold_down(10);
  rs.update(false, true, pol, t0);
  rs.update(true, true, pol, t0 + seconds(1));
  auto d = rs.update(false, true, pol, t0 + seconds(9));  // bad again just before the end
  EXPECT_TRUE(d.use_secondary);
  EXPECT_EQ(d.reason, Reason::kPrimaryBelowMin);
  d = rs.update(true, true, pol, t0 + seconds(12));
  EXPECT_EQ(d.reason, Reason::kHoldDown);
  EXPECT_EQ(*d.deadline, t0 + seconds(22));
  d = rs.update(true, true, pol, t0 + seconds(21));
  EXPECT_TRUE(d.use_secondary);
  d = rs.update(true, true, pol, t0 + seconds(22));
  EXPECT_FALSE(d.use_secondary);
}

TEST(RuleSwitch, HoldDownDoesNotDelayTheFirstDecision) {
  // Nothing to hold down when the primary never failed.
  RuleSwitch rs;
  const auto d = rs.update(true, true, hold_down(60), t0);
  EXPECT_FALSE(d.use_secondary);
}

TEST(RuleSwitch, NoSecondaryStaysOnPrimaryAndSaysSo) {
  RuleSwitch rs;
  auto d = rs.update(false, false, SwitchPolicy(), t0);
  EXPECT_FALSE(d.use_secondary);
  EXPECT_EQ(d.reason, Reason::kNoSecondary);
  d = rs.update(true, false, SwitchPolicy(), t0);
  EXPECT_EQ(d.reason, Reason::kPrimaryGood);
}

// A service with pools a (3 members) and b (1 member), rule: primary a, secondary b.
ServiceModel two_sets(uint32_t a_up, SwitchPolicy pol) {
  ServiceModel svc;
  svc.name = {3, 'w', 'w', 'w', 0};
  svc.rtype = 1;
  for (const char* pool : {"a", "b"}) {
    PoolModel p;
    p.name = pool;
    const int n = pool[0] == 'a' ? 3 : 1;
    for (int i = 0; i < n; ++i) {
      MemberModel m;
      m.name = std::string(pool) + std::to_string(i);
      m.mode = pool[0] == 'a' && static_cast<uint32_t>(i) >= a_up ? snap::MemberMode::kAlwaysDown
                                                                  : snap::MemberMode::kAlwaysUp;
      p.members.push_back(m);
    }
    svc.pools.push_back(p);
  }
  svc.pool_sets = {{"a", {0}}, {"b", {1}}};
  RuleModel rule;
  rule.primary = 0;
  rule.secondary = 1;
  svc.rules = {rule};
  svc.switch_policy = pol;
  return svc;
}

TEST(PrimaryGood, CountsAndPercent) {
  SwitchPolicy pol;
  pol.min_members = 2;
  uint32_t usable = 0, total = 0;
  ServiceModel svc = two_sets(2, pol);
  EXPECT_TRUE(primary_good(svc, svc.rules[0], true, &usable, &total));
  EXPECT_EQ(usable, 2u);
  EXPECT_EQ(total, 3u);
  svc = two_sets(1, pol);
  EXPECT_FALSE(primary_good(svc, svc.rules[0], true));
  pol.min_members = 1;
  pol.min_percent = 67;  // 2 of 3 is 66.7 %
  svc = two_sets(2, pol);
  EXPECT_FALSE(primary_good(svc, svc.rules[0], true));
  pol.min_percent = 66;
  svc = two_sets(2, pol);
  EXPECT_TRUE(primary_good(svc, svc.rules[0], true));
  pol.min_percent = 100;
  svc = two_sets(3, pol);
  EXPECT_TRUE(primary_good(svc, svc.rules[0], true));
}

TEST(SwitchTracker, WritesDecisionsAndKeepsStateAcrossImages) {
  SnapshotModel model;
  model.services = {two_sets(0, hold_down(10))};
  SwitchTracker tracker;
  SnapshotModel image = model;
  tracker.apply(&image, t0);
  EXPECT_TRUE(image.services[0].rules[0].use_secondary);
  EXPECT_EQ(image.services[0].rules[0].switch_reason, Reason::kPrimaryBelowMin);
  EXPECT_FALSE(tracker.next_deadline());

  // The primary recovers: hold-down, with a deadline for the control loop.
  model.services = {two_sets(3, hold_down(10))};
  image = model;
  tracker.apply(&image, t0 + seconds(2));
  EXPECT_TRUE(image.services[0].rules[0].use_secondary);
  EXPECT_EQ(image.services[0].rules[0].switch_reason, Reason::kHoldDown);
  EXPECT_EQ(image.services[0].rules[0].hold_down_left_s, 10u);
  ASSERT_TRUE(tracker.next_deadline());
  EXPECT_EQ(*tracker.next_deadline(), t0 + seconds(12));

  // A reload that keeps the rule keeps its state.
  image = model;
  tracker.apply(&image, t0 + seconds(11));
  EXPECT_TRUE(image.services[0].rules[0].use_secondary);
  image = model;
  tracker.apply(&image, t0 + seconds(12));
  EXPECT_FALSE(image.services[0].rules[0].use_secondary);
  EXPECT_FALSE(tracker.next_deadline());
}

TEST(SwitchTracker, AChangedRuleStartsFresh) {
  SnapshotModel model;
  model.services = {two_sets(0, hold_down(10))};
  SwitchTracker tracker;
  SnapshotModel image = model;
  tracker.apply(&image, t0);
  ASSERT_TRUE(image.services[0].rules[0].use_secondary);
  // Same service, but the primary set now has other pools: not the same rule any more, so a
  // healthy primary is active at once instead of waiting out the old rule's hold-down.
  model.services = {two_sets(3, hold_down(10))};
  model.services[0].pools[0].name = "a-renamed";
  image = model;
  tracker.apply(&image, t0 + seconds(1));
  EXPECT_FALSE(image.services[0].rules[0].use_secondary);
}

// gtm-control tells the tracker when the configuration is the last call's (a health change):
// the states are then found by position, and every decision must be the one found by identity.
TEST(SwitchTracker, SameRulesByPositionDecideAsByIdentity) {
  SwitchTracker by_identity;
  SwitchTracker by_position;
  for (int step = 0; step < 40; ++step) {
    SnapshotModel model;
    for (uint32_t s = 0; s < 3; ++s) {
      model.services.push_back(two_sets(static_cast<uint32_t>(step * (s + 1) % 4), hold_down(s)));
      model.services.back().name = {1, static_cast<uint8_t>('a' + s), 0};
    }
    const auto now = t0 + seconds(step / 3);
    SnapshotModel a = model;
    SnapshotModel b = model;
    by_identity.apply(&a, now);
    by_position.apply(&b, now, /*same_rules_as_last=*/step > 0);
    for (size_t s = 0; s < a.services.size(); ++s) {
      const RuleModel& x = a.services[s].rules[0];
      const RuleModel& y = b.services[s].rules[0];
      EXPECT_EQ(std::tie(x.use_secondary, x.switch_reason, x.hold_down_left_s),
                std::tie(y.use_secondary, y.switch_reason, y.hold_down_left_s))
          << "step " << step << " service " << s;
    }
    EXPECT_EQ(by_identity.next_deadline(), by_position.next_deadline()) << "step " << step;
  }
}

TEST(SwitchEvents, NameTheRulesThatSwitched) {
  SnapshotModel before;
  before.services = {two_sets(3, SwitchPolicy())};
  SnapshotModel after = before;
  EXPECT_TRUE(switch_events(before, after).empty());
  after.services[0].rules[0].use_secondary = true;
  after.services[0].rules[0].switch_reason = Reason::kPrimaryBelowMin;
  std::vector<SwitchEvent> events = switch_events(before, after);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ((std::tuple(events[0].service, events[0].type, events[0].rule, events[0].to_secondary)),
            (std::tuple(std::string("www."), std::string("A"), 1u, true)));
  EXPECT_EQ(switch_event_text(events[0]),
            "www. A rule 1: primary set -> secondary set (primary below its minimum)");
  events = switch_events(after, before);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(switch_event_text(events[0]),
            "www. A rule 1: secondary set -> primary set (primary good again)");
}

}  // namespace
}  // namespace gtm::control
