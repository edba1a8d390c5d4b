#include "dataplane/snapshot/pick_table.h"

namespace gtm::snap {

namespace {

// An all-zero entry (the chain) when the pick does not fit the entry's fields.
PickEntry flat(uint32_t slot_first, uint32_t slot_count, bool rotating, uint32_t answer_count) {
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
bool method_entry(const PickSources& src, const Pool& pool, uint8_t method, uint32_t cls,
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

}  // namespace

PickEntry derive_pick(const PickSources& src, const Service& svc, uint32_t cls) {
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
