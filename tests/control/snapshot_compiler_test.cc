// The incremental compiler: a health-only change is rebuilt from the kept configuration and must
// give exactly the bytes of a full build; anything else in the model is a configuration change
// and is built in full.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/policy/switch_policy.h"
#include "dataplane/snapshot/snapshot.h"
#include "tests/dataplane/snapshot/rich_model.h"

namespace gtm::control {
namespace {

// The image with the header's creation time cleared (it is the only field that depends on when).
std::vector<uint8_t> timeless(std::vector<uint8_t> image) {
  snap::Header h;
  std::memcpy(&h, image.data(), sizeof(h));
  h.created_unix_ms = 0;
  std::memcpy(image.data(), &h, sizeof(h));
  return image;
}

std::vector<uint8_t> full_build(const SnapshotModel& m) {
  std::vector<uint8_t> image;
  std::string error;
  EXPECT_TRUE(build_snapshot(m, &image, &error)) << error;
  return timeless(image);
}

std::vector<uint8_t> compiled(SnapshotCompiler* c, const SnapshotModel& m,
                              bool with_checksum = true) {
  ImageParts parts;
  std::string error;
  EXPECT_TRUE(c->build(m, &parts, &error, with_checksum)) << error;
  std::vector<uint8_t> image = parts.flatten();
  EXPECT_EQ(image.size(), parts.size);
  return timeless(image);
}

// The flat image the last build's overlay makes of the compiler's base image, as the dataplane
// composes it (validated, then laid out as snapshot.bin gets it), with the checksum of a full
// build.
std::vector<uint8_t> with_overlay(const SnapshotCompiler& c) {
  const std::vector<uint8_t> overlay = c.overlay()->flatten();
  const std::vector<uint8_t>& base = *c.base_image();
  snap::SnapshotView v;
  std::string error;
  EXPECT_TRUE(v.validate_overlay(base.data(), base.size(), overlay.data(), overlay.size(), &error,
                                 snap::ValidateOptions()))
      << error;
  snap::Header h = v.header();
  snap::SectionBytes ordered[snap::kMaxSections];
  for (uint32_t i = 0; i < h.section_count; ++i) ordered[i] = v.section(h.sections[i].id);
  std::vector<std::pair<const uint8_t*, size_t>> parts;
  snap::layout_sections(ordered, h.section_count, &h, &parts);
  std::vector<uint8_t> image(sizeof(h));
  for (const auto& [data, len] : parts) image.insert(image.end(), data, data + len);
  h.checksum = snap::image_checksum(image.data() + sizeof(h), image.size() - sizeof(h));
  std::memcpy(image.data(), &h, sizeof(h));
  return timeless(image);
}

std::vector<MemberModel*> members_of(SnapshotModel* m) {
  std::vector<MemberModel*> out;
  for (ServiceModel& s : m->services) {
    for (PoolModel& p : s.pools) {
      for (MemberModel& mm : p.members) out.push_back(&mm);
    }
  }
  return out;
}

class SnapshotCompilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = gtm::testing::load_rich_config();
    model_ = config_.model;
    model_.generation = 1;
  }
  LoadedConfig config_;
  SnapshotModel model_;
};

TEST_F(SnapshotCompilerTest, HealthChangesGiveTheBytesOfAFullBuild) {
  SnapshotCompiler compiler;
  EXPECT_EQ(compiled(&compiler, model_), full_build(model_));
  EXPECT_FALSE(compiler.stats().incremental);

  std::mt19937 rng(7);
  SwitchTracker switches;
  auto now = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  int incremental = 0;
  int secondary_seen = 0;
  for (int round = 0; round < 300; ++round) {
    SnapshotModel m = model_;
    m.generation = 2 + static_cast<uint64_t>(round);
    for (MemberModel* mm : members_of(&m)) {
      const uint32_t r = rng() % 8;
      mm->health = r < 3 ? snap::MemberHealth::kDown
                         : (r < 6 ? snap::MemberHealth::kUp : snap::MemberHealth::kUnknown);
      if (rng() % 10 == 0) mm->enabled = false;  // an operator override
    }
    if (round % 5 == 0) m.services[0].ttl = 5;           // an unstable TTL
    if (round % 7 == 0) m.unknown_health_is_up = false;  // a configuration change, now and then
    now += std::chrono::seconds(rng() % 3);
    switches.apply(&m, now);
    for (const ServiceModel& s : m.services) {
      for (const RuleModel& r : s.rules) secondary_seen += r.use_secondary;
    }
    const std::vector<uint8_t> expected = full_build(m);
    ASSERT_EQ(compiled(&compiler, m), expected) << "round " << round;
    incremental += compiler.stats().incremental;
    // The result is a valid image.
    snap::SnapshotView v;
    std::string error;
    ASSERT_TRUE(v.validate(expected.data(), expected.size(), &error)) << error;
    // What gtm-control publishes for it, the overlay on the kept base, makes the same image.
    if (compiler.stats().incremental) {
      ASSERT_EQ(with_overlay(compiler), expected) << "round " << round;
    }
  }
  EXPECT_GT(incremental, 200);
  EXPECT_GT(secondary_seen, 0) << "the rounds exercise the secondary sets too";
}

TEST_F(SnapshotCompilerTest, OnlyPoolsWhoseUsableMembersChangedAreRecomputed) {
  SnapshotCompiler compiler;
  compiled(&compiler, model_);
  SnapshotModel m = model_;
  m.generation = 2;
  compiled(&compiler, m);  // the first health build fills the per-pool cache
  EXPECT_TRUE(compiler.stats().incremental);
  m.services[0].pools[0].members[0].health = snap::MemberHealth::kDown;
  m.generation = 3;
  EXPECT_EQ(compiled(&compiler, m), full_build(m));
  EXPECT_EQ(compiler.stats().pools_recomputed, 1u);
  EXPECT_GT(compiler.stats().pools, 5u);
  // A health verdict that changes nothing the image shows (unknown counts as up here).
  m.services[0].pools[0].members[1].health = snap::MemberHealth::kUp;
  m.generation = 4;
  EXPECT_EQ(compiled(&compiler, m), full_build(m));
  EXPECT_EQ(compiler.stats().pools_recomputed, 0u);
}

TEST_F(SnapshotCompilerTest, ConfigurationChangesAreBuiltInFull) {
  SnapshotCompiler compiler;
  compiled(&compiler, model_);
  std::vector<std::function<void(SnapshotModel*)>> changes = {
      [](SnapshotModel* m) { m->services[0].pools[0].members[0].weight += 1; },
      [](SnapshotModel* m) {
        m->services[0].pools[0].members[0].mode = snap::MemberMode::kAlwaysUp;
      },
      [](SnapshotModel* m) { m->services[0].pools[0].members[0].name += "x"; },
      [](SnapshotModel* m) { m->services[0].pools[0].members[0].rdata[3] ^= 1; },
      [](SnapshotModel* m) { m->services[0].pools[0].members[0].monitors.push_back("m"); },
      [](SnapshotModel* m) { m->services[0].pools[1].method = snap::PoolMethod::kRandom; },
      [](SnapshotModel* m) { m->services[0].pools.pop_back(); },
      [](SnapshotModel* m) { m->services[0].rules[0].client_sets.pop_back(); },
      [](SnapshotModel* m) { m->services[0].switch_policy.min_members = 1; },
      [](SnapshotModel* m) { m->services[0].pool_sets[0].name = "other"; },
      [](SnapshotModel* m) {
        snap::EmptyAction& a = m->services[1].empty_action;
        a = a == snap::EmptyAction::kNodata ? snap::EmptyAction::kServfail
                                            : snap::EmptyAction::kNodata;
      },
      [](SnapshotModel* m) { m->zones[0].records[1].ttl += 1; },
      [](SnapshotModel* m) { m->zones[0].records.pop_back(); },
      [](SnapshotModel* m) { m->zones[0].soa_ttl += 1; },
      [](SnapshotModel* m) { m->ecs_max_v4 = 20; },
      [](SnapshotModel* m) { m->datacenters[0] = "other"; },
      [](SnapshotModel* m) {  // recompiled geo tables: another object, even if equal
        m->geo = std::make_shared<geo::CompiledGeo>(*m->geo);
      },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    SnapshotModel m = model_;
    changes[i](&m);
    m.generation = 2 + i;
    EXPECT_FALSE(same_configuration(model_, m)) << "change " << i;
    std::vector<uint8_t> image;
    std::string error;
    if (!build_snapshot(m, &image, &error)) continue;  // e.g. a geo/datacenter mismatch
    EXPECT_EQ(compiled(&compiler, m), timeless(image)) << "change " << i;
    EXPECT_FALSE(compiler.stats().incremental) << "change " << i;
    compiled(&compiler, model_);  // back to the base configuration (a full build again)
  }
}

TEST_F(SnapshotCompilerTest, RulesVaryFollowsTheirActiveSets) {
  // Every rule of www A with the same sets: the rules answer differently only while one of them
  // is switched (e.g. held down while the others are back), and only then does the rule narrow
  // the ECS scope.
  SnapshotModel base = model_;
  ServiceModel& www = base.services[0];
  for (RuleModel& r : www.rules) {
    r.primary = www.rules[0].primary;
    r.secondary = www.rules[0].secondary;
  }
  SnapshotCompiler compiler;
  compiled(&compiler, base);
  auto vary = [&](const std::vector<uint8_t>& image) {
    snap::SnapshotView v;
    std::string error;
    EXPECT_TRUE(v.validate(image.data(), image.size(), &error)) << error;
    return (v.services()[0].flags & snap::kSvcRulesVary) != 0;
  };
  for (bool switched : {true, false, true}) {
    SnapshotModel m = base;
    m.generation = 2;
    m.services[0].rules[0].use_secondary = switched;
    m.services[0].rules[0].switch_reason = snap::SwitchReason::kHoldDown;
    const std::vector<uint8_t> image = compiled(&compiler, m);
    EXPECT_TRUE(compiler.stats().incremental);
    EXPECT_EQ(image, full_build(m));
    EXPECT_EQ(vary(image), switched);
  }
}

TEST_F(SnapshotCompilerTest, HealthFieldsAreNotConfiguration) {
  SnapshotModel m = model_;
  m.generation = 9;
  m.services[0].ttl = 1;
  m.services[0].rules[0].use_secondary = true;
  m.services[0].rules[0].switch_reason = snap::SwitchReason::kHoldDown;
  m.services[0].rules[0].hold_down_left_s = 5;
  m.services[0].pools[0].members[0].health = snap::MemberHealth::kDown;
  m.services[0].pools[0].members[0].enabled = false;
  EXPECT_TRUE(same_configuration(model_, m));
  SnapshotModel back = model_;
  copy_health_fields(m, &back);
  EXPECT_EQ(full_build(back), full_build(m));
  copy_health_fields(model_, &back);
  EXPECT_EQ(full_build(back), full_build(model_));
}

TEST_F(SnapshotCompilerTest, ResetToConfigurationUndoesTheHealthFields) {
  SnapshotModel image_model;
  reset_to_configuration(model_, &image_model);  // from nothing: a copy
  EXPECT_EQ(full_build(image_model), full_build(model_));
  image_model.generation = 5;
  image_model.services[0].ttl = 1;
  image_model.services[0].rules[0].use_secondary = true;
  image_model.services[0].rules[0].switch_reason = snap::SwitchReason::kHoldDown;
  for (MemberModel* m : members_of(&image_model)) {
    m->health = snap::MemberHealth::kDown;
    m->enabled = false;
  }
  ASSERT_NE(full_build(image_model), full_build(model_));
  reset_to_configuration(model_, &image_model);  // same configuration: health fields only
  EXPECT_EQ(full_build(image_model), full_build(model_));
  SnapshotModel other = model_;
  other.services[0].pools[0].members[0].weight += 1;
  reset_to_configuration(other, &image_model);  // another configuration: a copy
  EXPECT_EQ(full_build(image_model), full_build(other));
}

TEST_F(SnapshotCompilerTest, WithoutChecksumOnlyTheChecksumDiffers) {
  SnapshotCompiler compiler;
  compiled(&compiler, model_);
  SnapshotModel m = model_;
  m.services[0].pools[2].members[0].health = snap::MemberHealth::kDown;
  m.generation = 2;
  std::vector<uint8_t> image = compiled(&compiler, m, /*with_checksum=*/false);
  ASSERT_TRUE(compiler.stats().incremental);
  snap::Header h;
  std::memcpy(&h, image.data(), sizeof(h));
  EXPECT_EQ(h.checksum, 0u);
  h.checksum = snap::image_checksum(image.data() + sizeof(h), image.size() - sizeof(h));
  std::memcpy(image.data(), &h, sizeof(h));
  EXPECT_EQ(image, full_build(m));
}

TEST_F(SnapshotCompilerTest, BadHealthFieldsAreRefusedLikeAFullBuildRefusesThem) {
  SnapshotCompiler compiler;
  compiled(&compiler, model_);
  SnapshotModel m = model_;
  m.generation = 2;
  // A rule without a secondary set cannot be switched to it.
  RuleModel* single = nullptr;
  for (ServiceModel& s : m.services) {
    for (RuleModel& r : s.rules) {
      if (r.secondary == snap::kNone) single = &r;
    }
  }
  ASSERT_NE(single, nullptr);
  single->use_secondary = true;
  ImageParts parts;
  std::string incremental_error, full_error;
  EXPECT_FALSE(compiler.build(m, &parts, &incremental_error));
  EXPECT_TRUE(compiler.stats().incremental);
  std::vector<uint8_t> image;
  EXPECT_FALSE(build_snapshot(m, &image, &full_error));
  EXPECT_EQ(incremental_error, full_error);
  single->use_secondary = false;
  m.services[0].pools[0].members[0].health = static_cast<snap::MemberHealth>(7);
  EXPECT_FALSE(compiler.build(m, &parts, &incremental_error));
  EXPECT_FALSE(build_snapshot(m, &image, &full_error));
  EXPECT_EQ(incremental_error, full_error);
  // A good model afterwards builds as usual.
  m.services[0].pools[0].members[0].health = snap::MemberHealth::kUp;
  EXPECT_EQ(compiled(&compiler, m), full_build(m));
}

}  // namespace
}  // namespace gtm::control
