// Overlays: a health change travels as the sections it recomputed plus the base image they
// complete (format.h OverlayHeader). These tests pin that the snapshot an overlay makes is, byte
// for byte, the full build of the same model (also once saved as snapshot.bin and loaded again),
// that a base in service is shared rather than mapped and compared again, that an unknown base
// is checked in full, and that every bad overlay is refused with its reason while the snapshot in
// service keeps serving (through the real control channel too).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/publish/publisher.h"
#include "dataplane/io/control_channel.h"
#include "dataplane/io/snapshot_slot.h"
#include "dataplane/snapshot/snapshot.h"
#include "tests/dataplane/snapshot/rich_model.h"

namespace gtm::snap {
namespace {

using control::SnapshotModel;

int sealed_memfd(const std::vector<uint8_t>& bytes) {
  std::string error;
  const int fd = control::make_sealed_memfd(bytes.data(), bytes.size(), &error);
  EXPECT_GE(fd, 0) << error;
  return fd;
}

int unsealed_memfd(const std::vector<uint8_t>& bytes) {
  const int fd = memfd_create("gtm-test", MFD_CLOEXEC);
  EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  return fd;
}

// The image with the fields that differ between equal images cleared: the creation time, and the
// checksum (0 in what gtm-control sends; computed when saved).
std::vector<uint8_t> comparable(std::vector<uint8_t> image) {
  Header h;
  std::memcpy(&h, image.data(), sizeof(h));
  h.created_unix_ms = 0;
  h.checksum = 0;
  std::memcpy(image.data(), &h, sizeof(h));
  return image;
}

std::vector<uint8_t> flatten(const FlatImage& f) {
  std::vector<uint8_t> out(sizeof(Header));
  std::memcpy(out.data(), &f.header, sizeof(Header));
  for (const auto& [data, len] : f.parts) out.insert(out.end(), data, data + len);
  return out;
}

class SnapshotOverlay : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = gtm::testing::load_rich_config();
    model_ = config_.model;
    model_.generation = 1;
    std::string error;
    control::ImageParts parts;
    ASSERT_TRUE(compiler_.build(model_, &parts, &error, false)) << error;
    base_ = *compiler_.base_image();
    base_fd_ = sealed_memfd(base_);
    in_service_.reset(LoadedSnapshot::from_fd(base_fd_, &error, no_checksum()));
    ASSERT_NE(in_service_, nullptr) << error;
  }
  void TearDown() override {
    if (base_fd_ >= 0) close(base_fd_);
  }

  static LoadOptions no_checksum(const LoadedSnapshot* previous = nullptr,
                                 ValidationStats* stats = nullptr) {
    LoadOptions o;
    o.verify_checksum = false;
    o.previous = previous;
    o.stats = stats;
    return o;
  }

  // The health change: member `m` of pool `p` of service `s` down, at `generation`.
  SnapshotModel with_member_down(size_t s, size_t p, size_t m, uint64_t generation) const {
    SnapshotModel next = model_;
    next.services[s].pools[p].members[m].health = MemberHealth::kDown;
    next.generation = generation;
    return next;
  }

  // Builds `m` as a health change; returns its overlay and sets *flat to the build's image.
  std::vector<uint8_t> overlay_of(const SnapshotModel& m, std::vector<uint8_t>* flat = nullptr) {
    control::ImageParts parts;
    std::string error;
    EXPECT_TRUE(compiler_.build(m, &parts, &error, false)) << error;
    EXPECT_TRUE(compiler_.stats().incremental);
    if (flat != nullptr) *flat = parts.flatten();
    const control::ImageParts* overlay = compiler_.overlay();
    EXPECT_NE(overlay, nullptr);
    return overlay != nullptr ? overlay->flatten() : std::vector<uint8_t>();
  }

  std::unique_ptr<LoadedSnapshot> load_overlay(const std::vector<uint8_t>& overlay,
                                               std::string* error,
                                               const LoadedSnapshot* previous = nullptr,
                                               ValidationStats* stats = nullptr) {
    const int fd = sealed_memfd(overlay);
    std::unique_ptr<LoadedSnapshot> s(
        LoadedSnapshot::from_overlay(fd, base_fd_, error, no_checksum(previous, stats)));
    close(fd);
    return s;
  }

  // Entry `id` of the overlay's section table (nullptr when it does not carry that section).
  static SectionEntry* overlay_section(std::vector<uint8_t>* overlay, uint32_t id) {
    auto* h = reinterpret_cast<OverlayHeader*>(overlay->data());
    for (uint32_t i = 0; i < h->section_count; ++i) {
      if (h->sections[i].id == id) return &h->sections[i];
    }
    return nullptr;
  }

  control::LoadedConfig config_;
  SnapshotModel model_;
  control::SnapshotCompiler compiler_;
  std::vector<uint8_t> base_;
  int base_fd_ = -1;
  std::unique_ptr<LoadedSnapshot> in_service_;
};

TEST_F(SnapshotOverlay, MakesTheBytesOfAFullBuildAndSavesAsOne) {
  const SnapshotModel next = with_member_down(0, 2, 0, 2);
  std::vector<uint8_t> flat;
  const std::vector<uint8_t> overlay = overlay_of(next, &flat);
  std::vector<uint8_t> full;
  std::string error;
  ASSERT_TRUE(control::build_snapshot(next, &full, &error)) << error;
  ASSERT_EQ(comparable(flat), comparable(full));
  EXPECT_LT(overlay.size() * 4, full.size()) << "only the health sections that changed travel";
  EXPECT_EQ(overlay_section(const_cast<std::vector<uint8_t>*>(&overlay), kSecLpm4), nullptr);

  ValidationStats stats;
  auto loaded = load_overlay(overlay, &error, in_service_.get(), &stats);
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_TRUE(loaded->base_shared());
  EXPECT_GT(stats.sections_shared, 0u);
  EXPECT_GT(stats.checks_skipped, 0u);
  EXPECT_GT(stats.checks_run, 0u);
  EXPECT_EQ(loaded->view().generation(), 2u);
  EXPECT_EQ(loaded->size(), full.size());
  EXPECT_EQ(loaded->received_size(), overlay.size());
  EXPECT_EQ(comparable(flatten(loaded->flat_image())), comparable(full));

  // snapshot.bin: the flat image with its checksum, loaded (and verified) as any image.
  char dir[] = "/tmp/gtm-overlay-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/snapshot.bin";
  ASSERT_TRUE(write_snapshot_file(path, loaded->flat_image(), &error)) << error;
  loaded.reset();  // the saved file does not depend on the mappings any more
  std::unique_ptr<LoadedSnapshot> from_disk(LoadedSnapshot::from_file(path, &error));
  ASSERT_NE(from_disk, nullptr) << error;
  EXPECT_EQ(from_disk->view().generation(), 2u);
  EXPECT_EQ(comparable(std::vector<uint8_t>(from_disk->data(),
                                            from_disk->data() + from_disk->received_size())),
            comparable(full));
  unlink(path.c_str());
  rmdir(dir);
}

TEST_F(SnapshotOverlay, OverlayOnAnOverlaySharesTheSameBase) {
  std::string error;
  auto second = load_overlay(overlay_of(with_member_down(0, 2, 0, 2)), &error, in_service_.get());
  ASSERT_NE(second, nullptr) << error;
  in_service_.reset();  // the base stays mapped by the snapshots built on it
  ValidationStats stats;
  auto third = load_overlay(overlay_of(with_member_down(0, 2, 1, 3)), &error, second.get(), &stats);
  ASSERT_NE(third, nullptr) << error;
  EXPECT_TRUE(third->base_shared());
  EXPECT_TRUE(third->view().lpm4_from_previous());
  second.reset();
  const uint32_t cn = third->view().lpm4().lookup(0xAF10C700u).value;  // 175.16.199.0: CN
  EXPECT_NE(cn, 0u);
  EXPECT_NE(third->view().find_node(reinterpret_cast<const uint8_t*>("\4host\3gtm\7example"), 18),
            kNone);
}

TEST_F(SnapshotOverlay, UnknownBaseIsMappedAndCheckedInFull) {
  std::string error;
  ValidationStats stats;
  auto loaded = load_overlay(overlay_of(with_member_down(0, 2, 0, 2)), &error, nullptr, &stats);
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_FALSE(loaded->base_shared());
  EXPECT_EQ(stats.checks_skipped, 0u);
  EXPECT_EQ(stats.sections_shared, 0u);
}

TEST_F(SnapshotOverlay, OverlayOfAnotherBaseGenerationIsRefused) {
  std::vector<uint8_t> overlay = overlay_of(with_member_down(0, 2, 0, 2));
  reinterpret_cast<OverlayHeader*>(overlay.data())->base_generation = 7;
  std::string error;
  EXPECT_EQ(load_overlay(overlay, &error, in_service_.get()), nullptr);
  EXPECT_EQ(error, "overlay completes base generation 7, the base image is generation 1");
}

TEST_F(SnapshotOverlay, CorruptHealthSectionIsRefusedAgainstTheBase) {
  std::vector<uint8_t> overlay = overlay_of(with_member_down(0, 2, 0, 2));
  // A member's RDATA index past the base's RDATA: only the cross-reference with the base can
  // tell, and the members check runs because its section changed.
  SectionEntry* members = overlay_section(&overlay, kSecMembers);
  ASSERT_NE(members, nullptr);
  Member* m = reinterpret_cast<Member*>(overlay.data() + members->offset);
  m->rdata = 0xFFFFFF;
  std::string error;
  EXPECT_EQ(load_overlay(overlay, &error, in_service_.get()), nullptr);
  EXPECT_EQ(error, "member 0: rdata out of bounds");
}

// The pick table is a health section: a member going down changes the entries of the classes
// its pool answers, the overlay carries the new table, and a table that does not say what the
// chain picks is refused against the base.
TEST_F(SnapshotOverlay, HealthChangeCarriesThePickTable) {
  std::vector<uint8_t> overlay = overlay_of(with_member_down(0, 2, 0, 2));
  SectionEntry* picks = overlay_section(&overlay, kSecPickTable);
  ASSERT_NE(picks, nullptr) << "frankfurt's wheel changed: so did the entries answered from it";
  std::string error;
  auto loaded = load_overlay(overlay, &error, in_service_.get());
  ASSERT_NE(loaded, nullptr) << error;
  const SnapshotView& before = in_service_->view();
  const SnapshotView& after = loaded->view();
  const Service& svc = after.services()[0];
  ASSERT_NE(svc.pick_table, kNone);
  ASSERT_EQ(svc.pick_table, before.services()[0].pick_table) << "where entries are is config";
  uint32_t changed = 0;
  uint32_t changed_class = 0;
  for (uint32_t c = 0; c < after.class_count(); ++c) {
    const PickEntry& a = before.pick_table()[svc.pick_table + c];
    const PickEntry& b = after.pick_table()[svc.pick_table + c];
    if (std::memcmp(&a, &b, sizeof(a)) != 0) {
      if (changed++ == 0) changed_class = c;
      EXPECT_NE(b.slot_count, 0u);
      EXPECT_NE(a.slot_count, b.slot_count) << "class " << c << ": a shorter wheel";
    }
  }
  EXPECT_GT(changed, 0u);
  EXPECT_LT(changed, after.class_count()) << "classes answered by other pools keep their entries";

  PickEntry* table = reinterpret_cast<PickEntry*>(overlay.data() + picks->offset);
  table[svc.pick_table + changed_class].slot_count += 1;
  EXPECT_EQ(load_overlay(overlay, &error, in_service_.get()), nullptr);
  EXPECT_EQ(error, "service 0: pick table entry for class " + std::to_string(changed_class) +
                       " differs from its rules and pools");
}

TEST_F(SnapshotOverlay, MalformedOverlaysAreRefusedWithTheirReason) {
  const std::vector<uint8_t> good = overlay_of(with_member_down(0, 2, 0, 2));
  auto refused = [&](std::vector<uint8_t> overlay) {
    std::string error;
    auto s = load_overlay(overlay, &error, in_service_.get());
    EXPECT_EQ(s, nullptr);
    return error;
  };
  std::vector<uint8_t> truncated(good.begin(), good.end() - 8);
  EXPECT_NE(refused(truncated).find("overlay: total_size"), std::string::npos);
  EXPECT_NE(
      refused(std::vector<uint8_t>(good.begin(), good.begin() + 100)).find("overlay too short"),
      std::string::npos);
  EXPECT_EQ(refused(base_), "overlay: bad magic") << "an image where the overlay belongs";
  std::vector<uint8_t> unknown = good;
  reinterpret_cast<OverlayHeader*>(unknown.data())->sections[0].id = 31;
  EXPECT_EQ(refused(unknown), "overlay: section entry 0: unknown id 31");
  std::vector<uint8_t> duplicate = good;
  auto* h = reinterpret_cast<OverlayHeader*>(duplicate.data());
  ASSERT_GE(h->section_count, 2u);
  h->sections[1].id = h->sections[0].id;
  EXPECT_NE(refused(duplicate).find(": duplicate"), std::string::npos);
  std::vector<uint8_t> outside = good;
  reinterpret_cast<OverlayHeader*>(outside.data())->sections[0].size += 1u << 20;
  EXPECT_NE(refused(outside).find("out of bounds"), std::string::npos);
  std::vector<uint8_t> version = good;
  reinterpret_cast<OverlayHeader*>(version.data())->format_version = 2;
  EXPECT_EQ(refused(version), "overlay: unsupported format version 2");
}

TEST_F(SnapshotOverlay, BadBaseIsRefused) {
  const std::vector<uint8_t> overlay = overlay_of(with_member_down(0, 2, 0, 2));
  std::vector<uint8_t> short_base(base_.begin(), base_.begin() + base_.size() / 2);
  const int overlay_fd = sealed_memfd(overlay);
  const int bad_base = sealed_memfd(short_base);
  std::string error;
  EXPECT_EQ(LoadedSnapshot::from_overlay(overlay_fd, bad_base, &error, no_checksum()), nullptr);
  EXPECT_NE(error.find("base image: total_size"), std::string::npos) << error;
  // The overlay where the base belongs.
  EXPECT_EQ(LoadedSnapshot::from_overlay(overlay_fd, overlay_fd, &error, no_checksum()), nullptr);
  EXPECT_EQ(error, "base image: bad magic");
  close(bad_base);
  close(overlay_fd);
}

TEST_F(SnapshotOverlay, UnsealedOverlayOrBaseIsRefused) {
  const std::vector<uint8_t> overlay = overlay_of(with_member_down(0, 2, 0, 2));
  const int sealed = sealed_memfd(overlay);
  const int unsealed = unsealed_memfd(overlay);
  const int unsealed_base = unsealed_memfd(base_);
  std::string error;
  const std::string expected =
      "an overlay and its base must be memfds sealed against writing and shrinking";
  EXPECT_EQ(LoadedSnapshot::from_overlay(unsealed, base_fd_, &error, no_checksum()), nullptr);
  EXPECT_EQ(error, expected);
  EXPECT_EQ(LoadedSnapshot::from_overlay(sealed, unsealed_base, &error, no_checksum()), nullptr);
  EXPECT_EQ(error, expected);
  close(sealed);
  close(unsealed);
  close(unsealed_base);
}

// The real control channel: a refused overlay keeps the snapshot in service; a good one swaps in
// and is saved as a complete snapshot.bin.
TEST_F(SnapshotOverlay, ChannelRefusesBadOverlaysAndKeepsServing) {
  char dir[] = "/tmp/gtm-overlay-channel-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string error;
  std::unique_ptr<io::SnapshotSlot> slot = io::SnapshotSlot::create(1, &error);
  ASSERT_NE(slot, nullptr) << error;
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  {
    io::ControlChannel channel(slot.get(), dir, stop_fd, {});
    auto publish = [&](const std::string& request, std::vector<int> fds) {
      // handle() closes the descriptors it gets: hand it duplicates.
      for (int& fd : fds) fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      const std::string reply =
          channel.handle(request.data(), request.size(), fds.data(), fds.size());
      channel.finish_after_reply();
      return reply;
    };
    EXPECT_EQ(publish("PUBLISH 1", {base_fd_}), "OK 1");

    std::vector<uint8_t> overlay = overlay_of(with_member_down(0, 2, 0, 2));
    std::vector<uint8_t> wrong = overlay;
    reinterpret_cast<OverlayHeader*>(wrong.data())->base_generation = 9;
    const int wrong_fd = sealed_memfd(wrong);
    EXPECT_EQ(publish("PUBLISH 2", {wrong_fd, base_fd_}),
              "ERR invalid snapshot: overlay completes base generation 9, the base image is "
              "generation 1");
    const int unsealed = unsealed_memfd(overlay);
    EXPECT_EQ(publish("PUBLISH 2", {unsealed, base_fd_}),
              "ERR overlay and base image must be memfds sealed with F_SEAL_WRITE and "
              "F_SEAL_SHRINK");
    EXPECT_EQ(slot->active_generation(), 1u) << "the snapshot in service keeps serving";

    const int good = sealed_memfd(overlay);
    EXPECT_EQ(publish("PUBLISH 3", {good, base_fd_}),
              "ERR generation mismatch: announced 3, image has 2");
    EXPECT_EQ(publish("PUBLISH 2", {good, base_fd_}), "OK 2");
    EXPECT_EQ(slot->active_generation(), 2u);
    const io::ControlChannel::PublishStats p = channel.last_publish();
    EXPECT_EQ(p.overlay, 1u);
    EXPECT_EQ(p.base_shared, 1u);
    EXPECT_EQ(p.received_bytes, overlay.size());
    EXPECT_LT(p.received_bytes, p.bytes);
    EXPECT_EQ(publish("PUBLISH 2", {good, base_fd_}), "ERR stale generation 2 (active 2)");
    close(wrong_fd);
    close(unsealed);
    close(good);
  }  // the channel's saver writes what is pending before it stops
  std::unique_ptr<LoadedSnapshot> saved(
      LoadedSnapshot::from_file(std::string(dir) + "/snapshot.bin", &error));
  ASSERT_NE(saved, nullptr) << error;
  EXPECT_EQ(saved->view().generation(), 2u);
  std::vector<uint8_t> full;
  ASSERT_TRUE(control::build_snapshot(with_member_down(0, 2, 0, 2), &full, &error)) << error;
  EXPECT_EQ(comparable(std::vector<uint8_t>(saved->data(), saved->data() + saved->received_size())),
            comparable(full));
  close(stop_fd);
  std::string rm = std::string("rm -rf ") + dir;
  ASSERT_EQ(std::system(rm.c_str()), 0);
}

}  // namespace
}  // namespace gtm::snap
