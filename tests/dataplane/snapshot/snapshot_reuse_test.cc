// Validation reuse: an image is checked against the one in service, and only the checks whose
// input sections changed run again. These tests pin what may be skipped (checks of identical
// sections, an identical LPM table's view), what never is (anything a changed section feeds,
// files, the checksum of a file) and that a taken-over LPM table outlives the image it came from.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/publish/publisher.h"
#include "dataplane/snapshot/snapshot.h"
#include "tests/dataplane/snapshot/rich_model.h"

namespace gtm::snap {
namespace {

using control::SnapshotModel;

std::vector<uint8_t> build(const SnapshotModel& m) {
  std::vector<uint8_t> image;
  std::string error;
  EXPECT_TRUE(control::build_snapshot(m, &image, &error)) << error;
  return image;
}

// The image in a sealed memfd (sealed = false: a plain, writable memfd, like a file).
int memfd_of(const std::vector<uint8_t>& image, bool sealed = true) {
  std::string error;
  if (sealed) {
    const int fd = control::make_sealed_memfd(image.data(), image.size(), &error);
    EXPECT_GE(fd, 0) << error;
    return fd;
  }
  const int fd = memfd_create("gtm-test", MFD_CLOEXEC);
  EXPECT_EQ(write(fd, image.data(), image.size()), static_cast<ssize_t>(image.size()));
  return fd;
}

std::unique_ptr<LoadedSnapshot> load(const std::vector<uint8_t>& image,
                                     const LoadedSnapshot* previous, ValidationStats* stats,
                                     std::string* error, bool sealed = true,
                                     bool verify_checksum = false) {
  const int fd = memfd_of(image, sealed);
  LoadOptions o;
  o.previous = previous;
  o.stats = stats;
  o.verify_checksum = verify_checksum;
  std::unique_ptr<LoadedSnapshot> s(LoadedSnapshot::from_fd(fd, error, o));
  close(fd);
  return s;
}

class SnapshotReuse : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = gtm::testing::load_rich_config();
    model_ = config_.model;
    model_.generation = 1;
    first_ = build(model_);
    std::string error;
    ValidationStats stats;
    in_service_ = load(first_, nullptr, &stats, &error);
    ASSERT_NE(in_service_, nullptr) << error;
    EXPECT_EQ(stats.checks_skipped, 0u);
  }

  // The model with member `m` of pool `p` of service `s` down, at generation 2.
  SnapshotModel with_member_down(size_t s, size_t p, size_t m) const {
    SnapshotModel next = model_;
    next.services[s].pools[p].members[m].health = MemberHealth::kDown;
    next.generation = 2;
    return next;
  }

  // Offset and entry of section `id` of `image`.
  static SectionEntry section(const std::vector<uint8_t>& image, uint32_t id) {
    const Header& h = *reinterpret_cast<const Header*>(image.data());
    for (uint32_t i = 0; i < h.section_count; ++i) {
      if (h.sections[i].id == id) return h.sections[i];
    }
    ADD_FAILURE() << "no section " << id;
    return {};
  }

  control::LoadedConfig config_;
  SnapshotModel model_;
  std::vector<uint8_t> first_;
  std::unique_ptr<LoadedSnapshot> in_service_;
};

TEST_F(SnapshotReuse, EveryCheckReadsOnlyItsDeclaredInputs) {
  std::string error;
  EXPECT_TRUE(check_declared_inputs(first_.data(), first_.size(), &error)) << error;
  // Every section of the rich image has content, so no check passes by reading nothing.
  const Header& h = *reinterpret_cast<const Header*>(first_.data());
  for (uint32_t i = 0; i < h.section_count; ++i) {
    EXPECT_GT(h.sections[i].size, 0u) << "section " << h.sections[i].id << " is empty";
  }
}

TEST_F(SnapshotReuse, HealthChangeRechecksOnlyWhatChanged) {
  const std::vector<uint8_t> next = build(with_member_down(0, 2, 0));  // www frankfurt f1
  ValidationStats stats;
  std::string error;
  auto loaded = load(next, in_service_.get(), &stats, &error);
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_GT(stats.checks_skipped, 0u);
  EXPECT_GT(stats.checks_run, 0u) << "members, pools and what reads them are checked again";
  EXPECT_EQ(stats.checksum_ns, 0u);
  EXPECT_TRUE(loaded->view().lpm4_from_previous());
  EXPECT_TRUE(loaded->view().lpm6_from_previous());
  EXPECT_EQ(stats.lpm_ns, 0u);
  const SectionEntry lpm6 = section(next, kSecLpm6);
  EXPECT_GE(stats.bytes_same, lpm6.size);

  // The view answers exactly like a fully validated one.
  SnapshotView full;
  ASSERT_TRUE(full.validate(next.data(), next.size(), &error)) << error;
  const SnapshotView& v = loaded->view();
  ASSERT_EQ(v.member_count(), full.member_count());
  for (uint32_t m = 0; m < v.member_count(); ++m) {
    EXPECT_EQ(v.members()[m].usable, full.members()[m].usable);
  }
  for (uint32_t a : {0xAF10C700u /*175.16.199.0: CN*/, 0x7B700001u /*CNC*/, 0xC0000201u}) {
    EXPECT_EQ(v.lpm4().lookup(a).value, full.lpm4().lookup(a).value);
    EXPECT_EQ(v.lpm4().lookup(a).prefix_len, full.lpm4().lookup(a).prefix_len);
  }
  const uint8_t cn6[16] = {0x20, 0x01, 0x02, 0x50};
  EXPECT_EQ(v.lpm6().lookup(cn6).value, full.lpm6().lookup(cn6).value);
}

TEST_F(SnapshotReuse, IdenticalImageSkipsEveryCheck) {
  SnapshotModel same = model_;
  same.generation = 2;
  ValidationStats stats;
  std::string error;
  auto loaded = load(build(same), in_service_.get(), &stats, &error);
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_EQ(stats.checks_run, 0u);
  EXPECT_EQ(loaded->view().generation(), 2u) << "the header is always read from the new image";
}

TEST_F(SnapshotReuse, DamageInAChangedSectionIsCaughtEvenIfItsNeighboursAreUnchanged) {
  std::vector<uint8_t> next = build(with_member_down(0, 2, 0));
  // A usable slot now names the member that went down; only pool_slots differs from a valid
  // image in this byte, and check_pools reads it.
  SnapshotView full;
  std::string error;
  ASSERT_TRUE(full.validate(next.data(), next.size(), &error)) << error;
  const Pool& frankfurt = full.pools()[2];
  ASSERT_GT(frankfurt.usable_count, 0u);
  const uint32_t down = frankfurt.member_first;
  ASSERT_EQ(full.members()[down].usable, 0);
  const SectionEntry slots = section(next, kSecPoolSlots);
  std::memcpy(next.data() + slots.offset + frankfurt.usable_first * sizeof(uint32_t), &down,
              sizeof(down));
  auto loaded = load(next, in_service_.get(), nullptr, &error);
  EXPECT_EQ(loaded, nullptr);
  EXPECT_NE(error.find("not usable"), std::string::npos) << error;
}

TEST_F(SnapshotReuse, ChangedLpmTableIsValidatedAgain) {
  std::vector<uint8_t> next = first_;
  Header& h = *reinterpret_cast<Header*>(next.data());
  h.generation = 2;
  const SectionEntry lpm4 = section(next, kSecLpm4);
  next[lpm4.offset + lpm4.size - 1] ^= 0xFF;  // damage in the table's last bytes
  ValidationStats stats;
  std::string error;
  auto loaded = load(next, in_service_.get(), &stats, &error);
  EXPECT_EQ(loaded, nullptr) << "a changed table is checked, never taken over";
  EXPECT_NE(error.find("lpm4"), std::string::npos) << error;
}

TEST_F(SnapshotReuse, UnsealedImagesAreCheckedInFull) {
  const std::vector<uint8_t> next = build(with_member_down(0, 2, 0));
  ValidationStats stats;
  std::string error;
  // A writable memfd, as a file: its bytes could change later, so nothing is reused from or for
  // it, and its checksum is verified.
  auto loaded = load(next, in_service_.get(), &stats, &error, /*sealed=*/false);
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_EQ(stats.checks_skipped, 0u);
  EXPECT_GT(stats.checksum_ns, 0u);
  EXPECT_FALSE(loaded->view().lpm4_from_previous());
  // Nor does a sealed image reuse anything from an unsealed one in service.
  ValidationStats after;
  auto sealed = load(next, loaded.get(), &after, &error);
  ASSERT_NE(sealed, nullptr) << error;
  EXPECT_EQ(after.checks_skipped, 0u);
}

TEST_F(SnapshotReuse, ChecksumIsVerifiedUnlessTheImageIsASealedMemfd) {
  std::vector<uint8_t> next = build(with_member_down(0, 2, 0));
  reinterpret_cast<Header*>(next.data())->checksum ^= 1;
  std::string error;
  EXPECT_NE(load(next, nullptr, nullptr, &error), nullptr) << error;
  EXPECT_EQ(load(next, nullptr, nullptr, &error, /*sealed=*/true, /*verify_checksum=*/true),
            nullptr);
  EXPECT_EQ(error, "checksum mismatch");
  EXPECT_EQ(load(next, nullptr, nullptr, &error, /*sealed=*/false), nullptr)
      << "verify_checksum = false is ignored for what is not a sealed memfd";
}

TEST_F(SnapshotReuse, TakenOverLpmTableOutlivesTheImageItCameFrom) {
  std::string error;
  auto second = load(build(with_member_down(0, 2, 0)), in_service_.get(), nullptr, &error);
  ASSERT_NE(second, nullptr) << error;
  SnapshotModel m3 = with_member_down(0, 2, 1);
  m3.generation = 3;
  auto third = load(build(m3), second.get(), nullptr, &error);
  ASSERT_NE(third, nullptr) << error;
  ASSERT_TRUE(third->view().lpm4_from_previous());
  const uint32_t cn = third->view().lpm4().lookup(0xAF10C700u).value;
  EXPECT_NE(cn, 0u);
  in_service_.reset();  // the image whose bytes the tables are, unmapped if nobody held them
  second.reset();
  EXPECT_EQ(third->view().lpm4().lookup(0xAF10C700u).value, cn);
  const uint8_t cn6[16] = {0x20, 0x01, 0x02, 0x50};
  EXPECT_NE(third->view().lpm6().lookup(cn6).value, 0u);
}

TEST_F(SnapshotReuse, ViewCanBeValidatedAgainstItself) {
  // `previous` may be the view being validated (copied first): an identical image reuses all.
  SnapshotView v;
  std::string error;
  ASSERT_TRUE(v.validate(first_.data(), first_.size(), &error)) << error;
  ValidateOptions o;
  o.previous = &v;
  ValidationStats stats;
  o.stats = &stats;
  ASSERT_TRUE(v.validate(first_.data(), first_.size(), &error, o)) << error;
  EXPECT_EQ(stats.checks_run, 0u);
  EXPECT_NE(v.find_node(reinterpret_cast<const uint8_t*>("\4host\3gtm\7example"), 18), kNone);
}

}  // namespace
}  // namespace gtm::snap
