// The poll-mode lcore: rx burst -> classify -> answer in the same mbuf -> tx burst, for every
// queue the lcore owns; frames that are not DNS for a service address go to the exception path and
// the kernel's frames come back from it. Shaped like DPDK's l3fwd (see lcore.cc).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "dataplane/dpdk/port.h"
#include "dataplane/engine/answer.h"
#include "dataplane/io/snapshot_slot.h"
#include "dataplane/packet/classify.h"
#include "dataplane/packet/packet_counters.h"

struct rte_mbuf;

namespace gtm::dpdk {

inline constexpr uint16_t kBurst = 32;
inline constexpr uint16_t kMaxQueuesPerLcore = 8;
// A burst of answers plus a burst from the kernel can be waiting for the drain timer.
inline constexpr uint16_t kTxBufferSize = 2 * kBurst;

struct LcoreQueue {
  const PortRuntime* port = nullptr;
  uint16_t port_id = kNoPort;
  uint16_t queue_id = 0;
  uint16_t exception_port_id = kNoPort;
  uint16_t tx_count = 0;
  uint16_t exception_count = 0;
  rte_mbuf* tx[kTxBufferSize];
  rte_mbuf* exception[kBurst];
};

// Where an lcore's cycles go, per stage (the benchmark's breakdown; the production loop keeps only
// busy_cycles / busy_packets in its counters). Sums over bursts, and per stage a histogram of the
// burst's cycles per packet: on a shared machine the median is robust against the odd burst
// during which the lcore's thread was preempted, which the sums are not.
struct StageCycles {
  // kIteration: a whole loop iteration that received packets; what it has beyond the other
  // stages is loop overhead (RCU quiescent point, snapshot pointer, timer, stop flag).
  enum Stage { kRx, kClassify, kEngine, kReply, kTx, kIteration, kStageCount };
  static constexpr uint32_t kBuckets = 4096;  // cycles per packet, 1-cycle buckets; last = more
  uint64_t sum[kStageCount] = {};             // cycles
  uint64_t packets = 0;
  uint64_t bursts = 0;
  uint32_t hist[kStageCount][kBuckets] = {};

  // `packets_in_burst` is 1..kTxBufferSize. A division would cost as much as a small stage, hence
  // the table of 2^32 / n.
  void add(Stage s, uint64_t cycles, uint32_t packets_in_burst) {
    sum[s] += cycles;
    const uint64_t per = (cycles * kReciprocal[packets_in_burst]) >> 32;
    ++hist[s][per < kBuckets ? per : kBuckets - 1];
  }

 private:
  static constexpr std::array<uint64_t, kTxBufferSize + 1> kReciprocal = [] {
    std::array<uint64_t, kTxBufferSize + 1> t{};
    for (uint32_t i = 1; i <= kTxBufferSize; ++i) t[i] = ((uint64_t{1} << 32) + i - 1) / i;
    return t;
  }();
};

// One per lcore, allocated at start on the lcore's socket, cache-line aligned; written only by
// its lcore (the counters are read by others with relaxed loads).
// What process_burst() keeps per frame between its passes. In the lcore's context rather than on
// the stack: FrameInfo's member initializers would otherwise run for the whole burst every time
// (6 instructions per packet), and the frame addresses are computed once, not once per pass.
struct BurstScratch {
  packet::FrameInfo info[kBurst];
  uint8_t* frame[kBurst];
  uint16_t answer_len[kBurst];
  packet::Verdict verdict[kBurst];
};

struct alignas(64) LcoreContext {
  engine::WorkerState ws;  // engine counters and GSLB state: first, in their own lines
  packet::PacketCounters pc;

  io::SnapshotSlot* slot = nullptr;
  const std::atomic<bool>* stop = nullptr;
  uint32_t reader_id = 0;
  unsigned lcore_id = 0;
  uint64_t drain_cycles = 0;  // tx_drain_us in TSC cycles
  uint32_t idle_sleep_us = 0;
  // Exception path token bucket, in frames; refilled at rate_limit_pps.
  uint64_t exception_rate = 0;  // frames per second
  uint64_t exception_tokens = 0;
  uint64_t exception_refill_tsc = 0;
  uint64_t tsc_hz = 0;
  StageCycles* stages = nullptr;  // non-null: measure stages (benchmark only)
  uint16_t queue_count = 0;
  LcoreQueue queues[kMaxQueuesPerLcore];
  BurstScratch scratch;
};

// rte_eal_remote_launch entry point; `arg` is an LcoreContext. Runs until *stop becomes true.
int lcore_main(void* arg);

}  // namespace gtm::dpdk
