// Per-lcore packet counters of the DPDK backend, defined once (the engine's per-query counters are
// in dataplane/engine/counters.h). Each lcore owns one PacketCounters and is its only writer;
// readers (STATUS, telemetry) sum the lcores' copies with relaxed loads. Names are the exported
// metric names; drop reasons come from GTM_DROP_REASONS as "dropped_<reason>".
#pragma once

#include <cstdint>

#include "dataplane/packet/classify.h"

namespace gtm::packet {

#define GTM_PACKET_COUNTERS(X)                                                           \
  X(rx_packets, "frames received from the port")                                         \
  X(rx_dns, "frames classified DNS over UDP to a service address (given to the engine)") \
  X(tx_packets, "frames sent on the port: answers and frames from the exception path")   \
  X(tx_failed, "frames the port did not take (transmit ring full); freed")               \
  X(to_exception, "frames handed to the exception path (the kernel)")                    \
  X(from_exception, "frames from the exception path taken for the port")                 \
  X(busy_cycles, "TSC cycles of loop iterations that received or sent frames")           \
  X(busy_packets, "frames received in those iterations (busy_cycles / busy_packets = cost)")

struct alignas(64) PacketCounters {
#define GTM_DECLARE_PACKET_COUNTER(name, help) uint64_t name = 0;
  GTM_PACKET_COUNTERS(GTM_DECLARE_PACKET_COUNTER)
#undef GTM_DECLARE_PACKET_COUNTER
  uint64_t dropped[kDropReasonCount] = {};
};

// Calls fn(name, value) for every packet counter, then every drop reason ("dropped_<reason>").
// `load` reads one counter (a relaxed atomic load for readers of live lcores).
template <typename Fn, typename Load>
void for_each_packet_counter(const PacketCounters& c, Load load, Fn fn) {
#define GTM_VISIT_PACKET_COUNTER(name, help) fn(#name, load(c.name));
  GTM_PACKET_COUNTERS(GTM_VISIT_PACKET_COUNTER)
#undef GTM_VISIT_PACKET_COUNTER
  size_t i = 0;
#define GTM_VISIT_DROP(name, help) fn("dropped_" #name, load(c.dropped[i++]));
  GTM_DROP_REASONS(GTM_VISIT_DROP)
#undef GTM_VISIT_DROP
}

}  // namespace gtm::packet
