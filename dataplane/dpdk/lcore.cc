#include "dataplane/dpdk/lcore.h"

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstring>

#include "dataplane/io/log.h"
#include "dataplane/packet/reply.h"

namespace gtm::dpdk {

namespace {

using packet::DropReason;
using packet::Verdict;

// Prefetching four frames ahead covers the latency of a miss to memory at the rate the classify
// pass runs (l3fwd uses 3-4).
constexpr uint16_t kPrefetchAhead = 4;
constexpr uint32_t kIdlePollsBeforeSleep = 256;

inline uint8_t* frame_of(rte_mbuf* m) {
  return rte_pktmbuf_mtod(m, uint8_t*);
}

inline void count_drop(LcoreContext& c, DropReason reason) {
  ++c.pc.dropped[static_cast<size_t>(reason)];
}

template <bool kTiming>
void flush_tx(LcoreContext& c, LcoreQueue& q) {
  if (q.tx_count == 0) return;
  const uint64_t t0 = kTiming ? rte_rdtsc() : 0;
  const uint16_t sent = rte_eth_tx_burst(q.port_id, q.queue_id, q.tx, q.tx_count);
  if constexpr (kTiming) c.stages->add(StageCycles::kTx, rte_rdtsc() - t0, q.tx_count);
  c.pc.tx_packets += sent;
  // A full transmit ring means the link is saturated: waiting would stall the rx side too.
  if (unlikely(sent < q.tx_count)) {
    c.pc.tx_failed += q.tx_count - sent;
    rte_pktmbuf_free_bulk(q.tx + sent, q.tx_count - sent);
  }
  q.tx_count = 0;
}

void flush_exception(LcoreContext& c, LcoreQueue& q) {
  const uint16_t sent =
      rte_eth_tx_burst(q.exception_port_id, q.queue_id, q.exception, q.exception_count);
  c.pc.to_exception += sent;
  if (unlikely(sent < q.exception_count)) {
    c.pc.dropped[static_cast<size_t>(DropReason::exception_full)] += q.exception_count - sent;
    rte_pktmbuf_free_bulk(q.exception + sent, q.exception_count - sent);
  }
  q.exception_count = 0;
}

// What the kernel sent on the exception interface (ARP and ND answers, ICMP, TCP) goes out of the
// port, tagged with the port's VLANs.
template <bool kTiming>
void poll_exception(LcoreContext& c, LcoreQueue& q) {
  if (q.exception_port_id == kNoPort) return;
  rte_mbuf* pkts[kBurst];
  const uint16_t n = rte_eth_rx_burst(q.exception_port_id, q.queue_id, pkts, kBurst);
  if (n == 0) return;
  const packet::PortFilter& f = q.port->filter;
  const uint16_t tag_len = static_cast<uint16_t>(f.vlan_count * packet::kVlanTagLen);
  if (q.tx_count + n > kTxBufferSize) flush_tx<kTiming>(c, q);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (tag_len != 0) {
      // The pool's headroom always fits two tags; a chained (jumbo) frame would not be tagged.
      if (rte_pktmbuf_headroom(m) < tag_len || m->nb_segs != 1) {
        count_drop(c, DropReason::multi_segment);
        rte_pktmbuf_free(m);
        continue;
      }
      packet::insert_vlan_tags(reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, tag_len)), f);
    }
    m->ol_flags = 0;
    q.tx[q.tx_count++] = m;
    ++c.pc.from_exception;
  }
  flush_tx<kTiming>(c, q);
}

template <bool kTiming>
void drain(LcoreContext& c) {
  for (uint16_t k = 0; k < c.queue_count; ++k) {
    LcoreQueue& q = c.queues[k];
    flush_tx<kTiming>(c, q);
    poll_exception<kTiming>(c, q);
  }
}

// A token per frame handed to the kernel, refilled from the time since the bucket last ran dry.
// The bucket holds at most 10 ms of the rate, so a quiet minute does not buy a long flood.
inline uint64_t exception_bucket_size(const LcoreContext& c) {
  return std::max<uint64_t>(kBurst, c.exception_rate / 100);
}

inline bool take_exception_token(LcoreContext& c, uint64_t now) {
  if (c.exception_tokens == 0) {
    const uint64_t elapsed = std::min<uint64_t>(now - c.exception_refill_tsc, c.tsc_hz);
    const uint64_t fresh = static_cast<uint64_t>(static_cast<unsigned __int128>(elapsed) *
                                                 c.exception_rate / c.tsc_hz);
    if (fresh == 0) return false;
    c.exception_tokens = std::min<uint64_t>(fresh, exception_bucket_size(c));
    c.exception_refill_tsc = now;
  }
  --c.exception_tokens;
  return true;
}

// One rx burst of one queue, in three passes over the burst (VPP-style vectors): classify, answer,
// rewrite and enqueue. Each pass is a tight loop over warm cache lines, and the benchmark can time
// the passes with four TSC reads per burst.
template <bool kTiming>
void process_burst(LcoreContext& c, LcoreQueue& q, const snap::SnapshotView* snap, rte_mbuf** pkts,
                   uint16_t n, uint64_t now) {
  const PortRuntime& p = *q.port;
  BurstScratch& s = c.scratch;
  uint64_t t0 = kTiming ? rte_rdtsc() : 0;

  // Two levels: the mbuf headers of the whole burst first (finding a frame's address reads its
  // header), then each frame kPrefetchAhead ahead. PMDs that write the headers in rx_burst leave
  // them hot; ring-fed and some virtual PMDs do not.
  for (uint16_t i = 0; i < n; ++i) rte_prefetch0(pkts[i]);
  for (uint16_t i = 0; i < kPrefetchAhead && i < n; ++i) {
    s.frame[i] = frame_of(pkts[i]);
    rte_prefetch0(s.frame[i]);
  }
  uint16_t dns = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) {
      s.frame[i + kPrefetchAhead] = frame_of(pkts[i + kPrefetchAhead]);
      rte_prefetch0(s.frame[i + kPrefetchAhead]);
    }
    const rte_mbuf* m = pkts[i];
    if (unlikely(m->nb_segs != 1)) {
      s.verdict[i] = Verdict::kDrop;
      s.info[i].reason = DropReason::multi_segment;
      continue;
    }
    const uint64_t ol = m->ol_flags;
    const uint64_t ip_cs = ol & RTE_MBUF_F_RX_IP_CKSUM_MASK;
    // GOOD: checked; NONE: the header is sound even if the field is not
    // (RTE_MBUF_F_RX_IP_CKSUM_NONE).
    const bool verify =
        ip_cs != RTE_MBUF_F_RX_IP_CKSUM_GOOD && ip_cs != RTE_MBUF_F_RX_IP_CKSUM_NONE;
    Verdict v = packet::classify(s.frame[i], m->data_len, p.filter, verify, &s.info[i]);
    if (v == Verdict::kDns) {
      if (unlikely((ol & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD)) {
        v = Verdict::kDrop;
        s.info[i].reason = DropReason::bad_udp;
      } else {
        ++dns;
      }
    }
    s.verdict[i] = v;
  }
  c.pc.rx_dns += dns;
  uint64_t t1 = 0;
  if constexpr (kTiming) {
    t1 = rte_rdtsc();
    c.stages->add(StageCycles::kClassify, t1 - t0, n);
  }

  for (uint16_t i = 0; i < n; ++i) {
    if (s.verdict[i] != Verdict::kDns) continue;
    const rte_mbuf* m = pkts[i];
    uint8_t* f = s.frame[i];
    const packet::FrameInfo& fi = s.info[i];
    engine::ClientAddr client;
    client.family = fi.ip_version;
    // The source address, 4 or 16 octets; 16 are always inside the frame (IPv4: up to the ports).
    std::memcpy(client.addr, f + fi.l3 + (fi.ip_version == 4 ? 12 : 8), 16);
    uint8_t* msg = f + fi.dns;
    const size_t cap = static_cast<size_t>(m->buf_len) - m->data_off - fi.dns;
    s.answer_len[i] = static_cast<uint16_t>(engine::answer_query(
        snap, msg, fi.dns_len, msg, cap, client, engine::Transport::kUdp, c.ws));
  }
  uint64_t t2 = 0;
  if constexpr (kTiming) {
    t2 = rte_rdtsc();
    c.stages->add(StageCycles::kEngine, t2 - t1, n);
  }

  rte_mbuf* drops[kBurst];
  uint16_t drop_count = 0;
  // Kept in a register: stores through the mbufs could alias q.tx_count for the compiler.
  uint16_t tx_count = q.tx_count;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const packet::FrameInfo& fi = s.info[i];
    if (likely(s.verdict[i] == Verdict::kDns)) {
      if (unlikely(s.answer_len[i] == 0)) {  // the engine counted why
        drops[drop_count++] = m;
        continue;
      }
      const uint32_t len =
          packet::make_reply(s.frame[i], fi, s.answer_len[i], p.filter.mac, p.tx_checksums);
      m->data_len = static_cast<uint16_t>(len);
      m->pkt_len = len;
      m->ol_flags = fi.ip_version == 4 ? p.tx_flags_v4 : p.tx_flags_v6;
      // l2_len and l3_len (what checksum offload needs) in one store, not two bit-field updates.
      m->tx_offload = rte_mbuf_tx_offload(fi.l3, fi.l4 - fi.l3, 0, 0, 0, 0, 0);
      q.tx[tx_count++] = m;
    } else if (s.verdict[i] == Verdict::kException) {
      if (unlikely(q.exception_port_id == kNoPort)) {
        count_drop(c, DropReason::exception_full);
        drops[drop_count++] = m;
      } else if (unlikely(!take_exception_token(c, now))) {
        count_drop(c, DropReason::exception_rate);
        drops[drop_count++] = m;
      } else {
        const uint32_t off = packet::strip_vlan_tags(s.frame[i], fi.vlan_count);
        if (off != 0) rte_pktmbuf_adj(m, static_cast<uint16_t>(off));
        m->ol_flags = 0;
        q.exception[q.exception_count++] = m;
      }
    } else {
      count_drop(c, fi.reason);
      drops[drop_count++] = m;
    }
  }
  q.tx_count = tx_count;
  if (drop_count != 0) rte_pktmbuf_free_bulk(drops, drop_count);
  if (unlikely(q.exception_count != 0)) flush_exception(c, q);
  if constexpr (kTiming) {
    c.stages->add(StageCycles::kReply, rte_rdtsc() - t2, n);
    c.stages->packets += n;
    ++c.stages->bursts;
  }
}

// The loop. Measured with bench/dataplane-bench.sh (loopback harness, full bursts of 32) on the
// shared 2-vCPU development VM, median TSC cycles per packet (2.60 GHz, the host's fast phase;
// its slow phases cost ~1.45x), bench/RESULTS.md, 2026-12-02 evening:
//   rx burst 1.5 | classify 23.5-25.5 | engine 67.5 (static A), 78.5 (weighted GSLB), 118.5
//   (topology+ECS), ~152 (full-scale geo database) | reply + enqueue 34.5-39.5 (software
//   checksums) | tx burst 14.5-19.5 (of which 15-17 the harness's refill) | RCU quiescent point,
//   timer, loop 4-6.
// Instructions per packet outside the engine (callgrind): 433 (software checksums), 339 (offload).
template <bool kTiming>
void run(LcoreContext& c) {
  io::SnapshotSlot& slot = *c.slot;
  slot.online(c.reader_id);
  uint64_t prev = rte_rdtsc();
  uint64_t last_drain = prev;
  c.exception_refill_tsc = prev;
  c.exception_tokens = exception_bucket_size(c);
  uint32_t idle_polls = 0;
  while (likely(!c.stop->load(std::memory_order_relaxed))) {
    // Valid until the quiescent point below; a publish frees the old image only after every
    // online lcore has passed it.
    const snap::SnapshotView* snap = slot.acquire();
    uint32_t got = 0;
    for (uint16_t k = 0; k < c.queue_count; ++k) {
      LcoreQueue& q = c.queues[k];
      rte_mbuf* pkts[kBurst];
      const uint64_t t0 = kTiming ? rte_rdtsc() : 0;
      const uint16_t n = rte_eth_rx_burst(q.port_id, q.queue_id, pkts, kBurst);
      if (n == 0) continue;
      if constexpr (kTiming) c.stages->add(StageCycles::kRx, rte_rdtsc() - t0, n);
      got += n;
      process_burst<kTiming>(c, q, snap, pkts, n, prev);
      if (q.tx_count >= kBurst) flush_tx<kTiming>(c, q);
    }
    slot.quiescent(c.reader_id);
    const uint64_t now = rte_rdtsc();
    if constexpr (kTiming) {
      if (got != 0) c.stages->add(StageCycles::kIteration, now - prev, got);
    }
    if (got != 0) {
      c.pc.rx_packets += got;
      c.pc.busy_cycles += now - prev;
      c.pc.busy_packets += got;
      idle_polls = 0;
    }
    prev = now;
    if (unlikely(now - last_drain >= c.drain_cycles)) {
      last_drain = now;
      drain<kTiming>(c);
    }
    if (unlikely(c.idle_sleep_us != 0 && got == 0) && ++idle_polls >= kIdlePollsBeforeSleep) {
      // Nothing may wait for the sleep: answers out first, then offline (holding no snapshot).
      drain<kTiming>(c);
      slot.offline(c.reader_id);
      rte_delay_us_sleep(c.idle_sleep_us);
      slot.online(c.reader_id);
      idle_polls = 0;
      prev = rte_rdtsc();
    }
  }
  drain<kTiming>(c);
  slot.offline(c.reader_id);
}

}  // namespace

int lcore_main(void* arg) {
  LcoreContext& c = *static_cast<LcoreContext*>(arg);
  if (!c.slot->register_reader(c.reader_id)) {
    io::log_line("lcore %u: cannot register as an RCU reader", c.lcore_id);
    return -1;
  }
  if (c.stages != nullptr) {
    run<true>(c);
  } else {
    run<false>(c);
  }
  c.slot->unregister_reader(c.reader_id);
  return 0;
}

}  // namespace gtm::dpdk
