// The NIC/core configuration of the DPDK backend (one YAML file per deployment; reference in
// nic_configs/README.md, examples in nic_configs/*.yaml).
//
// It names the ports (PCI address or vdev string), which lcore owns which rx/tx queue pair, RSS,
// mbuf pool, descriptor rings, checksum offloads, MTU, VLAN tags, the service addresses each port
// answers for, and the exception path to the kernel. No DPDK here: the loader checks everything
// that can be checked from the file alone (unknown keys, types, ranges, a queue owned twice, queues
// with gaps, too small a pool) and reports "file:line:column: message" naming the key. What needs
// the machine (does the port probe, do the lcores exist, has the NIC this offload) is checked at
// start by dataplane/dpdk/, which still points at the key through the Where of each setting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gtm::dpdk {

struct Where {
  int line = 0;    // 1-based; 0 when not from a file (configs built in code)
  int column = 0;  // 1-based
};

enum class Offload : uint8_t { kAuto, kHardware, kSoftware };
enum class RssMode : uint8_t { kUdp, kIp, kNone };
enum class ExceptionKind : uint8_t { kTap, kVdev, kNone };

struct ServiceAddress {
  uint8_t family = 4;  // 4 or 6
  uint8_t addr[16] = {};
  uint8_t prefix_len = 32;  // of the on-link network the address sits in (32 / 128: none)
  std::string text;         // "198.18.0.1/24" as written
};

struct ExceptionConfig {
  ExceptionKind kind = ExceptionKind::kTap;
  std::string interface;  // tap: the kernel interface (default "gtm-<port name>")
  std::string device;     // vdev: any vdev string, e.g. a pcap capture in tests
  // Frames per second each lcore hands to the kernel, at most; the rest are dropped
  // (dropped_exception_rate). A flood of junk must not eat the lcore's time in tap writes.
  uint32_t rate_limit_pps = 200000;
  // Replies the kernel sends from a service address (TCP, ICMP) leave through this gateway on the
  // exception interface: a policy route "from <service address> lookup <route_table>".
  std::string gateway_ipv4;
  std::string gateway_ipv6;
  uint32_t route_table = 0;  // 0: no policy routes (clients on-link, or routes managed elsewhere)
  Where where;
  Where device_where;
};

struct PortConfig {
  std::string name;
  std::string device;  // "0000:03:00.0" or "net_xxx0,key=value,..."
  bool device_is_pci = false;
  // Set only by programs that create the ethdev themselves before start (the benchmark's ring
  // port): the device is then looked up by name and never probed. Never set from YAML.
  bool attach_existing = false;
  bool has_mac = false;
  uint8_t mac[6] = {};
  uint32_t mtu = 1500;
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  uint32_t mbufs = 0;  // 0: computed from queues, descriptors and caches
  uint32_t mbuf_cache = 256;
  RssMode rss = RssMode::kUdp;
  Offload ipv4_checksum = Offload::kAuto;  // on transmit
  Offload udp_checksum = Offload::kAuto;   // on transmit
  Offload rx_checksum = Offload::kAuto;    // IPv4 header check on receive
  uint8_t vlan_count = 0;
  uint16_t vlan_id[2] = {};     // outer first
  uint16_t qinq_tpid = 0x88A8;  // outer TPID when two tags
  uint16_t dns_port = 53;
  std::vector<ServiceAddress> service_addresses;
  ExceptionConfig exception;
  uint16_t queue_count = 0;  // derived: the queues lcores own, 0..queue_count-1

  Where where, device_where, mac_where, mtu_where, rx_descriptors_where, tx_descriptors_where,
      mbufs_where, rss_where, ipv4_checksum_where, udp_checksum_where, rx_checksum_where;
};

struct QueueAssignment {
  uint32_t port = 0;  // index into NicConfig::ports
  uint16_t queue = 0;
};

struct LcoreConfig {
  uint32_t lcore = 0;
  std::vector<QueueAssignment> queues;
  Where where;  // of the lcore id
};

struct NicConfig {
  std::string path;                   // for messages
  std::vector<std::string> eal_args;  // extra EAL arguments, after the ones derived here
  uint32_t main_lcore = 0;            // control channel, TCP, telemetry; never polls a queue
  Where main_lcore_where;
  std::vector<PortConfig> ports;
  std::vector<LcoreConfig> lcores;  // the polling lcores
  uint32_t tx_drain_us = 100;       // partial tx bursts wait at most this long
  // 0: poll without pause (production). Otherwise an lcore that found nothing for a while goes
  // RCU-offline and sleeps this long, which a shared development machine needs.
  uint32_t idle_sleep_us = 0;

  // "path:line:column: " for a setting, or "path: " when `w` has no position.
  std::string at(const Where& w) const;
};

struct NicConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
  std::string to_string() const;  // "file:line:column: message"
};

// Never throw. On error return false and fill *err with the first problem.
bool load_nic_config_file(const std::string& path, NicConfig* out, NicConfigError* err);
bool load_nic_config_string(const std::string& yaml, const std::string& name_for_errors,
                            NicConfig* out, NicConfigError* err);

// The smallest pool that keeps `port`'s rings, per-lcore caches and burst buffers supplied.
uint32_t min_mbufs(const PortConfig& port, uint32_t lcores_on_port);

}  // namespace gtm::dpdk
