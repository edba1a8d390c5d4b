#include "control/events/state_events.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "control/admin_state.h"
#include "control/config/config_loader.h"

namespace gtm::control {
namespace {

SnapshotModel demo_model() {
  LoadedConfig loaded;
  ConfigError err;
  EXPECT_TRUE(load_config_file(std::string(GTM_SOURCE_DIR) + "/examples/demo.yaml", &loaded, &err))
      << err.to_string();
  return loaded.model;
}

SnapshotModel with(const SnapshotModel& m, const std::vector<std::string>& commands) {
  AdminOverrides admin;
  for (const std::string& c : commands) {
    std::string error;
    EXPECT_TRUE(admin.apply_command(c, m, &error)) << error;
  }
  return admin.applied_to(m);
}

std::vector<std::string> texts(const std::vector<StateEvent>& events) {
  std::vector<std::string> out;
  for (const StateEvent& e : events) out.push_back(event_text(e, ""));
  return out;
}

TEST(StateEvents, NoChangeNoEvents) {
  const SnapshotModel m = demo_model();
  EXPECT_TRUE(diff_states(m, m).empty());
}

TEST(StateEvents, MemberThenPoolThenServiceTransitions) {
  const SnapshotModel m = demo_model();
  const SnapshotModel one_down = with(m, {"MEMBER disable www.gtm.example. site-a a1"});
  EXPECT_EQ(texts(diff_states(m, one_down)),
            std::vector<std::string>{"member www.gtm.example. A site-a a1: up -> down"});

  // The last usable member of site-a goes: the pool goes down too, the service stays up (site-b).
  const SnapshotModel pool_down = with(
      m, {"MEMBER disable www.gtm.example. site-a a1", "MEMBER drain www.gtm.example. site-a a2"});
  EXPECT_EQ(texts(diff_states(one_down, pool_down)),
            (std::vector<std::string>{"member www.gtm.example. A site-a a2: up -> down",
                                      "pool www.gtm.example. A site-a: up -> down"}));

  // Every pool of the AAAA service down: members, pools and the service itself.
  const SnapshotModel all_down = with(m, {"POOL disable www.gtm.example. site-a",
                                          "POOL disable www.gtm.example. site-b"});
  const std::vector<std::string> aaaa = texts(diff_states(pool_down, all_down));
  EXPECT_NE(std::find(aaaa.begin(), aaaa.end(), "service www.gtm.example. AAAA: up -> down"),
            aaaa.end());
  EXPECT_NE(std::find(aaaa.begin(), aaaa.end(), "service www.gtm.example. A: up -> down"),
            aaaa.end());
  EXPECT_NE(std::find(aaaa.begin(), aaaa.end(), "member www.gtm.example. AAAA site-b b1-v6: up -> down"),
            aaaa.end());

  // And back: the reverse transitions.
  const std::vector<StateEvent> back = diff_states(all_down, m);
  ASSERT_FALSE(back.empty());
  for (const StateEvent& e : back) {
    EXPECT_FALSE(e.was_up);
    EXPECT_TRUE(e.is_up);
  }
}

TEST(StateEvents, EntitiesNewToAConfigurationAreNotTransitions) {
  const SnapshotModel m = demo_model();
  SnapshotModel fewer = m;
  fewer.services.pop_back();  // app.gtm.example. absent before
  EXPECT_TRUE(diff_states(fewer, m).empty());
  EXPECT_TRUE(diff_states(m, fewer).empty());
}

TEST(StateEvents, JsonCarriesEveryField) {
  const SnapshotModel m = demo_model();
  const auto events = diff_states(m, with(m, {"MEMBER disable www.gtm.example. site-a a1"}));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(event_json(events[0], "admin: \"x\"", 7, 1234),
            "{\"event\":\"member\",\"service\":\"www.gtm.example.\",\"type\":\"A\",\"pool\":"
            "\"site-a\",\"member\":\"a1\",\"from\":\"up\",\"to\":\"down\",\"reason\":\"admin: "
            "\\\"x\\\"\",\"generation\":7,\"time_ms\":1234}");
}

TEST(StateEvents, SwitchJsonCarriesEveryField) {
  SwitchEvent e;
  e.service = "www.gtm.example.";
  e.type = "A";
  e.rule = 2;
  e.to_secondary = true;
  e.why = "primary below its minimum";
  EXPECT_EQ(switch_event_json(e, "health: a1 down", 9, 4321),
            "{\"event\":\"switch\",\"service\":\"www.gtm.example.\",\"type\":\"A\",\"rule\":2,"
            "\"from\":\"primary\",\"to\":\"secondary\",\"why\":\"primary below its minimum\","
            "\"reason\":\"health: a1 down\",\"generation\":9,\"time_ms\":4321}");
  e.to_secondary = false;
  e.why = "primary good again";
  const std::string back = switch_event_json(e, "", 10, 1);
  EXPECT_NE(back.find("\"from\":\"secondary\",\"to\":\"primary\""), std::string::npos) << back;
}

}  // namespace
}  // namespace gtm::control
