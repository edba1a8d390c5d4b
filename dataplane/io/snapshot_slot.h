// The active snapshot, swapped with RCU (DPDK's QSBR flavour).
//
// Readers (UDP workers, the TCP thread) load the pointer and use the image without locks; the
// writer (control channel) exchanges the pointer, waits until every reader has passed a quiescent
// point, and only then frees the old image. QSBR is used (not epoch/refcount) because readers pay
// nothing per query: they report "I hold no snapshot reference" once per batch.
//
// Reader protocol, per thread:
//   register_reader(id) once; online(id) before the first acquire();
//   acquire() gives the image for a batch; quiescent(id) after the batch (then re-acquire);
//   offline(id) before any blocking call (poll, epoll_wait), online(id) + acquire() after it.
// rte_rcu_qsbr works without rte_eal_init: the variable is plain memory we allocate.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "dataplane/snapshot/snapshot.h"

struct rte_rcu_qsbr;

namespace gtm::io {

class SnapshotSlot {
 public:
  // `max_readers` reader threads, with ids [0, max_readers). nullptr and *error on failure.
  static std::unique_ptr<SnapshotSlot> create(uint32_t max_readers, std::string* error);
  ~SnapshotSlot();  // frees the active image; all readers must have stopped

  SnapshotSlot(const SnapshotSlot&) = delete;
  SnapshotSlot& operator=(const SnapshotSlot&) = delete;

  // Reader side. Each id is used by exactly one thread.
  bool register_reader(uint32_t thread_id);
  void unregister_reader(uint32_t thread_id);
  void online(uint32_t thread_id);
  void offline(uint32_t thread_id);
  void quiescent(uint32_t thread_id);
  // The active image's view, or nullptr when none is loaded. Valid until the caller's next
  // quiescent() or offline().
  const snap::SnapshotView* acquire() const {
    const snap::LoadedSnapshot* s = active_.load(std::memory_order_acquire);
    return s != nullptr ? &s->view() : nullptr;
  }

  // Writer side. Takes ownership of `next` (not nullptr), makes it the active image, waits for a
  // grace period and frees the previous image. Writers are serialised; blocks only as long as the
  // slowest online reader takes to finish its batch.
  void publish(snap::LoadedSnapshot* next);
  // The same, but hands the previous image (nullptr if none) back instead of freeing it, so the
  // writer can answer first and free it afterwards (unmapping an image takes time).
  std::unique_ptr<snap::LoadedSnapshot> exchange(snap::LoadedSnapshot* next);
  // Writer side: the active image (nullptr when none), for validating the next one against it.
  // Only the writer may use it: the image stays alive until the writer's next exchange.
  const snap::LoadedSnapshot* active_for_writer() const {
    return active_.load(std::memory_order_acquire);
  }
  // Generation of the active image, 0 when none.
  uint64_t active_generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  SnapshotSlot() = default;

  rte_rcu_qsbr* qsbr_ = nullptr;
  std::atomic<snap::LoadedSnapshot*> active_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::mutex writer_mu_;
};

}  // namespace gtm::io
