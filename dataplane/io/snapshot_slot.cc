#include "dataplane/io/snapshot_slot.h"

#include <rte_rcu_qsbr.h>

#include <cstdlib>
#include <cstring>

namespace gtm::io {

std::unique_ptr<SnapshotSlot> SnapshotSlot::create(uint32_t max_readers, std::string* error) {
  if (max_readers == 0) {
    *error = "no reader threads";
    return nullptr;
  }
  size_t size = rte_rcu_qsbr_get_memsize(max_readers);
  if (size <= 1) {
    *error = "rte_rcu_qsbr_get_memsize failed";
    return nullptr;
  }
  // The QSBR variable's per-thread counters are cache-line aligned inside it; the variable itself
  // must be cache-line aligned too (rte_zmalloc would do this, but needs the EAL).
  size = (size + RTE_CACHE_LINE_SIZE - 1) & ~static_cast<size_t>(RTE_CACHE_LINE_SIZE - 1);
  void* mem = std::aligned_alloc(RTE_CACHE_LINE_SIZE, size);
  if (mem == nullptr) {
    *error = "out of memory for the RCU variable";
    return nullptr;
  }
  std::memset(mem, 0, size);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(mem);
  if (rte_rcu_qsbr_init(qsbr, max_readers) != 0) {
    std::free(mem);
    *error = "rte_rcu_qsbr_init failed";
    return nullptr;
  }
  std::unique_ptr<SnapshotSlot> slot(new SnapshotSlot());
  slot->qsbr_ = qsbr;
  return slot;
}

SnapshotSlot::~SnapshotSlot() {
  delete active_.load(std::memory_order_acquire);
  std::free(qsbr_);
}

bool SnapshotSlot::register_reader(uint32_t thread_id) {
  return rte_rcu_qsbr_thread_register(qsbr_, thread_id) == 0;
}

void SnapshotSlot::unregister_reader(uint32_t thread_id) {
  rte_rcu_qsbr_thread_unregister(qsbr_, thread_id);
}

void SnapshotSlot::online(uint32_t thread_id) {
  rte_rcu_qsbr_thread_online(qsbr_, thread_id);
}

void SnapshotSlot::offline(uint32_t thread_id) {
  rte_rcu_qsbr_thread_offline(qsbr_, thread_id);
}

void SnapshotSlot::quiescent(uint32_t thread_id) {
  rte_rcu_qsbr_quiescent(qsbr_, thread_id);
}

void SnapshotSlot::publish(snap::LoadedSnapshot* next) {
  exchange(next);
}

std::unique_ptr<snap::LoadedSnapshot> SnapshotSlot::exchange(snap::LoadedSnapshot* next) {
  std::lock_guard<std::mutex> lock(writer_mu_);
  std::unique_ptr<snap::LoadedSnapshot> old(active_.exchange(next, std::memory_order_acq_rel));
  generation_.store(next->view().generation(), std::memory_order_release);
  if (old == nullptr) return old;
  // Readers that acquired `old` are online and have not reported quiescence since; wait for each
  // of them to pass a quiescent point (offline readers count as quiescent). The writer is not a
  // reader, so waiting here cannot deadlock on itself.
  uint64_t token = rte_rcu_qsbr_start(qsbr_);
  rte_rcu_qsbr_check(qsbr_, token, true);
  return old;
}

}  // namespace gtm::io
