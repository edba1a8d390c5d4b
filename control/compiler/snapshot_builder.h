// Compiles a SnapshotModel into a snapshot image (dataplane/snapshot/format.h).
//
// This is where health becomes a snapshot: each member's usable verdict (mode, health, enabled),
// each pool's usable list and weighted wheel are computed here, once per publish.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "control/compiler/model.h"

namespace gtm::control {

// Builds the image. Returns false and sets *error on a model that cannot be represented (duplicate
// zone, a record outside every zone, a name longer than 255 octets, a service clashing with a
// static record, more than 65535 RRsets at a node, ...). The result passes SnapshotView::validate.
bool build_snapshot(const SnapshotModel& model, std::vector<uint8_t>* image, std::string* error);

// Whether a member counts as usable, the single rule shared by the builder and explain output.
bool member_usable(const MemberModel& m, bool unknown_health_is_up);

// The fields of a model that health, operator overrides and control's switch policy decide for
// each image, on top of the configuration: a member's `health` and `enabled`, a rule's
// `use_secondary`, `switch_reason` and `hold_down_left_s`, a service's `ttl` (unstable_ttl), and
// the generation. Everything else is the configuration.
//
// Whether `a` and `b` have the same configuration (equal in everything else; the geo tables
// compared by identity).
bool same_configuration(const SnapshotModel& a, const SnapshotModel& b);
// Copies the health fields of `from` into `to`, which has the same configuration.
void copy_health_fields(const SnapshotModel& from, SnapshotModel* to);
// Makes *image_model `config` before health, overrides and the switch policy are stamped on it:
// when it already has the same configuration (an earlier image of it) only the health fields are
// copied, not the names, records and tables (a health publish at scale copies no strings).
void reset_to_configuration(const SnapshotModel& config, SnapshotModel* image_model);

// An image as consecutive byte ranges (header, sections, padding), to be written out with one
// writev instead of being copied into one buffer first.
struct ImageParts {
  std::vector<std::pair<const uint8_t*, size_t>> parts;
  size_t size = 0;
  std::vector<uint8_t> flatten() const;
};

// Builds the images of one configuration again and again as health changes, recomputing only
// what health decides.
//
// A model whose configuration differs from the last full build's (or the first one) is built in
// full (build_snapshot) and its image kept. A model with the same configuration is a health-only
// change: members' usable flags, pools' usable lists, ratio wheels and topology picks (only for
// pools whose usable members changed), rules' active sets, services' TTLs and flags, and the
// TTLs of GSLB RRsets are recomputed, and every other section (names, zones, RRsets, RDATA, the
// geo and per-class tables) is taken from the kept image. The result is, byte for byte, what
// build_snapshot makes of the same model (tests/control/snapshot_compiler_test.cc), and so is the
// kept image completed by the build's overlay(): what gtm-control publishes for a health change.
class SnapshotCompiler {
 public:
  struct Stats {
    bool incremental = false;  // false: a full build
    uint64_t compare_us = 0;   // same_configuration
    uint64_t build_us = 0;     // the build itself, checksum included
    uint32_t pools_recomputed = 0;
    uint32_t pools = 0;
  };

  SnapshotCompiler();
  ~SnapshotCompiler();
  SnapshotCompiler(const SnapshotCompiler&) = delete;
  SnapshotCompiler& operator=(const SnapshotCompiler&) = delete;

  // Builds `model` into *out, whose byte ranges stay valid until the next build or the
  // compiler's end. Without `with_checksum` the header's checksum is 0: for a sealed memfd, whose
  // checksum the dataplane does not verify (it checksums what it saves). Same errors as
  // build_snapshot.
  // `same_configuration_as_last`: the caller knows that `model` has the configuration of the
  // model of the previous successful build (same_configuration), which is then not compared again.
  bool build(const SnapshotModel& model, ImageParts* out, std::string* error,
             bool with_checksum = true, bool same_configuration_as_last = false);
  const Stats& stats() const { return stats_; }
  // After a health-only build: the overlay (dataplane/snapshot/format.h OverlayHeader) of the
  // recomputed sections that differ from the base image's; with the base image it makes the same
  // snapshot as the build's output. nullptr after a full build. Valid like the output.
  const ImageParts* overlay() const;
  // The image of the last full build, which overlays complete (its header carries their base
  // generation); nullptr before the first build. Valid until the next full build or reset().
  const std::vector<uint8_t>* base_image() const;
  // Changes with every full build: tells one base image from the next.
  uint64_t base_id() const { return base_id_; }
  // Forgets the kept configuration: the next build is a full one.
  void reset();

 private:
  struct Kept;
  bool build_health(const SnapshotModel& model, ImageParts* out, std::string* error,
                    bool with_checksum);
  std::unique_ptr<Kept> kept_;
  Stats stats_;
  uint64_t base_id_ = 0;
  bool last_build_ok_ = false;
};

}  // namespace gtm::control
