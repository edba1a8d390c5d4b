#include "dataplane/dpdk/runtime.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <sched.h>

#include <algorithm>
#include <new>
#include <random>

#include "dataplane/io/log.h"

namespace gtm::dpdk {

namespace {

std::string cpu_list(const cpu_set_t& set) {
  std::string out;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    int last = cpu;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    out += (out.empty() ? "" : ",") + std::to_string(cpu) +
           (last > cpu ? "-" + std::to_string(last) : "");
    cpu = last;
  }
  return out.empty() ? "none" : out;
}

bool lcore_usable(const NicConfig& cfg, uint32_t id, const Where& where, const std::string& key,
                  const cpu_set_t& set, std::string* error) {
  if (id >= RTE_MAX_LCORE) {
    *error = cfg.at(where) + key + ": lcore " + std::to_string(id) +
             " is beyond this DPDK build's " + std::to_string(RTE_MAX_LCORE) + " lcores";
    return false;
  }
  if (!CPU_ISSET(id, &set)) {
    *error = cfg.at(where) + key + ": lcore " + std::to_string(id) +
             " does not exist here (this process may run on CPUs " + cpu_list(set) + ")";
    return false;
  }
  return true;
}

uint64_t seed_for_lcore(unsigned lcore) {
  std::random_device rd;
  const uint64_t seed =
      ((static_cast<uint64_t>(rd()) << 32) ^ rd()) ^ (lcore + 1) * 0x9E3779B97F4A7C15ull;
  return seed != 0 ? seed : 0x2545F4914F6CDD1Dull;  // xorshift must not start at 0
}

}  // namespace

std::vector<std::string> eal_arguments(const NicConfig& cfg,
                                       const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"gtm-dataplane"};
  std::string lcores = std::to_string(cfg.main_lcore);
  for (const LcoreConfig& lc : cfg.lcores) lcores += "," + std::to_string(lc.lcore);
  args.insert(args.end(), {"-l", lcores, "--main-lcore", std::to_string(cfg.main_lcore)});
  bool any_pci = false;
  for (const PortConfig& p : cfg.ports) {
    if (!p.device_is_pci) continue;
    args.insert(args.end(), {"-a", p.device});
    any_pci = true;
  }
  // Without an allow list the EAL would take every NIC bound to vfio-pci on the machine.
  if (!any_pci) args.push_back("--no-pci");
  args.insert(args.end(), cfg.eal_args.begin(), cfg.eal_args.end());
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

bool check_lcores(const NicConfig& cfg, std::string* error) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    *error = "cannot read this process's CPU affinity";
    return false;
  }
  if (!lcore_usable(cfg, cfg.main_lcore, cfg.main_lcore_where, "main_lcore", set, error)) {
    return false;
  }
  for (size_t i = 0; i < cfg.lcores.size(); ++i) {
    if (!lcore_usable(cfg, cfg.lcores[i].lcore, cfg.lcores[i].where,
                      "lcores[" + std::to_string(i) + "].lcore", set, error)) {
      return false;
    }
  }
  return true;
}

Runtime::~Runtime() {
  stop();
  for (PortRuntime& p : ports_) shutdown_port(&p);
  for (LcoreContext* c : lcores_) {
    c->~LcoreContext();
    rte_free(c);
  }
  lcores_.clear();
  if (eal_) rte_eal_cleanup();
}

bool Runtime::init_eal(const std::vector<std::string>& extra_args, std::string* error) {
  if (!check_lcores(cfg_, error)) return false;
  std::vector<std::string> args = eal_arguments(cfg_, extra_args);
  std::string shown;
  for (const std::string& a : args) shown += " " + a;
  io::log_line("EAL arguments:%s", shown.c_str());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    *error = std::string("EAL initialisation failed: ") + rte_strerror(rte_errno) +
             " (arguments:" + shown + ")";
    return false;
  }
  eal_ = true;
  return true;
}

bool Runtime::setup_ports(std::string* error) {
  ports_.resize(cfg_.ports.size());
  for (size_t i = 0; i < cfg_.ports.size(); ++i) {
    if (!setup_port(cfg_, i, &ports_[i], error) || !setup_exception(cfg_, i, &ports_[i], error)) {
      return false;
    }
  }
  return true;
}

bool Runtime::build_lcores(io::SnapshotSlot* slot, std::string* error) {
  const uint64_t hz = rte_get_tsc_hz();
  for (size_t i = 0; i < cfg_.lcores.size(); ++i) {
    const LcoreConfig& lc = cfg_.lcores[i];
    if (lc.queues.size() > kMaxQueuesPerLcore) {
      *error = cfg_.at(lc.where) + "lcores[" + std::to_string(i) + "].queues: at most " +
               std::to_string(kMaxQueuesPerLcore) + " queues per lcore";
      return false;
    }
    void* mem = rte_zmalloc_socket("gtm_lcore", sizeof(LcoreContext), RTE_CACHE_LINE_SIZE,
                                   static_cast<int>(rte_lcore_to_socket_id(lc.lcore)));
    if (mem == nullptr) {
      *error = "out of DPDK memory for lcore " + std::to_string(lc.lcore) + "'s context";
      return false;
    }
    auto* c = new (mem) LcoreContext();
    lcores_.push_back(c);
    c->ws.rng = seed_for_lcore(lc.lcore);
    c->slot = slot;
    c->stop = &stop_;
    c->reader_id = static_cast<uint32_t>(i);
    c->lcore_id = lc.lcore;
    c->tsc_hz = hz;
    c->drain_cycles = hz / 1000000 * cfg_.tx_drain_us;
    c->idle_sleep_us = cfg_.idle_sleep_us;
    for (const QueueAssignment& a : lc.queues) {
      LcoreQueue& q = c->queues[c->queue_count++];
      const PortRuntime& p = ports_[a.port];
      q.port = &p;
      q.port_id = p.port_id;
      q.queue_id = a.queue;
      q.exception_port_id = p.exception_port_id;
      // One bucket per lcore; with queues of several ports it allows the largest of their rates.
      c->exception_rate =
          std::max<uint64_t>(c->exception_rate, cfg_.ports[a.port].exception.rate_limit_pps);
    }
  }
  return true;
}

bool Runtime::launch(std::string* error) {
  stop_.store(false);
  for (LcoreContext* c : lcores_) {
    const int rc = rte_eal_remote_launch(lcore_main, c, c->lcore_id);
    if (rc != 0) {
      *error = "cannot launch lcore " + std::to_string(c->lcore_id) + ": " + rte_strerror(-rc);
      stop();
      return false;
    }
    launched_ = true;
  }
  return true;
}

void Runtime::stop() {
  stop_.store(true);
  if (launched_) {
    rte_eal_mp_wait_lcore();
    launched_ = false;
  }
}

}  // namespace gtm::dpdk
