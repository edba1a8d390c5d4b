// The answer engine: one query in, one response out, from an immutable snapshot.
// This is where the answer is chosen (zone, node, CNAME chain, GSLB pool and member).
//
// No allocation, no locks, no system calls: the same code runs in socket workers, DPDK lcores,
// the benchmark, the fuzzer and `gtmctl query`. Per-worker mutable state (round-robin position,
// random generator, counters) lives in WorkerState, owned by exactly one thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/engine/counters.h"
#include "dataplane/snapshot/snapshot.h"

namespace gtm::engine {

enum class Transport : uint8_t { kUdp = 0, kTcp = 1 };

// The address the query came from (the resolver), network byte order.
struct ClientAddr {
  uint8_t family = 0;  // 4 or 6; 0 = unknown (offline tools)
  uint8_t addr[16] = {};
};

struct alignas(64) WorkerState {
  uint64_t rr_counter = 0;     // advances once per GSLB selection (round-robin, ratio wheel, return-N)
  uint64_t rng = 0x9E3779B97F4A7C15ull;  // xorshift64* state (random method); seed per worker
  WorkerCounters counters;
};

// Optional decision record for `gtmctl query`; the hot path passes nullptr. Fixed-size text so the
// engine still never allocates.
struct Explain {
  static constexpr int kMaxLines = 64;
  static constexpr int kLineLen = 160;
  char lines[kMaxLines][kLineLen];
  int count = 0;
  void add(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
};

// Answers `query[0, query_len)`. Writes the response into out[0, out_cap) and returns its length,
// or 0 when the packet is to be dropped (counted in ws.counters.malformed_dropped, no_snapshot, or
// gslb_dropped when a service's all-down action is `drop`). `client` is the packet's source: the
// client steering uses unless the query's ECS subnet takes its place (docs/config.md). `out` may
// equal `query` (in-place answering); out_cap must then be the buffer's capacity, not query_len.
// `snap` may be nullptr (no snapshot loaded yet): the query is dropped and counted.
// The response never exceeds the transport limit: UDP min(max(512, client payload), 1232) with
// EDNS, 512 without; TCP 65535. Oversized answers are truncated (TC=1, sections emptied, OPT kept).
size_t answer_query(const snap::SnapshotView* snap, const uint8_t* query, size_t query_len,
                    uint8_t* out, size_t out_cap, const ClientAddr& client, Transport transport,
                    WorkerState& ws, Explain* explain = nullptr);

}  // namespace gtm::engine
