// One configured port at run time: its ethdev, mbuf pool, queues, offloads, the packet filter the
// lcores classify with, and its exception device (the kernel's side of the port).
//
// Everything here runs at start-up or shutdown on the main lcore; the lcores only read a started
// PortRuntime. Failures name the setting of the NIC configuration they come from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/dpdk/nic_config.h"
#include "dataplane/packet/classify.h"
#include "dataplane/packet/reply.h"

struct rte_mempool;

namespace gtm::dpdk {

inline constexpr uint16_t kNoPort = 0xFFFF;

struct PortRuntime {
  const PortConfig* cfg = nullptr;
  uint16_t port_id = kNoPort;
  uint16_t exception_port_id = kNoPort;
  rte_mempool* pool = nullptr;
  packet::PortFilter filter;
  packet::TxChecksums tx_checksums;
  uint64_t tx_flags_v4 = 0;  // mbuf ol_flags of an answer (offload requests)
  uint64_t tx_flags_v6 = 0;
  bool rx_checksum_reported = false;  // the NIC flags IPv4 header checksums good or bad
  std::string ethdev_name;
  std::string exception_name;
  std::vector<std::vector<std::string>> undo_commands;  // `ip rule del ...` at shutdown
  bool started = false;
  bool exception_started = false;
};

// Probes (vdev) or finds (PCI, attach_existing) the port's ethdev; configures its queues, RSS,
// offloads, MTU, MAC and mbuf pool; starts it. `lcores_on_port` sizes nothing but the messages.
bool setup_port(const NicConfig& cfg, size_t index, PortRuntime* port, std::string* error);

// Creates and starts the exception device with as many queues as the port: a net_tap interface
// with the port's MAC, carrying the service addresses (see exception.cc for the `ip` commands), or
// the configured vdev. Nothing for kind: none.
bool setup_exception(const NicConfig& cfg, size_t index, PortRuntime* port, std::string* error);

// Stops and closes both devices (flushing capture files), removes policy routing rules.
void shutdown_port(PortRuntime* port);

// "02:00:00:00:00:01"
std::string mac_text(const uint8_t mac[6]);

}  // namespace gtm::dpdk
