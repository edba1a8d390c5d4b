// The DPDK side of gtm-dataplane, step by step: EAL, ports and exception paths, one context per
// lcore, launch, stop. The backend (backend.cc) and the benchmark (bench/dataplane_bench.cc) both
// drive it; the benchmark creates its ring port between init_eal() and setup_ports().
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "dataplane/dpdk/lcore.h"
#include "dataplane/dpdk/nic_config.h"
#include "dataplane/dpdk/port.h"
#include "dataplane/io/snapshot_slot.h"

namespace gtm::dpdk {

// Arguments for rte_eal_init: the lcores (-l, --main-lcore) and PCI allow list derived from the
// configuration (--no-pci when it has no PCI port), then its eal.args, then `extra`.
std::vector<std::string> eal_arguments(const NicConfig& cfg, const std::vector<std::string>& extra);

// Refuses lcores this process cannot run on: beyond RTE_MAX_LCORE or not in its CPU affinity
// set ("more lcores than exist"), naming the key.
bool check_lcores(const NicConfig& cfg, std::string* error);

class Runtime {
 public:
  explicit Runtime(NicConfig cfg) : cfg_(std::move(cfg)) {}
  ~Runtime();  // stops the lcores, closes the ports, frees the contexts, cleans up the EAL

  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  bool init_eal(const std::vector<std::string>& extra_args, std::string* error);
  bool setup_ports(std::string* error);
  // One context per lcores[] entry, on the lcore's NUMA socket; lcores[i] is RCU reader i.
  bool build_lcores(io::SnapshotSlot* slot, std::string* error);
  bool launch(std::string* error);
  // Sets the stop flag and waits for every lcore; idempotent.
  void stop();

  const NicConfig& config() const { return cfg_; }
  std::vector<PortRuntime>& ports() { return ports_; }
  const std::vector<LcoreContext*>& lcores() const { return lcores_; }

 private:
  NicConfig cfg_;
  bool eal_ = false;
  bool launched_ = false;
  std::atomic<bool> stop_{false};
  std::vector<PortRuntime> ports_;
  std::vector<LcoreContext*> lcores_;
};

}  // namespace gtm::dpdk
