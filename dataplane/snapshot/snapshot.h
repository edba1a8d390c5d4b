// A validated, read-only view of a snapshot image (format.h).
//
// SnapshotView::validate() checks the header, checksum and every offset/index/count in every
// section once; a view that validated can then be indexed by the engine with no further checks.
// The view does not own the bytes; LoadedSnapshot owns a mapping of them (memfd or file).
//
// Reuse: most publishes change only what health decides (members, pools, their slots, rules), so
// an image is validated against the one in service. Its sections are compared byte for byte with
// the same sections of that image, and each check whose every input section is identical is not
// run again: it is a pure function of those bytes, which passed it before (the previous image is a
// sealed memfd, so its bytes are the ones that were checked). Nothing control says is trusted for
// this; the comparison is the test. An identical LPM table keeps the previous image's validated
// view, whose bytes that image keeps mapped (LoadedSnapshot shares the mapping).
//
// Overlays (format.h OverlayHeader): a health change arrives as the sections it recomputed plus
// the base image they complete. When the base is the file the snapshot in service is built on,
// its mapping is shared: a section read from the same address of the same sealed mapping as in
// the view in service is identical without being compared, so such a publish costs the checks of
// the few hundred kilobytes that changed, not a pass over megabytes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/geo/lpm.h"
#include "dataplane/snapshot/format.h"

namespace gtm::snap {

class SnapshotView;
class LoadedSnapshot;

// What one validation did and what it cost (gtm-dataplane's STATUS, benchmarks).
struct ValidationStats {
  uint64_t checksum_ns = 0;      // the whole-image checksum (0: not verified)
  uint64_t compare_ns = 0;       // comparing the sections with the previous image's
  uint64_t checks_ns = 0;        // the cross-reference checks that ran (LPM tables aside)
  uint64_t lpm_ns = 0;           // the LPM tables that were validated
  uint32_t sections_same = 0;    // sections byte-identical to the previous image's
  uint32_t sections_shared = 0;  // of which read from the same mapping (not compared)
  uint32_t checks_run = 0;       // checks run (LPM tables included)
  uint32_t checks_skipped = 0;   // checks whose inputs were all identical
  uint64_t bytes_same = 0;       // bytes of the identical sections
};

struct ValidateOptions {
  // The whole-image checksum guards an image against damage on its way through a file. A sealed
  // memfd has no such way: its bytes are the ones control wrote, and the kernel keeps them so.
  bool verify_checksum = true;
  // A view validated before whose bytes have not changed since and stay mapped as long as this
  // view is used (an identical LPM table is then read from there): checks of identical sections
  // are not repeated. nullptr: everything is checked.
  const SnapshotView* previous = nullptr;
  ValidationStats* stats = nullptr;  // filled when not nullptr
};
// Linear probing over the name index (format.h); bounded by the bucket count so that even a table
// with no empty bucket cannot loop forever. Inline: it is the one hash lookup of every query.
inline uint32_t probe_name_index(const uint32_t* index, uint32_t mask, const Node* nodes,
                                 const uint8_t* blob, const uint8_t* name, size_t len,
                                 uint32_t hash) {
  uint32_t bucket = hash & mask;
  for (uint64_t probes = 0; probes <= mask; ++probes) {
    const uint32_t v = index[bucket];
    if (v == 0) return kNone;
    const Node& n = nodes[v - 1];
    if (n.name.len == len && dns::names_equal(blob + n.name.off, name, len)) return v - 1;
    bucket = (bucket + 1) & mask;
  }
  return kNone;
}

class SnapshotView {
 public:
  // Validates `data[0, len)`. On failure returns false and sets *error to a one-line reason
  // ("bad magic", "checksum mismatch", "node 12: rrset range out of bounds", ...).
  bool validate(const uint8_t* data, size_t len, std::string* error) {
    return validate(data, len, error, ValidateOptions());
  }
  bool validate(const uint8_t* data, size_t len, std::string* error,
                const ValidateOptions& options);
  // Validates the snapshot that the overlay `overlay[0, overlay_len)` (format.h OverlayHeader)
  // makes of the base image `base[0, base_len)`: both containers, that the overlay completes this
  // very base (its base generation), then every check on the composed sections, exactly as for
  // the flat image they make (header() is that image's header, checksum 0). The base's checksum
  // is not verified: overlays come only in sealed memfds, with their base.
  bool validate_overlay(const uint8_t* base, size_t base_len, const uint8_t* overlay,
                        size_t overlay_len, std::string* error, const ValidateOptions& options);

  // Whether the LPM tables of this view were taken over from `options.previous` (their bytes
  // live in the previous image, not in this one).
  bool lpm4_from_previous() const { return lpm4_from_previous_; }
  bool lpm6_from_previous() const { return lpm6_from_previous_; }

  // The header of the image (for an overlay's snapshot: of the flat image it makes).
  const Header& header() const { return header_; }
  uint64_t generation() const { return header_.generation; }
  // Section `id` (< kMaxSections) as validated: where its bytes are and how many.
  const SectionBytes& section(uint32_t id) const { return sections_[id]; }

  const uint8_t* blob(BlobRef r) const { return blob_ + r.off; }
  const uint8_t* blob_base() const { return blob_; }

  const Zone* zones() const { return zones_; }
  uint32_t zone_count() const { return zone_count_; }
  const Node* nodes() const { return nodes_; }
  uint32_t node_count() const { return node_count_; }
  const RRset* rrsets() const { return rrsets_; }
  uint32_t rrset_count() const { return rrset_count_; }
  const Rdata* rdatas() const { return rdatas_; }
  uint32_t rdata_count() const { return rdata_count_; }
  const Service* services() const { return services_; }
  uint32_t service_count() const { return service_count_; }
  const Pool* pools() const { return pools_; }
  uint32_t pool_count() const { return pool_count_; }
  const Member* members() const { return members_; }
  uint32_t member_count() const { return member_count_; }
  const uint32_t* pool_slots() const { return pool_slots_; }
  uint32_t pool_slot_count() const { return pool_slot_count_; }

  // Traffic steering. There is always at least one class (class 0: in no set).
  const geo::Lpm4View& lpm4() const { return lpm4_; }
  const geo::Lpm6View& lpm6() const { return lpm6_; }
  const ClientSet* client_sets() const { return client_sets_; }
  uint32_t client_set_count() const { return client_set_count_; }
  const ClientClass* classes() const { return classes_; }
  uint32_t class_count() const { return class_count_; }
  const uint32_t* class_sets() const { return class_sets_; }
  const Datacenter* datacenters() const { return datacenters_; }
  uint32_t datacenter_count() const { return datacenter_count_; }
  // topo_scores()[class * datacenter_count() + datacenter]
  const uint16_t* topo_scores() const { return topo_scores_; }
  const PoolSet* pool_sets() const { return pool_sets_; }
  const uint32_t* set_pools() const { return set_pools_; }
  const Rule* rules() const { return rules_; }
  const uint32_t* rule_sets() const { return rule_sets_; }
  const uint16_t* class_rules() const { return class_rules_; }
  const uint16_t* topo_maps() const { return topo_maps_; }
  const TopoPick* topo_picks() const { return topo_picks_; }

  // Answer records rendered at publish time (format.h AnswerRef): rrset_answers()[rrset index],
  // member_answers()[member index], offsets into answer_records().
  const uint8_t* answer_records() const { return answer_records_; }
  const AnswerRef* rrset_answers() const { return rrset_answers_; }
  const AnswerRef* member_answers() const { return member_answers_; }
  // Per (service, class) picks (format.h PickEntry): pick_table()[service.pick_table + class].
  const PickEntry* pick_table() const { return pick_table_; }

  // Exact lookup of a canonical (lowercase, uncompressed) wire name. Returns the node index or
  // kNone. `hash` must be name_hash(name, len).
  uint32_t find_node(const uint8_t* name, size_t len, uint32_t hash) const {
    if (GTM_UNLIKELY(name_index_ == nullptr)) return kNone;  // never validated
    return probe_name_index(name_index_, name_index_mask_, nodes_, blob_, name, len, hash);
  }
  uint32_t find_node(const uint8_t* name, size_t len) const {
    return find_node(name, len, name_hash(name, len));
  }

 private:
  bool validate_sections(const Header& h, const SectionBytes bytes[kMaxSections],
                         const SnapshotView& previous, ValidationStats& stats, std::string* error);

  bool validated_ = false;
  const uint8_t* blob_ = nullptr;
  uint32_t blob_size_ = 0;
  const Zone* zones_ = nullptr;
  uint32_t zone_count_ = 0;
  const Node* nodes_ = nullptr;
  uint32_t node_count_ = 0;
  const uint32_t* name_index_ = nullptr;
  uint32_t name_index_mask_ = 0;  // buckets - 1
  const RRset* rrsets_ = nullptr;
  uint32_t rrset_count_ = 0;
  const Rdata* rdatas_ = nullptr;
  uint32_t rdata_count_ = 0;
  const Service* services_ = nullptr;
  uint32_t service_count_ = 0;
  const Pool* pools_ = nullptr;
  uint32_t pool_count_ = 0;
  const Member* members_ = nullptr;
  uint32_t member_count_ = 0;
  const uint32_t* pool_slots_ = nullptr;
  uint32_t pool_slot_count_ = 0;
  geo::Lpm4View lpm4_;
  geo::Lpm6View lpm6_;
  const ClientSet* client_sets_ = nullptr;
  uint32_t client_set_count_ = 0;
  const ClientClass* classes_ = nullptr;
  uint32_t class_count_ = 0;
  const uint32_t* class_sets_ = nullptr;
  const Datacenter* datacenters_ = nullptr;
  uint32_t datacenter_count_ = 0;
  const uint16_t* topo_scores_ = nullptr;
  const PoolSet* pool_sets_ = nullptr;
  const uint32_t* set_pools_ = nullptr;
  const Rule* rules_ = nullptr;
  const uint32_t* rule_sets_ = nullptr;
  const uint16_t* class_rules_ = nullptr;
  const uint16_t* topo_maps_ = nullptr;
  const TopoPick* topo_picks_ = nullptr;
  bool lpm4_from_previous_ = false;
  bool lpm6_from_previous_ = false;
  const uint8_t* answer_records_ = nullptr;
  const AnswerRef* rrset_answers_ = nullptr;
  const AnswerRef* member_answers_ = nullptr;
  const PickEntry* pick_table_ = nullptr;
  // Last: the fields above are the ones every query reads, kept together at the start.
  Header header_{};
  SectionBytes sections_[kMaxSections];
};

struct LoadOptions {
  // Only a sealed memfd may skip the checksum (ValidateOptions); a file is always verified.
  bool verify_checksum = true;
  // The image in service: its checks are reused for identical sections when both it and the new
  // image are sealed memfds (a file's bytes could change under its mapping).
  const LoadedSnapshot* previous = nullptr;
  ValidationStats* stats = nullptr;
};

// An image the dataplane owns: a read-only mapping plus its validated view.
// The flat image (format.h) a loaded snapshot stands for, in pieces that stay mapped as long as
// this lives: what snapshot.bin gets (write_snapshot_file computes its checksum).
struct FlatImage {
  Header header{};
  std::vector<std::pair<const uint8_t*, size_t>> parts;  // the bytes after the header, in order
  std::vector<std::shared_ptr<const void>> keep;         // the mappings they point into
};

class LoadedSnapshot {
 public:
  // Maps the file descriptor (a sealed memfd or a regular file) read-only and validates it.
  // Returns nullptr and sets *error on failure. Does not take ownership of fd.
  static LoadedSnapshot* from_fd(int fd, std::string* error, const LoadOptions& options = {});
  // Maps an overlay and the base image it completes (format.h OverlayHeader), both sealed
  // memfds, and validates the snapshot they make (SnapshotView::validate_overlay). A base that is
  // the file the image in service is (or is built on) is not mapped again: that mapping is
  // shared, so its sections are the very bytes validated before and are not compared again.
  // Same contract as from_fd; the checksum option does not apply (sealed memfds only).
  static LoadedSnapshot* from_overlay(int overlay_fd, int base_fd, std::string* error,
                                      const LoadOptions& options = {});
  // Opens and loads a file; same contract.
  static LoadedSnapshot* from_file(const std::string& path, std::string* error);
  ~LoadedSnapshot();

  LoadedSnapshot(const LoadedSnapshot&) = delete;
  LoadedSnapshot& operator=(const LoadedSnapshot&) = delete;

  const SnapshotView& view() const { return view_; }
  // Bytes of the flat image this snapshot stands for.
  size_t size() const { return view_.header().total_size; }
  // The bytes received: the image, or the overlay (its base is not counted).
  const uint8_t* data() const { return map_->data; }
  size_t received_size() const { return map_->size; }
  // Whether the base image was a mapping the previous snapshot already had.
  bool base_shared() const { return base_shared_; }
  // Every mapping is a memfd sealed against writing and shrinking: its bytes can never change.
  bool sealed() const { return sealed_; }
  FlatImage flat_image() const;

 private:
  struct Mapping {
    const uint8_t* data = nullptr;
    size_t size = 0;
    dev_t dev = 0;  // the file's identity: the same file means the same (sealed) bytes
    ino_t ino = 0;
    bool sealed = false;
    ~Mapping();
  };
  LoadedSnapshot() = default;
  static std::shared_ptr<const Mapping> map_fd(int fd, std::string* error);
  // A new LoadedSnapshot with `fd` mapped as map_ (not validated yet).
  static std::unique_ptr<LoadedSnapshot> mapped(int fd, std::string* error);
  // The mapping of the whole image this snapshot is, or of the base its overlay completes.
  const std::shared_ptr<const Mapping>& image_map() const { return base_map_ ? base_map_ : map_; }
  // The mapping that holds `data` (map_ or base_map_).
  const std::shared_ptr<const Mapping>& holder_of(const uint8_t* data) const;
  void keep_lpm_maps(const LoadedSnapshot* previous);

  std::shared_ptr<const Mapping> map_;       // the image, or the overlay
  std::shared_ptr<const Mapping> base_map_;  // the base an overlay completes (else nullptr)
  // Where the view's LPM tables live: one of the above, or the mapping of an earlier image whose
  // identical tables this one took over (kept mapped while any image reads them).
  std::shared_ptr<const Mapping> lpm4_map_;
  std::shared_ptr<const Mapping> lpm6_map_;
  bool sealed_ = false;
  bool base_shared_ = false;
  SnapshotView view_;
};

// For tests: runs every validation check with only the sections it declares as its inputs
// visible (the others empty). A valid image passes all of them exactly when the declarations are
// complete, which is what makes skipping a check with unchanged inputs safe. On failure *error
// names the check.
bool check_declared_inputs(const uint8_t* data, size_t len, std::string* error);

// Writes an image atomically (temp file + fsync + rename). Returns false and sets *error on
// failure.
bool write_snapshot_file(const std::string& path, const uint8_t* data, size_t len,
                         std::string* error);
// The same for the flat image of a loaded snapshot, whose checksum may not have been verified (a
// sealed memfd, an overlay's snapshot): the file gets the checksum of its bytes, so what is saved
// is what was validated and served.
bool write_snapshot_file(const std::string& path, const FlatImage& image, std::string* error);

}  // namespace gtm::snap
