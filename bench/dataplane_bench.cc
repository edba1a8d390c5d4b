// The DPDK lcore loop without a NIC: what one lcore costs per DNS packet, all of it (rx burst,
// classify, engine, reply rewrite and checksums, tx burst, RCU and timers), and whether a snapshot
// swap under load loses a packet.
//
// The port is a net_ring ethdev (rte_eth_from_rings) polled by the real lcore loop
// (dataplane/dpdk/lcore.cc) on lcore 1. The main lcore is the generator: it keeps the rx ring
// fed with pre-built query frames (Ethernet/IPv4/UDP/DNS) and recycles the answers the lcore
// transmits, rewriting each back into a query. What is measured is the lcore's own TSC: cycles of
// loop iterations that received packets (busy_cycles) over the packets they received
// (busy_packets). Mqps per lcore = TSC Hz / cycles per packet. With --stages the loop also times
// its passes per burst (rx, classify, engine, reply, tx; the rest is loop overhead).
//
// Modes:
//   closed loop (default): as many queries in flight as the ring holds; the lcore never waits.
//   --rate PPS --swaps N: open loop at a fixed rate, while another thread publishes N snapshots
//     through the same RCU slot the dataplane uses. Prints offered / missed (rx ring full) /
//     answered: a swap that stalled the lcore shows up as missed or unanswered queries.
#include <getopt.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_queries.h"
#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "dataplane/dpdk/runtime.h"
#include "dataplane/packet/checksum.h"
#include "dataplane/packet/classify.h"

namespace {

using namespace gtm;

constexpr uint16_t kRingSize = 1024;  // like a NIC rx ring
// Half a ring: neither ring can fill, so no frame is ever refused in the closed loop.
constexpr unsigned kInFlight = kRingSize / 2;
// rte_eth_from_rings names the ethdev "net_ring_" + the name given.
constexpr const char* kRingName = "gtmbench";
constexpr const char* kRingPort = "net_ring_gtmbench";
const uint8_t kPortMac[6] = {0x02, 0, 0, 0, 0, 0x01};
const uint8_t kClientMac[6] = {0x02, 0, 0, 0, 0, 0x02};
const uint8_t kService[4] = {198, 18, 0, 1};

struct Options {
  std::string config;
  std::string qname = "static.gtm.example";
  uint16_t qtype = 1;
  bool ecs = false;
  unsigned clients = 64;  // distinct source addresses (and ECS /24s)
  double seconds = 3;
  bool stages = false;
  uint64_t rate = 0;
  unsigned swaps = 0;
  std::string label = "bench";
  std::vector<std::string> eal;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "gtm-bench-dataplane: %s\n", msg.c_str());
  std::exit(1);
}

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// One query frame per client: source 198.18.(i/256).(i%256+10), port 10000+i, ECS 10.i.0/24.
std::vector<std::vector<uint8_t>> build_frames(const Options& o) {
  std::vector<std::vector<uint8_t>> frames;
  for (unsigned i = 0; i < o.clients; ++i) {
    const uint8_t net[3] = {10, static_cast<uint8_t>(i), 0};
    const std::vector<uint8_t> dns = bench::make_query(
        o.qname.c_str(), o.qtype, o.ecs, o.ecs ? net : nullptr, static_cast<uint16_t>(i));
    std::vector<uint8_t> f(14 + 20 + 8 + dns.size());
    std::memcpy(f.data(), kPortMac, 6);
    std::memcpy(f.data() + 6, kClientMac, 6);
    put16(&f[12], 0x0800);
    uint8_t* ip = &f[14];
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(20 + 8 + dns.size()));
    ip[8] = 64;
    ip[9] = 17;
    const uint8_t src[4] = {198, 18, static_cast<uint8_t>(1 + i / 250),
                            static_cast<uint8_t>(i % 250 + 2)};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, kService, 4);
    const uint16_t c = packet::csum_finish(packet::csum_add(0, ip, 20));
    std::memcpy(ip + 10, &c, 2);
    uint8_t* udp = ip + 20;
    put16(udp, static_cast<uint16_t>(10000 + i));
    put16(udp + 2, 53);
    put16(udp + 4, static_cast<uint16_t>(8 + dns.size()));
    std::memcpy(udp + 8, dns.data(), dns.size());
    frames.push_back(std::move(f));
  }
  return frames;
}

void fill(rte_mbuf* m, const std::vector<uint8_t>& frame) {
  std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), frame.data(), frame.size());
  m->data_len = static_cast<uint16_t>(frame.size());
  m->pkt_len = static_cast<uint32_t>(frame.size());
  m->ol_flags = 0;
}

// An answer as a client would check it: addressed back, valid IPv4 and UDP checksums, QR set.
bool answer_ok(rte_mbuf* m) {
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  if (m->data_len < 14 + 20 + 8 + 12 || std::memcmp(f, kClientMac, 6) != 0) return false;
  const uint8_t* ip = f + 14;
  if (packet::csum_fold(packet::csum_add(0, ip, 20)) != 0xFFFF) return false;
  const uint16_t udp_len = static_cast<uint16_t>(ip[24] << 8 | ip[25]);
  uint64_t sum = packet::csum_add(0, ip + 12, 8);
  sum = packet::csum_add_u16(packet::csum_add_u16(sum, 17), udp_len);
  if (packet::csum_fold(packet::csum_add(sum, ip + 20, udp_len)) != 0xFFFF) return false;
  return (ip[28 + 2] & 0x80) != 0;
}

snap::LoadedSnapshot* load_image(const std::vector<uint8_t>& image) {
  const int fd = memfd_create("gtm-bench-snapshot", MFD_CLOEXEC);
  if (fd < 0 || write(fd, image.data(), image.size()) != static_cast<ssize_t>(image.size())) {
    die("cannot write the snapshot to a memfd");
  }
  std::string error;
  snap::LoadedSnapshot* s = snap::LoadedSnapshot::from_fd(fd, &error);
  close(fd);
  if (s == nullptr) die("snapshot: " + error);
  return s;
}

dpdk::NicConfig bench_config() {
  dpdk::NicConfig cfg;
  cfg.path = "(benchmark)";
  cfg.main_lcore = 0;
  dpdk::PortConfig p;
  p.name = "bench0";
  p.device = kRingPort;
  p.attach_existing = true;
  p.has_mac = true;
  std::memcpy(p.mac, kPortMac, 6);
  p.rx_descriptors = kRingSize;
  p.tx_descriptors = kRingSize;
  p.queue_count = 1;
  p.exception.kind = dpdk::ExceptionKind::kNone;
  dpdk::ServiceAddress a;
  std::memcpy(a.addr, kService, 4);
  a.text = "198.18.0.1";
  p.service_addresses.push_back(a);
  // The generator's frames in flight come from the port's pool as well.
  p.mbufs = dpdk::min_mbufs(p, 1) + kInFlight + 1024;
  cfg.ports.push_back(p);
  dpdk::LcoreConfig lc;
  lc.lcore = 1;
  lc.queues.push_back({0, 0});
  cfg.lcores.push_back(lc);
  return cfg;
}

struct Snapshot {
  uint64_t tsc, busy_cycles, busy_packets, rx, responses;
  std::shared_ptr<dpdk::StageCycles> stages;  // a copy, when timing
};

template <typename T>
T load(const T& v) {
  return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

Snapshot take(const dpdk::LcoreContext& c, const dpdk::StageCycles* stages) {
  Snapshot s{};
  s.tsc = rte_rdtsc();
  s.busy_cycles = load(c.pc.busy_cycles);
  s.busy_packets = load(c.pc.busy_packets);
  s.rx = load(c.pc.rx_packets);
  s.responses = load(c.ws.counters.responses);
  if (stages != nullptr) {
    s.stages = std::make_shared<dpdk::StageCycles>();
    for (int k = 0; k < dpdk::StageCycles::kStageCount; ++k) {
      s.stages->sum[k] = load(stages->sum[k]);
      for (uint32_t b = 0; b < dpdk::StageCycles::kBuckets; ++b) {
        s.stages->hist[k][b] = load(stages->hist[k][b]);
      }
    }
    s.stages->packets = load(stages->packets);
    s.stages->bursts = load(stages->bursts);
  }
  return s;
}

// Median of a stage's per-burst cycles per packet between two copies.
double median(const dpdk::StageCycles& a, const dpdk::StageCycles& b, int stage) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < dpdk::StageCycles::kBuckets; ++i)
    total += b.hist[stage][i] - a.hist[stage][i];
  uint64_t seen = 0;
  for (uint32_t i = 0; i < dpdk::StageCycles::kBuckets; ++i) {
    seen += b.hist[stage][i] - a.hist[stage][i];
    if (seen * 2 >= total) return i + 0.5;  // bucket i holds [i, i + 1) cycles
  }
  return 0;
}

Options parse(int argc, char** argv) {
  Options o;
  static const option longopts[] = {{"config", required_argument, nullptr, 'c'},
                                    {"qname", required_argument, nullptr, 'q'},
                                    {"qtype", required_argument, nullptr, 't'},
                                    {"ecs", no_argument, nullptr, 'e'},
                                    {"clients", required_argument, nullptr, 'n'},
                                    {"seconds", required_argument, nullptr, 's'},
                                    {"stages", no_argument, nullptr, 'S'},
                                    {"rate", required_argument, nullptr, 'r'},
                                    {"swaps", required_argument, nullptr, 'w'},
                                    {"label", required_argument, nullptr, 'l'},
                                    {nullptr, 0, nullptr, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
    switch (ch) {
      case 'c':
        o.config = optarg;
        break;
      case 'q':
        o.qname = optarg;
        break;
      case 't':
        o.qtype = static_cast<uint16_t>(std::strcmp(optarg, "AAAA") == 0 ? 28 : 1);
        break;
      case 'e':
        o.ecs = true;
        break;
      case 'n':
        o.clients = static_cast<unsigned>(std::strtoul(optarg, nullptr, 10));
        break;
      case 's':
        o.seconds = std::strtod(optarg, nullptr);
        break;
      case 'S':
        o.stages = true;
        break;
      case 'r':
        o.rate = std::strtoull(optarg, nullptr, 10);
        break;
      case 'w':
        o.swaps = static_cast<unsigned>(std::strtoul(optarg, nullptr, 10));
        break;
      case 'l':
        o.label = optarg;
        break;
      default:
        die("usage: gtm-bench-dataplane --config YAML [--qname N] [--qtype A|AAAA] [--ecs] "
            "[--clients N] [--seconds S] [--stages] [--rate PPS --swaps N] [--label L] [-- EAL]");
    }
  }
  for (int i = optind; i < argc; ++i) o.eal.push_back(argv[i]);
  if (o.config.empty()) die("--config is required");
  if (o.clients == 0 || o.clients > 60000) die("--clients must be 1..60000");
  return o;
}

}  // namespace

static int run(const Options& o, const std::string& default_prefix) {
  control::LoadedConfig loaded;
  control::ConfigError cerr;
  std::vector<uint8_t> image;
  std::string error;
  if (!control::load_config_file(o.config, &loaded, &cerr)) die(cerr.to_string());
  if (!control::build_snapshot(loaded.model, &image, &error)) die(error);

  dpdk::Runtime rt(bench_config());
  std::vector<std::string> eal = o.eal;
  if (eal.empty()) {
    eal = {"--no-huge", "-m", "1024", "--no-shconf", "--file-prefix", default_prefix};
  }
  if (!rt.init_eal(eal, &error)) die(error);
  rte_ring* rx = rte_ring_create("gtmbench_rx", kRingSize, static_cast<int>(rte_socket_id()),
                                 RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx = rte_ring_create("gtmbench_tx", kRingSize, static_cast<int>(rte_socket_id()),
                                 RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (rx == nullptr || tx == nullptr ||
      rte_eth_from_rings(kRingName, &rx, 1, &tx, 1, rte_socket_id()) < 0) {
    die("cannot create the ring port");
  }
  std::unique_ptr<io::SnapshotSlot> slot = io::SnapshotSlot::create(1, &error);
  if (!slot) die(error);
  slot->publish(load_image(image));
  if (!rt.setup_ports(&error) || !rt.build_lcores(slot.get(), &error)) die(error);
  dpdk::LcoreContext& lc = *rt.lcores()[0];
  auto stages = std::make_unique<dpdk::StageCycles>();
  if (o.stages) lc.stages = stages.get();
  rte_mempool* pool = rt.ports()[0].pool;

  const std::vector<std::vector<uint8_t>> frames = build_frames(o);
  std::vector<rte_mbuf*> bufs(o.rate == 0 ? kInFlight : 0);
  if (!bufs.empty() && rte_pktmbuf_alloc_bulk(pool, bufs.data(), kInFlight) != 0) {
    die("mbuf pool too small");
  }
  for (size_t i = 0; i < bufs.size(); ++i) fill(bufs[i], frames[i % frames.size()]);
  if (!bufs.empty() && rte_ring_enqueue_bulk(rx, reinterpret_cast<void**>(bufs.data()), kInFlight,
                                             nullptr) != kInFlight) {
    die("cannot fill the rx ring");
  }
  if (!rt.launch(&error)) die(error);

  const uint64_t hz = rte_get_tsc_hz();
  std::atomic<bool> swapping{o.swaps != 0};
  unsigned published = 0;
  std::thread publisher;
  const uint64_t run_cycles = static_cast<uint64_t>(o.seconds * static_cast<double>(hz));
  if (o.swaps != 0) {
    publisher = std::thread([&] {
      const auto gap =
          std::chrono::microseconds(static_cast<int64_t>(o.seconds * 1e6 / (o.swaps + 1)));
      std::this_thread::sleep_for(gap);
      for (unsigned i = 0; i < o.swaps; ++i) {
        slot->publish(load_image(image));
        ++published;
        std::this_thread::sleep_for(gap);
      }
      swapping = false;
    });
  }

  // skipped: frames the generator owed after its own core was taken from it (not the lcore's
  // doing), never offered.
  uint64_t offered = 0, missed = 0, skipped = 0, returned = 0, bad = 0, checked = 0;
  rte_mbuf* burst[dpdk::kBurst];
  size_t next_frame = 0;
  auto recycle = [&](bool resend) {
    const unsigned n =
        rte_ring_dequeue_burst(tx, reinterpret_cast<void**>(burst), dpdk::kBurst, nullptr);
    for (unsigned i = 0; i < n; ++i) {
      // Every 64th answer is checked in full; checking all would make the generator the bottleneck.
      if ((returned + i) % 64 == 0) {
        ++checked;
        bad += !answer_ok(burst[i]);
      }
      if (resend) fill(burst[i], frames[next_frame++ % frames.size()]);
    }
    returned += n;
    if (n == 0) return;
    if (resend) {
      const unsigned sent = rte_ring_enqueue_burst(rx, reinterpret_cast<void**>(burst), n, nullptr);
      offered += sent;
      if (sent < n) rte_pktmbuf_free_bulk(burst + sent, n - sent);
    } else {
      rte_pktmbuf_free_bulk(burst, n);
    }
  };

  // Closed loop: warm up, then measure. The lcore's busy counters are also sampled every
  // millisecond: the median of those windows is what an iteration costs when nothing else takes
  // the core (a window in which the lcore's thread was preempted is an outlier there, while it
  // inflates the mean over the whole run).
  const uint64_t warm = hz / 2;
  const uint64_t window = hz / 1000;
  std::vector<double> windows;
  uint64_t win_tsc = 0, win_cycles = 0, win_packets = 0;
  Snapshot t0{};
  bool measuring = false;
  const uint64_t start = rte_rdtsc();
  if (o.rate == 0) {
    for (;;) {
      recycle(true);
      const uint64_t now = rte_rdtsc();
      if (!measuring) {
        if (now - start >= warm) {
          t0 = take(lc, o.stages ? stages.get() : nullptr);
          measuring = true;
          win_tsc = now;
          win_cycles = t0.busy_cycles;
          win_packets = t0.busy_packets;
        }
      } else if (now - t0.tsc >= run_cycles) {
        break;
      } else if (now - win_tsc >= window) {
        const uint64_t c = load(lc.pc.busy_cycles);
        const uint64_t p = load(lc.pc.busy_packets);
        if (p > win_packets) {
          windows.push_back(static_cast<double>(c - win_cycles) /
                            static_cast<double>(p - win_packets));
        }
        win_tsc = now;
        win_cycles = c;
        win_packets = p;
      }
    }
  } else {
    // Open loop: frames leave at `rate`; a full rx ring counts as missed, as a NIC's imissed.
    // After a pause of the generator itself (the shared core), it does not catch up by more than
    // a ring's worth, so only the lcore's stalls fill the ring.
    t0 = take(lc, o.stages ? stages.get() : nullptr);
    measuring = true;
    const double per_cycle = static_cast<double>(o.rate) / static_cast<double>(hz);
    while (rte_rdtsc() - t0.tsc < run_cycles || swapping) {
      recycle(false);
      const uint64_t due =
          static_cast<uint64_t>(static_cast<double>(rte_rdtsc() - t0.tsc) * per_cycle);
      uint64_t owe = due - offered - missed - skipped;
      if (owe > kRingSize) {
        skipped += owe - kRingSize;
        owe = kRingSize;
      }
      while (owe > 0) {
        const unsigned n = static_cast<unsigned>(std::min<uint64_t>(owe, dpdk::kBurst));
        if (rte_pktmbuf_alloc_bulk(pool, burst, n) != 0) break;
        for (unsigned i = 0; i < n; ++i) fill(burst[i], frames[next_frame++ % frames.size()]);
        const unsigned sent =
            rte_ring_enqueue_burst(rx, reinterpret_cast<void**>(burst), n, nullptr);
        offered += sent;
        missed += n - sent;
        if (sent < n) rte_pktmbuf_free_bulk(burst + sent, n - sent);
        owe -= n;
      }
    }
    // Let the lcore answer what is queued.
    const uint64_t drain_until = rte_rdtsc() + hz / 10;
    while (rte_rdtsc() < drain_until) recycle(false);
  }
  const Snapshot t1 = take(lc, o.stages ? stages.get() : nullptr);
  if (publisher.joinable()) publisher.join();
  rt.stop();
  // In-flight frames (closed loop) are still in the rings; drain them before the pool goes.
  void* left = nullptr;
  while (rte_ring_dequeue(rx, &left) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(left));
  while (rte_ring_dequeue(tx, &left) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(left));

  const double pkts = static_cast<double>(t1.busy_packets - t0.busy_packets);
  const double cpp = static_cast<double>(t1.busy_cycles - t0.busy_cycles) / pkts;
  const double wall_s = static_cast<double>(t1.tsc - t0.tsc) / static_cast<double>(hz);
  const uint64_t answered = t1.responses - t0.responses;
  const auto& pc = lc.pc;
  uint64_t drops = 0;
  for (uint64_t d : pc.dropped) drops += d;
  const bool all_answered = lc.ws.counters.responses == pc.rx_dns && drops == 0 &&
                            lc.ws.counters.malformed_dropped == 0 && bad == 0 && checked > 0;
  double median_cpp = cpp;
  if (!windows.empty()) {
    std::sort(windows.begin(), windows.end());
    median_cpp = windows[windows.size() / 2];
  }
  std::printf(
      "%s: %.1f cycles/packet (median of %zu 1-ms windows; mean %.1f; TSC %.2f GHz) -> "
      "%.2f Mqps per lcore; wall %.2f Mqps; %" PRIu64 " answers checked, %" PRIu64 " bad%s\n",
      o.label.c_str(), median_cpp, windows.size(), cpp, static_cast<double>(hz) / 1e9,
      static_cast<double>(hz) / median_cpp / 1e6, static_cast<double>(t1.rx - t0.rx) / wall_s / 1e6,
      checked, bad, all_answered ? "" : "  ** NOT ALL ANSWERED **");
  // The figure bench/dataplane-bench.sh collects.
  std::printf("%s mqps_per_lcore=%.2f\n", o.label.c_str(),
              static_cast<double>(hz) / median_cpp / 1e6);
  if (o.stages) {
    // Medians per stage over bursts, in cycles per packet; "loop" is what a whole iteration
    // costs beyond its stages. Means are printed too: on a quiet machine the two agree.
    const dpdk::StageCycles& a = *t0.stages;
    const dpdk::StageCycles& b = *t1.stages;
    using S = dpdk::StageCycles;
    const char* names[] = {"rx", "classify", "engine", "reply", "tx"};
    double med_sum = 0;
    double mean_sum = 0;
    const double n = static_cast<double>(b.packets - a.packets);
    std::string med_text, mean_text;
    char buf[64];
    for (int k = S::kRx; k <= S::kTx; ++k) {
      const double med = median(a, b, k);
      const double mean = static_cast<double>(b.sum[k] - a.sum[k]) / n;
      med_sum += med;
      mean_sum += mean;
      std::snprintf(buf, sizeof buf, " %s %.1f", names[k], med);
      med_text += buf;
      std::snprintf(buf, sizeof buf, " %s %.1f", names[k], mean);
      mean_text += buf;
    }
    const double iter_med = median(a, b, S::kIteration);
    const double iter_mean = static_cast<double>(b.sum[S::kIteration] - a.sum[S::kIteration]) / n;
    const double engine_med = median(a, b, S::kEngine);
    std::printf(
        "%s stages, median cycles/packet:%s loop %.1f | iteration %.1f, of which outside "
        "the engine %.1f; %.1f packets/burst\n",
        o.label.c_str(), med_text.c_str(), iter_med - med_sum, iter_med, iter_med - engine_med,
        static_cast<double>(b.packets - a.packets) / static_cast<double>(b.bursts - a.bursts));
    std::printf("%s stages, mean cycles/packet:%s loop %.1f | iteration %.1f\n", o.label.c_str(),
                mean_text.c_str(), iter_mean - mean_sum, iter_mean);
  }
  if (o.rate != 0) {
    std::printf("%s swap: rate %" PRIu64 " qps, %u snapshots published, offered %" PRIu64
                ", missed (rx ring full) %" PRIu64 ", answered %" PRIu64 ", lost %" PRIu64
                " (generator descheduled: %" PRIu64 " not offered)\n",
                o.label.c_str(), o.rate, published, offered, missed, answered,
                offered - std::min(offered, answered), skipped);
  }
  return all_answered ? 0 : 1;
}

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::string prefix = "gtmbench" + std::to_string(getpid());
  const int status = run(o, prefix);
  // The EAL leaves its (empty) runtime directory behind; ours is ours to remove.
  if (o.eal.empty()) {
    std::error_code ec;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec);
  }
  return status;
}
