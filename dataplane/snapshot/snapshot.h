// A validated, read-only view of a snapshot image (format.h).
//
// SnapshotView::validate() checks the header, checksum and every offset/index/count in every
// section once; a view that validated can then be indexed by the engine with no further checks.
// The view does not own the bytes; LoadedSnapshot owns a mapping of them (memfd or file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dataplane/geo/lpm.h"
#include "dataplane/snapshot/format.h"

namespace gtm::snap {

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
  bool validate(const uint8_t* data, size_t len, std::string* error);

  const Header& header() const { return *header_; }
  uint64_t generation() const { return header_->generation; }

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
  const Header* header_ = nullptr;
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
  const uint8_t* answer_records_ = nullptr;
  const AnswerRef* rrset_answers_ = nullptr;
  const AnswerRef* member_answers_ = nullptr;
};

// An image the dataplane owns: a read-only mapping plus its validated view.
class LoadedSnapshot {
 public:
  // Maps the file descriptor (a sealed memfd or a regular file) read-only and validates it.
  // Returns nullptr and sets *error on failure. Does not take ownership of fd.
  static LoadedSnapshot* from_fd(int fd, std::string* error);
  // Opens and loads a file; same contract.
  static LoadedSnapshot* from_file(const std::string& path, std::string* error);
  ~LoadedSnapshot();

  LoadedSnapshot(const LoadedSnapshot&) = delete;
  LoadedSnapshot& operator=(const LoadedSnapshot&) = delete;

  const SnapshotView& view() const { return view_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  LoadedSnapshot() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  SnapshotView view_;
};

// Writes an image atomically (temp file + fsync + rename). Returns false and sets *error on
// failure.
bool write_snapshot_file(const std::string& path, const uint8_t* data, size_t len,
                         std::string* error);

}  // namespace gtm::snap
