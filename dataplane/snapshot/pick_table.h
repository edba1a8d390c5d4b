// The pick table (format.h PickEntry): what a service's chain decides for one client class, as
// one entry. Derived here, once, for both sides of the contract: control's builder writes the
// entries with it, and the validator derives each entry again from the sections it is computed
// from and refuses an image whose entry differs. The engine's general chain
// (dataplane/engine/answer.cc pick_active) is the independent definition the entries must agree
// with: tests/fuzz/fuzz_answer.cc and tests/dataplane/engine/pick_table_test.cc compare the two.
#pragma once

#include <cstdint>

#include "dataplane/snapshot/format.h"

namespace gtm::snap {

// The sections an entry is derived from, with every index in them already proved in bounds (the
// validator's earlier checks; the builder's construction).
struct PickSources {
  const Rule* rules = nullptr;
  const PoolSet* pool_sets = nullptr;
  const uint32_t* set_pools = nullptr;
  const Pool* pools = nullptr;
  const uint16_t* class_rules = nullptr;
  const uint16_t* topo_maps = nullptr;
  const TopoPick* topo_picks = nullptr;
};

// Whether a pool can ever give a flat entry, whatever health says: not when its preferred method
// is random or persistence, which decide whenever the pool has a usable member (only topology
// can fail and pass the decision on).
inline bool pool_may_be_flat(const Pool& pool) {
  return pool.method != static_cast<uint8_t>(PoolMethod::kRandom) &&
         pool.method != static_cast<uint8_t>(PoolMethod::kPersistence);
}

// How many entries `svc` has in the table when it has one: one per client class when the pick
// depends on the class, else one. 0: the service never has a table: the fast path answers only
// A and AAAA services (CNAME services go on with the chain), and a service whose pools all
// decide by random or persistence would only pay for an entry that always says "the chain".
// Configuration only (the same for every health build); `pools` is the image's Pool[].
inline uint32_t pick_entries_wanted(const Service& svc, const Pool* pools, uint32_t class_count) {
  if (svc.rtype != dns::kTypeA && svc.rtype != dns::kTypeAAAA) return 0;
  bool may_be_flat = false;
  for (uint32_t k = 0; k < svc.pool_count; ++k)
    may_be_flat |= pool_may_be_flat(pools[svc.pool_first + k]);
  if (!may_be_flat) return 0;
  return (svc.flags & kSvcNeedsClass) != 0 ? class_count : 1;
}

// The entry of `svc` for client class `cls` (0 when the service does not need the class): the
// first pool of the rule's active set with a usable member whose method chain picks without the
// random generator or the client address; an all-zero entry (not flat) otherwise.
PickEntry derive_pick(const PickSources& src, const Service& svc, uint32_t cls);

}  // namespace gtm::snap
