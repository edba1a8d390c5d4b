// Per-packet cost of the DPDK path's own code, without DPDK and without the NIC: classify() and
// make_reply() on a frame in L1, and the whole in-place path (classify, answer_query, make_reply)
// as the lcore runs it on one frame. Items per second are packets per second; time per iteration
// is ns per packet. Noise-free counts: BENCH_BIN=build/gtm-bench-packet bench/instructions.sh.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_queries.h"
#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "dataplane/engine/answer.h"
#include "dataplane/packet/checksum.h"
#include "dataplane/packet/classify.h"
#include "dataplane/packet/reply.h"

namespace {

using namespace gtm;

const uint8_t kPortMac[6] = {0x02, 0, 0, 0, 0, 0x01};

struct Fixture {
  std::vector<uint8_t> image;
  snap::SnapshotView view;
  packet::PortFilter port;
  std::vector<uint8_t> frame;  // Ethernet/IPv4/UDP query for static.gtm.example A

  Fixture() {
    control::LoadedConfig cfg;
    control::ConfigError err;
    std::string error;
    const std::string path = std::string(GTM_SOURCE_DIR) + "/bench/configs/dataplane.yaml";
    if (!control::load_config_file(path, &cfg, &err) ||
        !control::build_snapshot(cfg.model, &image, &error) ||
        !view.validate(image.data(), image.size(), &error)) {
      abort();
    }
    std::memcpy(port.mac, kPortMac, 6);
    const uint8_t service[4] = {198, 18, 0, 1};
    port.addrs.add_v4(service);
    frame = build("static.gtm.example");
  }

  std::vector<uint8_t> build(const char* qname) const {
    const std::vector<uint8_t> dns = bench::make_query(qname, 1, false);
    std::vector<uint8_t> f(14 + 20 + 8 + dns.size());
    std::memcpy(f.data(), kPortMac, 6);
    const uint8_t client_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
    std::memcpy(f.data() + 6, client_mac, 6);
    f[12] = 0x08;
    uint8_t* ip = &f[14];
    ip[0] = 0x45;
    ip[2] = static_cast<uint8_t>((20 + 8 + dns.size()) >> 8);
    ip[3] = static_cast<uint8_t>(20 + 8 + dns.size());
    ip[8] = 64;
    ip[9] = 17;
    const uint8_t addrs[8] = {198, 18, 0, 10, 198, 18, 0, 1};
    std::memcpy(ip + 12, addrs, 8);
    const uint16_t c = packet::csum_finish(packet::csum_add(0, ip, 20));
    std::memcpy(ip + 10, &c, 2);
    uint8_t* udp = ip + 20;
    udp[0] = 0x9c;
    udp[1] = 0x40;
    udp[3] = 53;
    udp[4] = static_cast<uint8_t>((8 + dns.size()) >> 8);
    udp[5] = static_cast<uint8_t>(8 + dns.size());
    std::memcpy(udp + 8, dns.data(), dns.size());
    return f;
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

void BM_classify(benchmark::State& state) {
  const Fixture& fx = fixture();
  packet::FrameInfo info;
  for (auto _ : state) {
    const packet::Verdict v = packet::classify(
        fx.frame.data(), static_cast<uint32_t>(fx.frame.size()), fx.port, true, &info);
    benchmark::DoNotOptimize(v);
    benchmark::DoNotOptimize(info);
  }
  state.SetItemsProcessed(state.iterations());
}

// make_reply on an answer the engine wrote once; the header fields it swaps are restored from a
// copy each time (a 42-octet memcpy, included).
void BM_make_reply(benchmark::State& state) {
  const Fixture& fx = fixture();
  alignas(64) uint8_t buf[2048];
  std::memcpy(buf, fx.frame.data(), fx.frame.size());
  packet::FrameInfo info;
  if (packet::classify(buf, static_cast<uint32_t>(fx.frame.size()), fx.port, true, &info) !=
      packet::Verdict::kDns) {
    abort();
  }
  engine::WorkerState ws;
  const size_t n = engine::answer_query(&fx.view, buf + info.dns, info.dns_len, buf + info.dns,
                                        sizeof(buf) - info.dns, {}, engine::Transport::kUdp, ws);
  if (n == 0) abort();
  uint8_t headers[64];
  std::memcpy(headers, buf, info.dns);
  for (auto _ : state) {
    std::memcpy(buf, headers, info.dns);
    const uint32_t len = packet::make_reply(buf, info, static_cast<uint32_t>(n), kPortMac, {});
    benchmark::DoNotOptimize(len);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

// What one lcore does per packet minus DPDK's rx/tx: restore the query frame (as a NIC would
// deliver it), classify, answer in place, make the reply.
void run_packet_path(benchmark::State& state, const char* qname) {
  const Fixture& fx = fixture();
  const std::vector<uint8_t> frame = fx.build(qname);
  alignas(64) uint8_t buf[2048];
  engine::WorkerState ws;
  size_t total = 0;
  for (auto _ : state) {
    std::memcpy(buf, frame.data(), frame.size());
    packet::FrameInfo info;
    if (packet::classify(buf, static_cast<uint32_t>(frame.size()), fx.port, true, &info) ==
        packet::Verdict::kDns) {
      engine::ClientAddr client;
      client.family = 4;
      std::memcpy(client.addr, buf + info.l3 + 12, 16);
      const size_t n =
          engine::answer_query(&fx.view, buf + info.dns, info.dns_len, buf + info.dns,
                               sizeof(buf) - info.dns, client, engine::Transport::kUdp, ws);
      if (n != 0) total += packet::make_reply(buf, info, static_cast<uint32_t>(n), kPortMac, {});
    }
    benchmark::ClobberMemory();
  }
  if (total == 0 || ws.counters.responses != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("not answered");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_packet_path_static_a(benchmark::State& s) {
  run_packet_path(s, "static.gtm.example");
}
void BM_packet_path_gslb_weighted(benchmark::State& s) {
  run_packet_path(s, "www.gtm.example");
}

BENCHMARK(BM_classify);
BENCHMARK(BM_make_reply);
BENCHMARK(BM_packet_path_static_a);
BENCHMARK(BM_packet_path_gslb_weighted);

}  // namespace

BENCHMARK_MAIN();
