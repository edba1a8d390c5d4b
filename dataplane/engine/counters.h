// Per-worker counters, defined once. Each worker (socket thread or DPDK lcore) owns one
// WorkerCounters in its own cache lines and is its only writer; readers (status, telemetry) sum
// the workers' copies with relaxed loads. Names are the exported metric names.
#pragma once

#include <cstdint>

namespace gtm::engine {

#define GTM_WORKER_COUNTERS(X)                                                       \
  X(queries, "queries received and parsed far enough to be judged")                  \
  X(responses, "responses sent")                                                     \
  X(rcode_noerror, "responses with NOERROR")                                         \
  X(rcode_formerr, "responses with FORMERR")                                         \
  X(rcode_servfail, "responses with SERVFAIL")                                       \
  X(rcode_nxdomain, "responses with NXDOMAIN")                                       \
  X(rcode_notimp, "responses with NOTIMP")                                           \
  X(rcode_refused, "responses with REFUSED")                                         \
  X(rcode_badvers, "responses with BADVERS")                                         \
  X(malformed_dropped, "packets dropped unanswered: too short, a response, or unusable") \
  X(truncated, "responses truncated (TC set)")                                       \
  X(ecs_queries, "queries carrying EDNS Client Subnet")                              \
  X(gslb_answers, "answers chosen by a GSLB service")                                \
  X(gslb_fallback, "GSLB answers that used the fallback address")                    \
  X(gslb_empty, "GSLB answers with no usable member (empty action applied)")         \
  X(gslb_other_set, "GSLB answers from a rule's inactive pool set (active set empty)") \
  X(gslb_fail_open, "GSLB answers with every member, health aside (when_empty return-all)") \
  X(gslb_dropped, "GSLB queries left unanswered on purpose (when_empty drop)")         \
  X(udp_queries, "queries received over UDP")                                        \
  X(tcp_queries, "queries received over TCP")                                        \
  X(tcp_connections, "TCP connections accepted")                                     \
  X(tcp_rejected, "TCP connections refused at the connection limit")                 \
  X(tx_errors, "responses that could not be sent")                                   \
  X(no_snapshot, "queries dropped because no snapshot was loaded yet")

struct alignas(64) WorkerCounters {
#define GTM_DECLARE_COUNTER(name, help) uint64_t name = 0;
  GTM_WORKER_COUNTERS(GTM_DECLARE_COUNTER)
#undef GTM_DECLARE_COUNTER
};

}  // namespace gtm::engine
