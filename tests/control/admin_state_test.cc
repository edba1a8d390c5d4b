#include "control/admin_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

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

// enabled flags of one pool's members across every ServiceModel of `service` (A and AAAA).
std::vector<std::pair<std::string, bool>> member_flags(const SnapshotModel& m,
                                                       const std::string& service,
                                                       const std::string& pool) {
  std::vector<std::pair<std::string, bool>> out;
  for (const ServiceModel& s : m.services) {
    if (wire_name_text(s.name) != service) continue;
    for (const PoolModel& p : s.pools) {
      if (p.name != pool) continue;
      for (const MemberModel& mm : p.members) out.emplace_back(mm.name, mm.enabled);
    }
  }
  return out;
}

TEST(AdminOverrides, MemberDisableAffectsOnlyThatMember) {
  const SnapshotModel model = demo_model();
  AdminOverrides admin;
  std::string error;
  ASSERT_TRUE(admin.apply_command("MEMBER disable WWW.gtm.example site-a a1", model, &error))
      << error;
  const SnapshotModel applied = admin.applied_to(model);
  for (const auto& [name, enabled] : member_flags(applied, "www.gtm.example.", "site-a")) {
    EXPECT_EQ(enabled, name != "a1") << name;
  }
  for (const auto& [name, enabled] : member_flags(applied, "www.gtm.example.", "site-b")) {
    EXPECT_TRUE(enabled) << name;
  }
  // The original model is untouched.
  for (const auto& [name, enabled] : member_flags(model, "www.gtm.example.", "site-a")) {
    EXPECT_TRUE(enabled) << name;
  }
  ASSERT_TRUE(admin.apply_command("MEMBER enable www.gtm.example. site-a a1", model, &error));
  EXPECT_TRUE(admin.empty());
}

TEST(AdminOverrides, PoolDisableCoversBothFamilies) {
  const SnapshotModel model = demo_model();
  AdminOverrides admin;
  std::string error;
  ASSERT_TRUE(admin.apply_command("POOL disable www.gtm.example. site-a", model, &error)) << error;
  const auto flags = member_flags(admin.applied_to(model), "www.gtm.example.", "site-a");
  ASSERT_EQ(flags.size(), 3u);  // a1, a2 in the A service; a1-v6 in the AAAA service
  for (const auto& [name, enabled] : flags) EXPECT_FALSE(enabled) << name;
  EXPECT_NE(admin.to_json().find("\"pool\":\"site-a\",\"state\":\"disabled\""), std::string::npos)
      << admin.to_json();
}

TEST(AdminOverrides, UnknownNamesAndBadCommandsAreRefused) {
  const SnapshotModel model = demo_model();
  AdminOverrides admin;
  std::string error;
  EXPECT_FALSE(admin.apply_command("MEMBER disable www.gtm.example. site-a zz", model, &error));
  EXPECT_NE(error.find("no member 'zz'"), std::string::npos) << error;
  EXPECT_FALSE(admin.apply_command("POOL disable nope.gtm.example. site-a", model, &error));
  EXPECT_NE(error.find("no pool"), std::string::npos) << error;
  EXPECT_FALSE(admin.apply_command("POOL drain www.gtm.example. site-a", model, &error));
  EXPECT_FALSE(admin.apply_command("MEMBER disable www.gtm.example. site-a", model, &error));
  EXPECT_FALSE(admin.apply_command("MEMBER disable www.gtm.example. site-a a1 extra", model, &error));
  EXPECT_FALSE(admin.apply_command("FROB disable x y", model, &error));
  EXPECT_TRUE(admin.empty());
}

TEST(AdminOverrides, SaveAndLoadRoundTrip) {
  const SnapshotModel model = demo_model();
  AdminOverrides admin;
  std::string error;
  ASSERT_TRUE(admin.apply_command("MEMBER drain www.gtm.example. site-b b2", model, &error));
  ASSERT_TRUE(admin.apply_command("POOL disable app.gtm.example. targets", model, &error));
  char dir[] = "/tmp/gtm-admin-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/admin.state";
  ASSERT_TRUE(admin.save(path, &error)) << error;

  AdminOverrides loaded;
  ASSERT_TRUE(loaded.load(path, &error)) << error;
  EXPECT_EQ(loaded.to_json(), admin.to_json());
  const SnapshotModel applied = loaded.applied_to(model);
  for (const auto& [name, enabled] : member_flags(applied, "www.gtm.example.", "site-b")) {
    EXPECT_EQ(enabled, name != "b2") << name;
  }
  for (const auto& [name, enabled] : member_flags(applied, "app.gtm.example.", "targets")) {
    EXPECT_FALSE(enabled) << name;
  }

  // A damaged line is reported with its line number; the good lines still load.
  {
    std::ofstream out(path, std::ios::app);
    out << "MEMBER explode a b c\n";
  }
  AdminOverrides partial;
  EXPECT_FALSE(partial.load(path, &error));
  EXPECT_NE(error.find("admin.state:3"), std::string::npos) << error;
  EXPECT_EQ(partial.to_json(), admin.to_json());

  AdminOverrides missing;
  EXPECT_TRUE(missing.load(std::string(dir) + "/absent", &error));
  EXPECT_TRUE(missing.empty());
  std::remove(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace gtm::control
