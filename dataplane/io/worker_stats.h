// One worker's counters as the readers (STATUS on the control socket, DPDK telemetry) see them:
// the engine's per-query counters (dataplane/engine/counters.h) and, for DPDK lcores, the
// packet counters (dataplane/packet/packet_counters.h). Both backends export the same names.
#pragma once

#include <cstdint>

#include "dataplane/engine/answer.h"
#include "dataplane/packet/packet_counters.h"

namespace gtm::io {

struct WorkerStatsSource {
  const engine::WorkerState* state;
  const char* transport;                            // "udp", "tcp" or "dpdk"
  const packet::PacketCounters* packets = nullptr;  // DPDK lcores only
};

// Relaxed: each counter has a single writer; a reader needs no consistency across counters, only
// values that are not torn.
inline uint64_t load_counter(const uint64_t& c) {
  return __atomic_load_n(&c, __ATOMIC_RELAXED);
}

// Calls fn(name, value) for every counter of `s`: the engine's, then the packet counters if any.
template <typename Fn>
void visit_counters(const WorkerStatsSource& s, Fn fn) {
#define GTM_VISIT_COUNTER(name, help) fn(#name, load_counter(s.state->counters.name));
  GTM_WORKER_COUNTERS(GTM_VISIT_COUNTER)
#undef GTM_VISIT_COUNTER
  if (s.packets != nullptr) packet::for_each_packet_counter(*s.packets, load_counter, fn);
}

}  // namespace gtm::io
