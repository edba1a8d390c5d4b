// The DPDK lcore loop without a NIC: what one lcore costs per DNS packet, all of it (rx burst,
// classify, engine, reply rewrite and checksums, tx burst, RCU and timers), and whether a snapshot
// swap under load loses a packet.
//
// The real lcore loop (dataplane/dpdk/lcore.cc, the code `gtm-dataplane --io dpdk` runs) polls one
// port on lcore 1. Three harnesses feed it:
//
//   loopback (default; one busy core): a net_ring ethdev whose transmit ring is its receive ring,
//     holding 512 frames. A tx callback, on the lcore, turns each answer back into a pre-built
//     query (a copy of the frame over it) before the ring takes it, and checks every 64th answer.
//     The refill costs the lcore a frame copy a NIC would not; --stages times it apart.
//   pcap (one busy core): a net_pcap port with infinite_rx=1 replays the query frames from
//     memory, and its transmit side frees the answers (no tx file). rx_burst then costs an mbuf
//     allocation, a ring round trip and a frame copy per packet, tx_burst one mbuf free each.
//   ring (two busy cores): a net_ring ethdev whose rx ring a generator on the main lcore keeps
//     full, recycling each answer into a query (and checking every 64th). Frames then arrive from
//     another core's cache, as from a NIC, but on a 2-vCPU VM the generator's core competes with
//     the lcore's on the host (bench/RESULTS.md: each runs at about half speed when both are busy).
//     Also the open-loop snapshot-swap test (--rate PPS --swaps N): frames leave at a fixed rate
//     while another thread publishes N snapshots through the same RCU slot the dataplane uses;
//     a swap that stalled the lcore shows up as missed (rx ring full) or unanswered queries.
// With one busy core the main lcore only sleeps and samples counters: nothing else of ours runs
// while the lcore is measured.
//
// What is measured is the lcore's own TSC: cycles of loop iterations that received packets
// (busy_cycles) over the packets they received (busy_packets), sampled every millisecond; the
// figure is the median of those 1-ms windows (a window in which the lcore's vCPU was taken away is
// an outlier there, while it inflates the mean). Mqps per lcore = TSC Hz / cycles per packet.
// With --stages the loop also times its passes per burst (rx, classify, engine, reply, tx; the
// rest is loop overhead). --checksums offload makes the answers as for a NIC that computes the
// IPv4 and UDP checksums (what nic_configs selects on ixgbe, i40e, ice, mlx5): neither virtual
// port can offload, so the checker completes and verifies what the NIC would be handed.
#include <getopt.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_queries.h"
#include "bench/db_networks.h"
#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "control/geo/geo_job.h"
#include "dataplane/dns/wire.h"
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
constexpr unsigned kLcore = 1;
const uint8_t kPortMac[6] = {0x02, 0, 0, 0, 0, 0x01};
const uint8_t kClientMac[6] = {0x02, 0, 0, 0, 0, 0x02};
const uint8_t kService[4] = {198, 18, 0, 1};

enum class Harness { kLoopback, kPcap, kRing };

struct Options {
  std::string config;
  std::string qname = "static.gtm.example";
  uint16_t qtype = 1;
  std::string ecs_file;
  std::string ecs_db;       // draw the ECS subnets from this MaxMind database's networks instead
  size_t ecs_count = 1024;  // how many (bench/db_networks.h)
  unsigned clients = 64;    // distinct source addresses and ports
  double seconds = 3;
  bool stages = false;
  bool offload = false;
  Harness harness = Harness::kLoopback;
  uint64_t rate = 0;
  unsigned swaps = 0;
  std::string label = "bench";
  std::vector<std::string> eal;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "gtm-bench-dataplane: %s\n", msg.c_str());
  std::exit(1);
}

// One subnet per line ("192.0.2.0/24", "2001:db8::/56"), `#` comments.
std::vector<bench::EcsSubnet> read_subnets(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read " + path);
  std::vector<bench::EcsSubnet> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string word;
    if (!(words >> word)) continue;
    bench::EcsSubnet s;
    if (!bench::parse_subnet(word, &s)) {
      die(path + ":" + std::to_string(n) + ": not a subnet: " + word);
    }
    out.push_back(s);
  }
  if (out.empty()) die(path + ": no subnets");
  return out;
}

// One query frame per client: source 198.18.(1 + i/250).(i%250 + 2), port 10000+i, and with
// subnets, ECS subnets[i % N].
std::vector<std::vector<uint8_t>> build_frames(const Options& o,
                                               const std::vector<bench::EcsSubnet>& subnets) {
  std::vector<std::vector<uint8_t>> frames;
  for (unsigned i = 0; i < o.clients; ++i) {
    const bench::EcsSubnet* ecs = subnets.empty() ? nullptr : &subnets[i % subnets.size()];
    const std::vector<uint8_t> dns = bench::make_query_subnet(
        o.qname.c_str(), o.qtype, ecs != nullptr, ecs, static_cast<uint16_t>(i));
    std::vector<uint8_t> f(14 + 20 + 8 + dns.size());
    std::memcpy(f.data(), kPortMac, 6);
    std::memcpy(f.data() + 6, kClientMac, 6);
    dns::store16(&f[12], 0x0800);
    uint8_t* ip = &f[14];
    ip[0] = 0x45;
    dns::store16(ip + 2, static_cast<uint16_t>(20 + 8 + dns.size()));
    ip[8] = 64;
    ip[9] = 17;
    const uint8_t src[4] = {198, 18, static_cast<uint8_t>(1 + i / 250),
                            static_cast<uint8_t>(i % 250 + 2)};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, kService, 4);
    const uint16_t c = packet::csum_finish(packet::csum_add(0, ip, 20));
    std::memcpy(ip + 10, &c, 2);
    uint8_t* udp = ip + 20;
    dns::store16(udp, static_cast<uint16_t>(10000 + i));
    dns::store16(udp + 2, 53);
    dns::store16(udp + 4, static_cast<uint16_t>(8 + dns.size()));
    // A client's UDP checksum; the lcore does not verify it (a NIC may), but it is right.
    uint64_t sum = packet::csum_add(0, ip + 12, 8);
    sum =
        packet::csum_add_u16(packet::csum_add_u16(sum, 17), static_cast<uint16_t>(8 + dns.size()));
    std::memcpy(udp + 8, dns.data(), dns.size());
    const uint16_t uc = packet::udp_csum_finish(packet::csum_add(sum, udp, 8 + dns.size()));
    std::memcpy(udp + 6, &uc, 2);
    frames.push_back(std::move(f));
  }
  return frames;
}

// The frames as a capture file for net_pcap's rx_pcap (classic pcap, Ethernet).
std::string write_pcap(const std::vector<std::vector<uint8_t>>& frames) {
  char path[] = "/tmp/gtm-bench-dataplane-XXXXXX.pcap";
  const int fd = mkstemps(path, 5);
  if (fd < 0) die("cannot create a capture file in /tmp");
  std::vector<uint8_t> out;
  auto put32 = [&](uint32_t v) {
    out.insert(out.end(), {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)});
  };
  auto put16 = [&](uint16_t v) { out.insert(out.end(), {uint8_t(v), uint8_t(v >> 8)}); };
  put32(0xA1B2C3D4);
  put16(2);
  put16(4);
  put32(0);
  put32(0);
  put32(65535);
  put32(1);  // LINKTYPE_ETHERNET
  for (const std::vector<uint8_t>& f : frames) {
    put32(0);
    put32(0);
    put32(static_cast<uint32_t>(f.size()));
    put32(static_cast<uint32_t>(f.size()));
    out.insert(out.end(), f.begin(), f.end());
  }
  const bool ok = write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size());
  close(fd);
  if (!ok) die(std::string("cannot write ") + path);
  return path;
}

// An answer as a client would check it: addressed back from the service, QR set, NOERROR with an
// answer, and checksums right. With offload, the checksums are what the NIC is to be handed: the
// IPv4 field 0 and the UDP field the pseudo header's sum (the RTE_MBUF_F_TX_UDP_CKSUM contract).
bool answer_ok(const uint8_t* f, uint32_t len, bool offload) {
  if (len < 14 + 20 + 8 + 12 || std::memcmp(f, kClientMac, 6) != 0 ||
      std::memcmp(f + 6, kPortMac, 6) != 0) {
    return false;
  }
  const uint8_t* ip = f + 14;
  const uint8_t* udp = ip + 20;
  const uint8_t* msg = udp + 8;
  const uint16_t udp_len = dns::load16(udp + 4);
  if (ip[0] != 0x45 || std::memcmp(ip + 12, kService, 4) != 0 || dns::load16(udp) != 53 ||
      udp_len < 8 + 12 || 14u + 20u + udp_len != len || dns::load16(ip + 2) != 20 + udp_len) {
    return false;
  }
  if ((msg[2] & 0x80) == 0 || (msg[3] & 0x0F) != 0 || dns::load16(msg + 6) == 0) return false;
  uint64_t pseudo = packet::csum_add(0, ip + 12, 8);
  pseudo = packet::csum_add_u16(packet::csum_add_u16(pseudo, 17), udp_len);
  if (offload) {
    uint16_t field;
    std::memcpy(&field, udp + 6, 2);
    return dns::load16(ip + 10) == 0 && field == packet::csum_fold(pseudo);
  }
  return packet::csum_fold(packet::csum_add(0, ip, 20)) == 0xFFFF &&
         packet::csum_fold(packet::csum_add(pseudo, udp, udp_len)) == 0xFFFF;
}

struct AnswerCheck {
  bool offload = false;
  uint64_t seen = 0;
  uint64_t checked = 0;
  uint64_t bad = 0;

  // Every 64th answer in full; checking all would cost more than a stage of the loop.
  void burst(rte_mbuf* const* pkts, uint16_t n) {
    for (uint16_t i = 0; i < n; ++i) {
      if ((seen + i) % 64 != 0) continue;
      ++checked;
      bad += !answer_ok(rte_pktmbuf_mtod(pkts[i], const uint8_t*), pkts[i]->data_len, offload);
    }
    seen += n;
  }
};

// net_pcap's transmit side drops what it is given; this looks at it first, on the lcore.
uint16_t check_tx(uint16_t, uint16_t, rte_mbuf** pkts, uint16_t n, void* arg) {
  static_cast<AnswerCheck*>(arg)->burst(pkts, n);
  return n;
}

void fill(rte_mbuf* m, const std::vector<uint8_t>& frame) {
  std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), frame.data(), frame.size());
  m->data_len = static_cast<uint16_t>(frame.size());
  m->pkt_len = static_cast<uint32_t>(frame.size());
  m->ol_flags = 0;
}

// A query frame padded to whole cache lines, so that the refill copies it in a few fixed-size
// moves instead of a memcpy call per frame.
struct alignas(64) FrameSlot {
  static constexpr uint32_t kMax = 256;
  uint8_t bytes[kMax];
  uint32_t lines = 0;  // 64-octet lines to copy
  uint16_t len = 0;
};

// The loopback harness's tx callback: the answers it is given go back into the port's one ring
// as the next queries. Timed apart (with --stages) since a NIC would not cost the lcore this.
struct Refill {
  AnswerCheck* check = nullptr;
  std::vector<FrameSlot> frames;
  size_t next = 0;
  bool timed = false;
  uint64_t cycles = 0;
  uint64_t packets = 0;
};

uint16_t refill_tx(uint16_t, uint16_t, rte_mbuf** pkts, uint16_t n, void* arg) {
  Refill& r = *static_cast<Refill*>(arg);
  const uint64_t t0 = r.timed ? rte_rdtsc() : 0;
  r.check->burst(pkts, n);
  for (uint16_t i = 0; i < n; ++i) {
    const FrameSlot& f = r.frames[r.next];
    rte_mbuf* m = pkts[i];
    uint8_t* to = rte_pktmbuf_mtod(m, uint8_t*);
    for (uint32_t k = 0; k < f.lines; ++k) std::memcpy(to + 64 * k, f.bytes + 64 * k, 64);
    m->data_len = f.len;
    m->pkt_len = f.len;
    m->ol_flags = 0;
    if (++r.next == r.frames.size()) r.next = 0;
  }
  if (r.timed) {
    __atomic_store_n(&r.cycles, r.cycles + (rte_rdtsc() - t0), __ATOMIC_RELAXED);
    __atomic_store_n(&r.packets, r.packets + n, __ATOMIC_RELAXED);
  }
  return n;
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

// How the engine answers the distinct frames, counted by the first answer's address: shows that
// the clients really take different paths (regions, datacenters) through the engine.
std::string answer_spread(const snap::SnapshotView& view,
                          const std::vector<std::vector<uint8_t>>& frames) {
  engine::WorkerState ws;
  std::map<std::string, unsigned> count;
  for (const std::vector<uint8_t>& f : frames) {
    std::vector<uint8_t> buf(f.begin() + 42, f.end());
    buf.resize(1232);
    engine::ClientAddr client;
    client.family = 4;
    std::memcpy(client.addr, f.data() + 14 + 12, 4);
    const size_t n = engine::answer_query(&view, buf.data(), f.size() - 42, buf.data(), buf.size(),
                                          client, engine::Transport::kUdp, ws);
    std::string key = "dropped";
    if (n >= 12) {
      key = "no address";
      // First answer record after the question: a compressed owner (2), type, class, TTL, length.
      size_t off = 12;
      while (off < n && buf[off] != 0) off += buf[off] + 1u;
      off += 5;
      if (dns::load16(buf.data() + 6) != 0 && off + 16 <= n &&
          dns::load16(buf.data() + off + 2) == 1) {
        char text[16];
        std::snprintf(text, sizeof text, "%u.%u.%u.%u", buf[off + 12], buf[off + 13], buf[off + 14],
                      buf[off + 15]);
        key = text;
      }
    }
    ++count[key];
  }
  std::string out;
  for (const auto& [k, v] : count) out += " " + k + " x" + std::to_string(v);
  return out;
}

dpdk::NicConfig bench_config(const Options& o, const std::string& pcap_file) {
  dpdk::NicConfig cfg;
  cfg.path = "(benchmark)";
  cfg.main_lcore = 0;
  dpdk::PortConfig p;
  p.name = "bench0";
  if (o.harness != Harness::kPcap) {
    p.device = kRingPort;
    p.attach_existing = true;
  } else {
    p.device = "net_pcap_gtmbench,rx_pcap=" + pcap_file + ",infinite_rx=1";
  }
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
  // The generator's frames in flight, or net_pcap's copies of the capture, come from the port's
  // pool as well.
  p.mbufs = dpdk::min_mbufs(p, 1) + std::max(kInFlight, o.clients) + 1024;
  cfg.ports.push_back(p);
  dpdk::LcoreConfig lc;
  lc.lcore = kLcore;
  lc.queues.push_back({0, 0});
  cfg.lcores.push_back(lc);
  return cfg;
}

struct Sample {
  uint64_t tsc, busy_cycles, busy_packets, rx, responses;
  std::shared_ptr<dpdk::StageCycles> stages;  // a copy, when timing
};

template <typename T>
T load(const T& v) {
  return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

Sample take(const dpdk::LcoreContext& c, const dpdk::StageCycles* stages) {
  Sample s{};
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

// Busy and total jiffies of every CPU (/proc/stat): how much of the other vCPU someone else used
// while the lcore was measured.
std::vector<std::pair<uint64_t, uint64_t>> cpu_times() {
  std::ifstream in("/proc/stat");
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0 || line.size() < 4 || line[3] < '0' || line[3] > '9') continue;
    std::istringstream f(line.substr(line.find(' ')));
    uint64_t v[8] = {};
    for (uint64_t& x : v) f >> x;
    const uint64_t idle = v[3] + v[4];
    uint64_t total = 0;
    for (uint64_t x : v) total += x;
    out.emplace_back(total - idle, total);
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  static const option longopts[] = {{"config", required_argument, nullptr, 'c'},
                                    {"qname", required_argument, nullptr, 'q'},
                                    {"qtype", required_argument, nullptr, 't'},
                                    {"ecs-file", required_argument, nullptr, 'e'},
                                    {"ecs-db", required_argument, nullptr, 'd'},
                                    {"ecs-count", required_argument, nullptr, 'N'},
                                    {"clients", required_argument, nullptr, 'n'},
                                    {"seconds", required_argument, nullptr, 's'},
                                    {"stages", no_argument, nullptr, 'S'},
                                    {"checksums", required_argument, nullptr, 'k'},
                                    {"harness", required_argument, nullptr, 'H'},
                                    {"rate", required_argument, nullptr, 'r'},
                                    {"swaps", required_argument, nullptr, 'w'},
                                    {"label", required_argument, nullptr, 'l'},
                                    {nullptr, 0, nullptr, 0}};
  const char* usage =
      "usage: gtm-bench-dataplane --config YAML [--qname N] [--qtype A|AAAA] [--ecs-file F] "
      "[--ecs-db MMDB [--ecs-count N]] [--clients N] [--seconds S] [--stages] [--checksums "
      "software|offload] "
      "[--harness loopback|pcap|ring] [--rate PPS --swaps N] [--label L] [-- EAL]";
  int ch;
  while ((ch = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
    const std::string arg = optarg != nullptr ? optarg : "";
    switch (ch) {
      case 'c':
        o.config = arg;
        break;
      case 'q':
        o.qname = arg;
        break;
      case 't':
        if (arg != "A" && arg != "AAAA") die("--qtype must be A or AAAA");
        o.qtype = arg == "AAAA" ? 28 : 1;
        break;
      case 'e':
        o.ecs_file = arg;
        break;
      case 'd':
        o.ecs_db = arg;
        break;
      case 'N':
        o.ecs_count = std::strtoul(arg.c_str(), nullptr, 10);
        break;
      case 'n':
        o.clients = static_cast<unsigned>(std::strtoul(arg.c_str(), nullptr, 10));
        break;
      case 's':
        o.seconds = std::strtod(arg.c_str(), nullptr);
        break;
      case 'S':
        o.stages = true;
        break;
      case 'k':
        if (arg != "software" && arg != "offload") die("--checksums must be software or offload");
        o.offload = arg == "offload";
        break;
      case 'H':
        if (arg == "loopback") {
          o.harness = Harness::kLoopback;
        } else if (arg == "pcap") {
          o.harness = Harness::kPcap;
        } else if (arg == "ring") {
          o.harness = Harness::kRing;
        } else {
          die("--harness must be loopback, pcap or ring");
        }
        break;
      case 'r':
        o.rate = std::strtoull(arg.c_str(), nullptr, 10);
        break;
      case 'w':
        o.swaps = static_cast<unsigned>(std::strtoul(arg.c_str(), nullptr, 10));
        break;
      case 'l':
        o.label = arg;
        break;
      default:
        die(usage);
    }
  }
  for (int i = optind; i < argc; ++i) o.eal.push_back(argv[i]);
  if (o.config.empty()) die("--config is required");
  if (o.clients == 0 || o.clients > 60000) die("--clients must be 1..60000");
  if (!o.ecs_file.empty() && !o.ecs_db.empty()) die("--ecs-file or --ecs-db, not both");
  if (o.ecs_count == 0 || o.ecs_count > 60000) die("--ecs-count must be 1..60000");
  if (!(o.seconds > 0)) die("--seconds must be positive");
  if ((o.rate != 0 || o.swaps != 0) && o.harness != Harness::kRing) {
    die("--rate and --swaps need --harness ring (an open loop needs the generator)");
  }
  return o;
}

void sleep_until_tsc(uint64_t tsc, uint64_t hz) {
  const uint64_t now = rte_rdtsc();
  if (tsc <= now) return;
  const uint64_t ns = (tsc - now) * 1000000000ull / hz;
  const timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
  nanosleep(&ts, nullptr);
}

}  // namespace

static int run(const Options& o, const std::string& default_prefix) {
  control::LoadedConfig loaded;
  control::ConfigError cerr;
  std::vector<uint8_t> image;
  std::string error;
  if (!control::load_config_file(o.config, &loaded, &cerr)) die(cerr.to_string());
  // As gtm-control does: geo tables (MaxMind DBs, CIDR lists) compiled apart, shared by images.
  if (!loaded.geo.empty() && !control::geo::compile_shared(loaded.geo, &loaded.model.geo, &error)) {
    die(o.config + ": geo: " + error);
  }
  if (!control::build_snapshot(loaded.model, &image, &error)) die(error);
  std::vector<bench::EcsSubnet> subnets;
  if (!o.ecs_file.empty()) subnets = read_subnets(o.ecs_file);
  if (!o.ecs_db.empty()) {
    subnets = bench::db_ecs_subnets(o.ecs_db, o.ecs_count);
    if (subnets.empty()) die(o.ecs_db + ": cannot draw ECS subnets from it");
  }
  const std::vector<std::vector<uint8_t>> frames = build_frames(o, subnets);
  {
    snap::SnapshotView view;
    if (!view.validate(image.data(), image.size(), &error)) die("snapshot: " + error);
    std::printf("%s answers of the %zu distinct queries (%zu ECS subnets):%s\n", o.label.c_str(),
                frames.size(), subnets.size(), answer_spread(view, frames).c_str());
  }
  const bool ring = o.harness == Harness::kRing;
  const bool loopback = o.harness == Harness::kLoopback;
  const std::string pcap_file = o.harness == Harness::kPcap ? write_pcap(frames) : "";

  dpdk::Runtime rt(bench_config(o, pcap_file));
  std::vector<std::string> eal = o.eal;
  if (eal.empty()) {
    eal = {"--no-huge", "-m", "1024", "--no-shconf", "--file-prefix", default_prefix};
  }
  if (!rt.init_eal(eal, &error)) die(error);
  rte_ring* rx = nullptr;
  rte_ring* tx = nullptr;
  if (ring || loopback) {
    rx = rte_ring_create("gtmbench_rx", kRingSize, static_cast<int>(rte_socket_id()),
                         RING_F_SP_ENQ | RING_F_SC_DEQ);
    // Loopback: only the lcore touches the one ring, dequeuing and enqueuing.
    tx = loopback ? rx
                  : rte_ring_create("gtmbench_tx", kRingSize, static_cast<int>(rte_socket_id()),
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (rx == nullptr || tx == nullptr ||
        rte_eth_from_rings(kRingName, &rx, 1, &tx, 1, rte_socket_id()) < 0) {
      die("cannot create the ring port");
    }
  }
  std::unique_ptr<io::SnapshotSlot> slot = io::SnapshotSlot::create(1, &error);
  if (!slot) die(error);
  slot->publish(load_image(image));
  if (!rt.setup_ports(&error)) die(error);
  if (!pcap_file.empty()) std::filesystem::remove(pcap_file);  // net_pcap has read it all
  dpdk::PortRuntime& port = rt.ports()[0];
  if (o.offload) {
    // What port.cc selects on a NIC with both offloads; neither virtual port has them.
    port.tx_checksums = {true, true};
    port.tx_flags_v4 = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
    port.tx_flags_v6 = RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_UDP_CKSUM;
  }
  if (!rt.build_lcores(slot.get(), &error)) die(error);
  dpdk::LcoreContext& lc = *rt.lcores()[0];
  auto stages = std::make_unique<dpdk::StageCycles>();
  if (o.stages) lc.stages = stages.get();
  rte_mempool* pool = port.pool;
  AnswerCheck check;
  check.offload = o.offload;
  Refill refill;
  refill.check = &check;
  for (const std::vector<uint8_t>& f : frames) {
    if (f.size() > FrameSlot::kMax) die("query frame too long for the loopback harness");
    FrameSlot& slot = refill.frames.emplace_back();
    std::memcpy(slot.bytes, f.data(), f.size());
    slot.len = static_cast<uint16_t>(f.size());
    slot.lines = static_cast<uint32_t>((f.size() + 63) / 64);
  }
  refill.next = kInFlight % frames.size();
  refill.timed = o.stages;
  if ((o.harness == Harness::kPcap &&
       rte_eth_add_tx_callback(port.port_id, 0, check_tx, &check) == nullptr) ||
      (loopback && rte_eth_add_tx_callback(port.port_id, 0, refill_tx, &refill) == nullptr)) {
    die("cannot add the tx callback that checks the answers");
  }

  std::vector<rte_mbuf*> bufs((ring || loopback) && o.rate == 0 ? kInFlight : 0);
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
  uint64_t offered = 0, missed = 0, skipped = 0;
  rte_mbuf* burst[dpdk::kBurst];
  size_t next_frame = 0;
  auto recycle = [&](bool resend) {
    const unsigned n =
        rte_ring_dequeue_burst(tx, reinterpret_cast<void**>(burst), dpdk::kBurst, nullptr);
    if (n == 0) return;
    check.burst(burst, static_cast<uint16_t>(n));
    if (!resend) {
      rte_pktmbuf_free_bulk(burst, n);
      return;
    }
    for (unsigned i = 0; i < n; ++i) fill(burst[i], frames[next_frame++ % frames.size()]);
    const unsigned sent = rte_ring_enqueue_burst(rx, reinterpret_cast<void**>(burst), n, nullptr);
    offered += sent;
    if (sent < n) rte_pktmbuf_free_bulk(burst + sent, n - sent);
  };

  // Closed loop: warm up, then measure, sampling the lcore's busy counters every millisecond.
  const uint64_t warm = hz / 2;
  const uint64_t window = hz / 1000;
  std::vector<double> windows;
  uint64_t win_tsc = 0, win_cycles = 0, win_packets = 0;
  Sample t0{};
  uint64_t refill_cycles0 = 0, refill_packets0 = 0;
  std::vector<std::pair<uint64_t, uint64_t>> cpu0;
  const uint64_t start = rte_rdtsc();
  auto sample_window = [&](uint64_t now) {
    const uint64_t c = load(lc.pc.busy_cycles);
    const uint64_t p = load(lc.pc.busy_packets);
    if (p > win_packets) {
      windows.push_back(static_cast<double>(c - win_cycles) / static_cast<double>(p - win_packets));
    }
    win_tsc = now;
    win_cycles = c;
    win_packets = p;
  };
  auto begin_measuring = [&] {
    t0 = take(lc, o.stages ? stages.get() : nullptr);
    cpu0 = cpu_times();
    refill_cycles0 = load(refill.cycles);
    refill_packets0 = load(refill.packets);
    win_tsc = t0.tsc;
    win_cycles = t0.busy_cycles;
    win_packets = t0.busy_packets;
  };
  if (!ring) {
    // Only the lcore works: this thread sleeps from one sample to the next.
    sleep_until_tsc(start + warm, hz);
    begin_measuring();
    while (rte_rdtsc() - t0.tsc < run_cycles) {
      sleep_until_tsc(win_tsc + window, hz);
      sample_window(rte_rdtsc());
    }
  } else if (o.rate == 0) {
    for (bool measuring = false;;) {
      recycle(true);
      const uint64_t now = rte_rdtsc();
      if (!measuring) {
        if (now - start >= warm) {
          begin_measuring();
          measuring = true;
        }
      } else if (now - t0.tsc >= run_cycles) {
        break;
      } else if (now - win_tsc >= window) {
        sample_window(now);
      }
    }
  } else {
    // Open loop: frames leave at `rate`; a full rx ring counts as missed, as a NIC's imissed.
    // After a pause of the generator itself (the shared core), it does not catch up by more than
    // a ring's worth, so only the lcore's stalls fill the ring.
    begin_measuring();
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
  const Sample t1 = take(lc, o.stages ? stages.get() : nullptr);
  const std::vector<std::pair<uint64_t, uint64_t>> cpu1 = cpu_times();
  const uint64_t refill_cycles = load(refill.cycles) - refill_cycles0;
  const uint64_t refill_packets = load(refill.packets) - refill_packets0;
  if (publisher.joinable()) publisher.join();
  rt.stop();
  // In-flight frames (closed loop) are still in the rings; drain them before the pool goes.
  void* left = nullptr;
  while (rx != nullptr && rte_ring_dequeue(rx, &left) == 0) {
    rte_pktmbuf_free(static_cast<rte_mbuf*>(left));
  }
  while (tx != nullptr && rte_ring_dequeue(tx, &left) == 0) {
    rte_pktmbuf_free(static_cast<rte_mbuf*>(left));
  }

  const double pkts = static_cast<double>(t1.busy_packets - t0.busy_packets);
  const double cpp = static_cast<double>(t1.busy_cycles - t0.busy_cycles) / pkts;
  const double wall_s = static_cast<double>(t1.tsc - t0.tsc) / static_cast<double>(hz);
  const uint64_t answered = t1.responses - t0.responses;
  const auto& pc = lc.pc;
  uint64_t drops = 0;
  for (uint64_t d : pc.dropped) drops += d;
  const bool all_answered = lc.ws.counters.responses == pc.rx_dns && drops == 0 &&
                            lc.ws.counters.malformed_dropped == 0 && check.bad == 0 &&
                            check.checked > 0;
  double median_cpp = cpp, p10 = cpp, p90 = cpp;
  if (!windows.empty()) {
    std::sort(windows.begin(), windows.end());
    median_cpp = windows[windows.size() / 2];
    p10 = windows[windows.size() / 10];
    p90 = windows[windows.size() * 9 / 10];
  }
  // The busy share of each CPU during the measurement; the lcore's is ~100 %.
  std::string cpus;
  for (size_t i = 0; i < cpu0.size() && i < cpu1.size(); ++i) {
    const double total = static_cast<double>(cpu1[i].second - cpu0[i].second);
    const double busy = static_cast<double>(cpu1[i].first - cpu0[i].first);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%scpu%zu %.0f%%", i ? ", " : "", i,
                  total > 0 ? 100 * busy / total : 0.0);
    cpus += buf;
  }
  std::printf(
      "%s: %.1f cycles/packet (median of %zu 1-ms windows, p10 %.1f, p90 %.1f; mean %.1f; TSC "
      "%.2f GHz) -> %.2f Mqps per lcore; wall %.2f Mqps; harness %s, checksums %s; busy: %s "
      "(lcore on cpu%u); %" PRIu64 " answers checked, %" PRIu64 " bad%s\n",
      o.label.c_str(), median_cpp, windows.size(), p10, p90, cpp, static_cast<double>(hz) / 1e9,
      static_cast<double>(hz) / median_cpp / 1e6, static_cast<double>(t1.rx - t0.rx) / wall_s / 1e6,
      ring       ? "ring (generator on cpu0)"
      : loopback ? "loopback (one core)"
                 : "pcap (one core)",
      o.offload ? "offload" : "software", cpus.c_str(), kLcore, check.checked, check.bad,
      all_answered ? "" : "  ** NOT ALL ANSWERED **");
  // The figures bench/dataplane-bench.sh collects.
  std::printf("%s mqps_per_lcore=%.2f cycles_per_packet=%.1f\n", o.label.c_str(),
              static_cast<double>(hz) / median_cpp / 1e6, median_cpp);
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
    if (refill_packets != 0) {
      std::printf(
          "%s harness: the loopback refill (query copy over each answer, answer check) "
          "costs %.1f cycles/packet, inside tx\n",
          o.label.c_str(),
          static_cast<double>(refill_cycles) / static_cast<double>(refill_packets));
    }
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
