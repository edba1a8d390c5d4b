// The pick table (format.h PickEntry): what a service's chain decides for one client class, as
// one entry. Derived here, once, for both sides of the contract: control's builder writes the
// entries with it, and the validator derives each entry again from the sections it is computed
// from and refuses an image whose entry differs. The engine's general chain
// (dataplane/engine/answer.cc pick_active) is the independent definition the entries must agree
// with: tests/fuzz/fuzz_answer.cc and tests/dataplane/engine/steering_test.cc compare the two.
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

namespace pick_detail {

// An all-zero entry (the chain) when the pick does not fit the entry's fields.
inline PickEntry flat(uint32_t slot_first, uint32_t slot_count, bool rotating,
                      uint32_t answer_count) {
  PickEntry e{};
  if (slot_count > 0xFFFF || answer_count > kPickCountMask) return e;
  e.slot_first = slot_first;
  e.slot_count = static_cast<uint16_t>(slot_count);
  e.meta = static_cast<uint16_t>(answer_count | (rotating ? kPickRotates : 0));
  return e;
}

// One method of a pool's chain, as the engine's try_method: true when it decides (*out is then
// the entry, all-zero when the decision needs what a table cannot hold), false when it cannot pick
// (topology without a usable member in a scored datacenter) and the chain goes on.
inline bool method_entry(const PickSources& src, const Pool& pool, uint8_t method, uint32_t cls,
                         bool* scope_class, PickEntry* out) {
  const uint32_t n = pool.usable_count;  // >= 1: pools without a usable member are skipped
  switch (static_cast<PoolMethod>(method)) {
    case PoolMethod::kRoundRobin:
      *out = flat(pool.usable_first, n, true, 1);
      return true;
    case PoolMethod::kRatio:
      *out = pool.wheel_count > 0 ? flat(pool.wheel_first, pool.wheel_count, true, 1)
                                  : flat(pool.usable_first, n, true, 1);
      return true;
    case PoolMethod::kGlobalAvailability:
      *out = flat(pool.usable_first, n, false, 1);
      return true;
    case PoolMethod::kReturnAll:
      *out = flat(pool.usable_first, n, false, n);
      return true;
    case PoolMethod::kReturnN:
      *out = flat(pool.usable_first, n, true, pool.return_n < n ? pool.return_n : n);
      return true;
    case PoolMethod::kTopology: {
      if (pool.topo_varies) *scope_class = true;
      const uint16_t v = src.topo_maps[pool.topo_map + cls];
      if (v == kNoPick) return false;
      const TopoPick& pick = src.topo_picks[pool.topo_pick_first + v];
      *out = flat(pick.slot_first, pick.slot_count, true, 1);
      return true;
    }
    case PoolMethod::kRandom:       // the worker's generator: per query
    case PoolMethod::kPersistence:  // a hash of the client's address, not of its class
      *out = PickEntry{};
      return true;
  }
  *out = PickEntry{};  // unreachable: validated methods only
  return true;
}

}  // namespace pick_detail

// Inline: the builder and the validator derive every entry of every health publish (~7 ns each).
// The entry of `svc` for client class `cls` (0 when the service does not need the class): the
// first pool of the rule's active set with a usable member whose method chain picks without the
// random generator or the client address; an all-zero entry (not flat) otherwise.
inline PickEntry derive_pick(const PickSources& src, const Service& svc, uint32_t cls) {
  using namespace pick_detail;
  bool scope_class = false;
  uint32_t r = svc.fixed_rule;
  if (svc.class_rules != kNone) {
    r = src.class_rules[svc.class_rules + cls];
    if (svc.flags & kSvcRulesVary) scope_class = true;
  }
  const Rule& rule = src.rules[svc.rule_first + r];
  const PoolSet& set = src.pool_sets[rule.active ? rule.secondary : rule.primary];
  for (uint32_t i = 0; i < set.pool_count; ++i) {
    const Pool& pool = src.pools[src.set_pools[set.pool_first + i]];
    if (pool.usable_count == 0) continue;
    const uint8_t chain[3] = {pool.method, pool.alternate, pool.fallback};
    for (int k = 0; k < 3 && chain[k] != kNoMethod; ++k) {
      PickEntry e;
      if (!method_entry(src, pool, chain[k], cls, &scope_class, &e)) continue;
      if (e.slot_count != 0 && scope_class) e.meta |= kPickScopeClass;
      return e;
    }
  }
  return PickEntry{};  // the active set picks nothing: the other set, fallback or empty action
}

}  // namespace gtm::snap
