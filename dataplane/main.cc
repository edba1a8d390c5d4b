// gtm-dataplane: answers DNS over UDP and TCP from the active snapshot image, and takes new images
// from gtm-control over <run-dir>/dataplane.sock. Two I/O backends: kernel sockets (the default,
// below) and DPDK poll-mode lcores (--io dpdk, dataplane/dpdk/backend.h).
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/dpdk/backend.h"
#include "dataplane/io/control_channel.h"
#include "dataplane/io/control_protocol.h"
#include "dataplane/io/listen_addr.h"
#include "dataplane/io/log.h"
#include "dataplane/io/run_dir.h"
#include "dataplane/io/shutdown.h"
#include "dataplane/io/snapshot_slot.h"
#include "dataplane/io/tcp_server.h"
#include "dataplane/io/udp_workers.h"

namespace {

using gtm::io::log_line;

constexpr const char* kUsage =
    "usage: gtm-dataplane [options] [-- EAL arguments]\n"
    "  --io socket|dpdk     I/O backend (default socket: kernel UDP/TCP sockets)\n"
    "  --nic-config FILE    --io dpdk: ports, lcores, queues and service addresses\n"
    "                       (nic_configs/README.md); EAL arguments may follow --\n"
    "socket backend:\n"
    "  --listen ADDR:PORT   address to serve DNS on, UDP and TCP (repeatable; IPv6 as [::1]:5353;\n"
    "                       default 127.0.0.1:5353; port 0 picks a free port)\n"
    "  --workers N          UDP worker threads (default 1)\n"
    "  --cpus LIST          pin UDP workers to these CPUs, e.g. 0,1 or 2-5 (worker i -> i-th CPU)\n"
    "both:\n"
    "  --run-dir DIR        control socket and last good snapshot (default /run/gtm; created)\n"
    "  --tcp-max-conns N    concurrent TCP connections (default 256; more are closed at once)\n"
    "  --tcp-idle-ms MS     close TCP connections idle this long (default 10000)\n"
    "  --help               this text\n";

struct Options {
  bool dpdk = false;
  std::string nic_config;
  std::vector<std::string> eal_args;
  bool socket_options = false;  // --listen, --workers or --cpus given
  std::vector<std::string> listen;
  uint32_t workers = 1;
  std::vector<int> cpus;
  std::string run_dir = gtm::proto::kDefaultRunDir;
  gtm::io::TcpOptions tcp;
};

bool parse_uint(const std::string& s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  uint64_t v = std::strtoull(s.c_str(), nullptr, 10);
  if (v > max) return false;
  *out = v;
  return true;
}

// "0,1" or "2-5" or a mix.
bool parse_cpus(const std::string& s, std::vector<int>* out) {
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t dash = item.find('-');
    uint64_t lo = 0;
    uint64_t hi = 0;
    if (dash == std::string::npos) {
      if (!parse_uint(item, CPU_SETSIZE - 1, &lo)) return false;
      hi = lo;
    } else if (!parse_uint(item.substr(0, dash), CPU_SETSIZE - 1, &lo) ||
               !parse_uint(item.substr(dash + 1), CPU_SETSIZE - 1, &hi) || hi < lo) {
      return false;
    }
    for (uint64_t c = lo; c <= hi; ++c) out->push_back(static_cast<int>(c));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return !out->empty();
}

// Returns 0 to run, 1 on a usage error, 2 for --help.
int parse_args(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      opt->eal_args.assign(argv + i + 1, argv + argc);
      break;
    }
    std::string value;
    bool has_value = false;
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    if (arg == "--help" || arg == "-h") return 2;
    auto need_value = [&]() {
      if (has_value) return true;
      if (i + 1 >= argc) {
        std::fprintf(stderr, "gtm-dataplane: %s needs a value\n", arg.c_str());
        return false;
      }
      value = argv[++i];
      return true;
    };
    uint64_t n = 0;
    if (arg == "--listen" || arg == "--workers" || arg == "--cpus") opt->socket_options = true;
    if (arg == "--io") {
      if (!need_value()) return 1;
      if (value != "socket" && value != "dpdk") {
        std::fprintf(stderr, "gtm-dataplane: --io is socket or dpdk, got '%s'\n", value.c_str());
        return 1;
      }
      opt->dpdk = value == "dpdk";
    } else if (arg == "--nic-config") {
      if (!need_value()) return 1;
      opt->nic_config = value;
    } else if (arg == "--listen") {
      if (!need_value()) return 1;
      opt->listen.push_back(value);
    } else if (arg == "--workers") {
      if (!need_value()) return 1;
      if (!parse_uint(value, 1024, &n) || n == 0) {
        std::fprintf(stderr, "gtm-dataplane: --workers must be 1..1024, got '%s'\n", value.c_str());
        return 1;
      }
      opt->workers = static_cast<uint32_t>(n);
    } else if (arg == "--cpus") {
      if (!need_value()) return 1;
      if (!parse_cpus(value, &opt->cpus)) {
        std::fprintf(stderr, "gtm-dataplane: bad --cpus list '%s' (e.g. 0,1 or 2-5)\n",
                     value.c_str());
        return 1;
      }
    } else if (arg == "--run-dir") {
      if (!need_value()) return 1;
      if (value.empty()) {
        std::fprintf(stderr, "gtm-dataplane: --run-dir must not be empty\n");
        return 1;
      }
      opt->run_dir = value;
    } else if (arg == "--tcp-max-conns") {
      if (!need_value()) return 1;
      if (!parse_uint(value, 1000000, &n) || n == 0) {
        std::fprintf(stderr, "gtm-dataplane: --tcp-max-conns must be 1..1000000, got '%s'\n",
                     value.c_str());
        return 1;
      }
      opt->tcp.max_conns = static_cast<uint32_t>(n);
    } else if (arg == "--tcp-idle-ms") {
      if (!need_value()) return 1;
      if (!parse_uint(value, 86400000, &n) || n == 0) {
        std::fprintf(stderr, "gtm-dataplane: --tcp-idle-ms must be 1..86400000, got '%s'\n",
                     value.c_str());
        return 1;
      }
      opt->tcp.idle_ms = static_cast<uint32_t>(n);
    } else {
      std::fprintf(stderr, "gtm-dataplane: unknown argument '%s'\n%s", argv[i], kUsage);
      return 1;
    }
  }
  if (opt->dpdk) {
    if (opt->nic_config.empty()) {
      std::fprintf(stderr, "gtm-dataplane: --io dpdk needs --nic-config FILE\n");
      return 1;
    }
    if (opt->socket_options) {
      std::fprintf(stderr,
                   "gtm-dataplane: --listen, --workers and --cpus are for --io socket; with --io "
                   "dpdk the NIC configuration names the addresses and lcores\n");
      return 1;
    }
    return 0;
  }
  if (!opt->nic_config.empty() || !opt->eal_args.empty()) {
    std::fprintf(stderr, "gtm-dataplane: --nic-config and EAL arguments need --io dpdk\n");
    return 1;
  }
  if (opt->listen.empty()) opt->listen.push_back("127.0.0.1:5353");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  int parsed = parse_args(argc, argv, &opt);
  if (parsed == 2) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (parsed != 0) return 2;

  std::string error;
  while (opt.run_dir.size() > 1 && opt.run_dir.back() == '/') opt.run_dir.pop_back();
  if (!gtm::io::make_run_dir(opt.run_dir, &error)) {
    log_line("%s", error.c_str());
    return 1;
  }

  // Signals are taken synchronously by the main thread (sigwait); every thread started below
  // inherits this mask. A client that disconnects mid-write must not kill the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (opt.dpdk) {
    gtm::dpdk::BackendOptions backend{opt.nic_config, opt.eal_args, opt.run_dir, opt.tcp};
    const int status = gtm::dpdk::run_backend(backend, stop_signals);
    log_line("stopped");
    return status;
  }

  std::vector<gtm::io::ListenAddr> addrs;
  for (const std::string& text : opt.listen) {
    gtm::io::ListenAddr a;
    if (!gtm::io::parse_listen_addr(text, &a, &error)) {
      log_line("%s", error.c_str());
      return 2;
    }
    addrs.push_back(a);
  }

  // Readers: the UDP workers, then the TCP thread.
  std::unique_ptr<gtm::io::SnapshotSlot> slot =
      gtm::io::SnapshotSlot::create(opt.workers + 1, &error);
  if (!slot) {
    log_line("%s", error.c_str());
    return 1;
  }
  gtm::io::load_last_good_snapshot(slot.get(), opt.run_dir);

  int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    log_line("eventfd: %s", std::strerror(errno));
    return 1;
  }

  int status = 0;
  {
    // Declared in this order so they are destroyed (joined, closed) before the slot and stop_fd.
    gtm::io::UdpWorkers udp(slot.get(), stop_fd);
    gtm::io::TcpServer tcp(slot.get(), opt.workers, stop_fd, opt.tcp);
    std::vector<gtm::io::WorkerStatsSource> stats;
    bool ok = udp.open(&addrs, opt.workers, &error) && tcp.open(addrs, &error);
    if (ok) {
      for (uint32_t i = 0; i < udp.count(); ++i) stats.push_back({&udp.state(i), "udp"});
      stats.push_back({&tcp.state(), "tcp"});
    }
    gtm::io::ControlChannel control(slot.get(), opt.run_dir, stop_fd, std::move(stats));
    ok = ok && control.open(&error);
    if (ok) {
      for (const gtm::io::ListenAddr& a : addrs) {
        log_line("listening on %s (udp x%u, tcp)", a.text().c_str(), opt.workers);
      }
      ok = udp.start(opt.cpus, &error) && tcp.start(&error) && control.start(&error);
    }
    if (ok) {
      log_line("ready");
      gtm::io::wait_for_stop_signal(stop_signals);
    } else {
      log_line("%s", error.c_str());
      status = 1;
    }
    gtm::io::signal_stop(stop_fd);
    control.join();
    tcp.join();
    udp.join();
  }
  close(stop_fd);
  slot.reset();
  log_line("stopped");
  return status;
}
