#include "dataplane/dpdk/port.h"

#include <rte_bus_vdev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "dataplane/io/log.h"

namespace gtm::dpdk {

namespace {

using io::log_line;

// Frames carry at most two VLAN tags; the mbuf must hold a full frame of the MTU without
// scattering, since the lcores answer in place in one segment.
constexpr uint32_t kL2Overhead = packet::kEthHeaderLen + 2 * packet::kVlanTagLen + 4 /* FCS */;

std::string errtext(int rc) {
  return std::string(rte_strerror(rc < 0 ? -rc : rc));
}

// Ethdev name of a device string: the vdev name, or the full PCI address ("03:00.0" is
// "0000:03:00.0" to the PCI bus).
std::string ethdev_name(const PortConfig& p) {
  std::string name = p.device.substr(0, p.device.find(','));
  if (p.device_is_pci && name.size() == 7) name = "0000:" + name;
  return name;
}

bool probe_vdev(const std::string& device, std::string* error) {
  const size_t comma = device.find(',');
  const std::string name = device.substr(0, comma);
  const std::string args = comma == std::string::npos ? "" : device.substr(comma + 1);
  const int rc = rte_vdev_init(name.c_str(), args.c_str());
  if (rc != 0) {
    *error = "did not probe (" + errtext(rc) + ")";
    return false;
  }
  return true;
}

bool find_port(const std::string& name, uint16_t* port_id) {
  return rte_eth_dev_get_port_by_name(name.c_str(), port_id) == 0;
}

// The offload `want` of a port: enabled when the NIC has it and the setting allows; refused when
// the setting demands hardware the NIC lacks.
bool pick_offload(const NicConfig& cfg, Offload setting, const Where& where, const std::string& key,
                  bool capable, const std::string& port, bool* enabled, std::string* error) {
  if (setting == Offload::kHardware && !capable) {
    *error = cfg.at(where) + key + ": hardware, but the device of port '" + port +
             "' has no such offload; use auto or software";
    return false;
  }
  *enabled = capable && setting != Offload::kSoftware;
  return true;
}

}  // namespace

std::string mac_text(const uint8_t mac[6]) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

bool setup_port(const NicConfig& cfg, size_t index, PortRuntime* rt, std::string* error) {
  const PortConfig& p = cfg.ports[index];
  rt->cfg = &p;
  rt->ethdev_name = ethdev_name(p);
  const std::string key = "ports[" + std::to_string(index) + "]";
  if (!p.device_is_pci && !p.attach_existing) {
    std::string why;
    if (!probe_vdev(p.device, &why)) {
      *error = cfg.at(p.device_where) + key + ".device: '" + p.device + "' " + why;
      return false;
    }
  }
  if (!find_port(rt->ethdev_name, &rt->port_id)) {
    *error = cfg.at(p.device_where) + key + ".device: '" + p.device + "' did not probe" +
             (p.device_is_pci
                  ? " (is it bound to vfio-pci? scripts/dpdk-bind.sh; is --no-pci in eal.args?)"
                  : "");
    return false;
  }

  rte_eth_dev_info info;
  int rc = rte_eth_dev_info_get(rt->port_id, &info);
  if (rc != 0) {
    *error = cfg.at(p.device_where) + key + ": cannot read device info: " + errtext(rc);
    return false;
  }
  if (p.queue_count > info.max_rx_queues || p.queue_count > info.max_tx_queues) {
    *error = cfg.at(p.where) + key + ": lcores own " + std::to_string(p.queue_count) +
             " queues of port '" + p.name + "', but its device (" + info.driver_name + ") has " +
             std::to_string(std::min(info.max_rx_queues, info.max_tx_queues));
    return false;
  }
  if (p.mtu < info.min_mtu || p.mtu > info.max_mtu) {
    *error = cfg.at(p.mtu_where) + key + ".mtu: " + std::to_string(p.mtu) + " is outside " +
             std::to_string(info.min_mtu) + ".." + std::to_string(info.max_mtu) + " for " +
             info.driver_name;
    return false;
  }

  rte_eth_conf conf{};
  conf.rxmode.mtu = p.mtu;
  if (p.queue_count > 1) {
    const uint64_t want =
        p.rss == RssMode::kUdp ? (RTE_ETH_RSS_UDP | RTE_ETH_RSS_IP) : RTE_ETH_RSS_IP;
    const uint64_t hf = want & info.flow_type_rss_offloads;
    if (hf == 0) {
      *error = cfg.at(p.rss_where.line ? p.rss_where : p.where) + key +
               ".rss: " + info.driver_name + " hashes no IP/UDP flow types, so " +
               std::to_string(p.queue_count) + " queues cannot share the traffic";
      return false;
    }
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = hf;
  }

  const uint64_t rx_ip = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
  bool rx_hw = false;
  if (!pick_offload(cfg, p.rx_checksum, p.rx_checksum_where, key + ".offloads.rx_checksum",
                    (info.rx_offload_capa & rx_ip) != 0, p.name, &rx_hw, error)) {
    return false;
  }
  if (rx_hw) conf.rxmode.offloads |= rx_ip | (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
  rt->rx_checksum_reported = rx_hw;

  bool ip_hw = false;
  bool udp_hw = false;
  if (!pick_offload(cfg, p.ipv4_checksum, p.ipv4_checksum_where, key + ".offloads.ipv4_checksum",
                    (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0, p.name, &ip_hw,
                    error) ||
      !pick_offload(cfg, p.udp_checksum, p.udp_checksum_where, key + ".offloads.udp_checksum",
                    (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0, p.name, &udp_hw,
                    error)) {
    return false;
  }
  if (ip_hw) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
  if (udp_hw) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
  // Every mbuf sent comes from this port's pool with one reference: answers and kernel frames.
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
  }
  rt->tx_checksums = {ip_hw, udp_hw};
  rt->tx_flags_v4 = (ip_hw || udp_hw ? RTE_MBUF_F_TX_IPV4 : 0) |
                    (ip_hw ? RTE_MBUF_F_TX_IP_CKSUM : 0) | (udp_hw ? RTE_MBUF_F_TX_UDP_CKSUM : 0);
  rt->tx_flags_v6 = udp_hw ? (RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_UDP_CKSUM) : 0;

  rc = rte_eth_dev_configure(rt->port_id, p.queue_count, p.queue_count, &conf);
  if (rc != 0) {
    *error = cfg.at(p.where) + key + ": configuring " + rt->ethdev_name + " failed: " + errtext(rc);
    return false;
  }
  uint16_t rxd = p.rx_descriptors;
  uint16_t txd = p.tx_descriptors;
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(rt->port_id, &rxd, &txd);
  if (rc != 0) {
    *error = cfg.at(p.rx_descriptors_where) + key + ": descriptor counts refused: " + errtext(rc);
    return false;
  }

  const uint32_t frame_room = std::max<uint32_t>(2048, p.mtu + kL2Overhead);
  const int socket = rte_eth_dev_socket_id(rt->port_id);
  const std::string pool_name = "gtm_pool" + std::to_string(index);
  rt->pool = rte_pktmbuf_pool_create(pool_name.c_str(), p.mbufs, p.mbuf_cache, 0,
                                     static_cast<uint16_t>(RTE_PKTMBUF_HEADROOM + frame_room),
                                     socket < 0 ? SOCKET_ID_ANY : socket);
  if (rt->pool == nullptr) {
    *error = cfg.at(p.mbufs_where.line ? p.mbufs_where : p.where) + key +
             ".mbufs: cannot create a pool of " + std::to_string(p.mbufs) +
             " mbufs: " + errtext(rte_errno) +
             " (hugepages? scripts/hugepages.sh; or -m in eal.args)";
    return false;
  }
  for (uint16_t q = 0; q < p.queue_count; ++q) {
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    rc = rte_eth_rx_queue_setup(rt->port_id, q, rxd, static_cast<unsigned>(socket), &rxconf,
                                rt->pool);
    if (rc == 0) {
      rte_eth_txconf txconf = info.default_txconf;
      txconf.offloads = conf.txmode.offloads;
      rc = rte_eth_tx_queue_setup(rt->port_id, q, txd, static_cast<unsigned>(socket), &txconf);
    }
    if (rc != 0) {
      *error =
          cfg.at(p.where) + key + ": queue " + std::to_string(q) + " setup failed: " + errtext(rc);
      return false;
    }
  }

  if (p.has_mac) {
    rte_ether_addr addr;
    std::memcpy(addr.addr_bytes, p.mac, 6);
    rc = rte_eth_dev_default_mac_addr_set(rt->port_id, &addr);
    if (rc != 0) {
      // Some vdevs (pcap) keep their address; the lcores filter and answer with ours anyway, and
      // promiscuous mode lets frames for it in.
      log_line("port %s: cannot set MAC %s (%s); answering as it in promiscuous mode",
               p.name.c_str(), mac_text(p.mac).c_str(), errtext(rc).c_str());
      rte_eth_promiscuous_enable(rt->port_id);
    }
  }
  rte_ether_addr addr;
  rte_eth_macaddr_get(rt->port_id, &addr);
  std::memcpy(rt->filter.mac, p.has_mac ? p.mac : addr.addr_bytes, 6);
  // Neighbour solicitations go to solicited-node multicast groups the kernel joins on the tap,
  // which this NIC's filter does not know.
  if (rte_eth_allmulticast_enable(rt->port_id) != 0) {
    log_line(
        "port %s: cannot enable all-multicast; IPv6 neighbour discovery may not reach the kernel",
        p.name.c_str());
  }

  packet::PortFilter& f = rt->filter;
  f.vlan_count = p.vlan_count;
  f.vlan_tpid[0] = p.vlan_count == 2 ? p.qinq_tpid : packet::kEtherTypeVlan;
  f.vlan_tpid[1] = packet::kEtherTypeVlan;
  f.vlan_id[0] = p.vlan_id[0];
  f.vlan_id[1] = p.vlan_id[1];
  f.dns_port = p.dns_port;
  for (const ServiceAddress& a : p.service_addresses) {
    const bool ok = a.family == 4 ? f.addrs.add_v4(a.addr) : f.addrs.add_v6(a.addr);
    if (!ok) {
      *error = cfg.at(p.where) + key + ".service_addresses: more than " +
               std::to_string(packet::ServiceAddrs::kMax) + " per family";
      return false;
    }
  }

  rc = rte_eth_dev_start(rt->port_id);
  if (rc != 0) {
    *error = cfg.at(p.where) + key + ": starting " + rt->ethdev_name + " failed: " + errtext(rc);
    return false;
  }
  rt->started = true;
  rte_eth_link link{};
  rte_eth_link_get_nowait(rt->port_id, &link);
  log_line(
      "port %s: %s (%s), mac %s, %u queue(s), mtu %u, link %s %u Mb/s, rss %s, "
      "checksums ipv4 %s udp %s rx %s",
      p.name.c_str(), rt->ethdev_name.c_str(), info.driver_name, mac_text(f.mac).c_str(),
      p.queue_count, p.mtu, link.link_status ? "up" : "down", link.link_speed,
      p.queue_count > 1 ? "on" : "off (one queue)", ip_hw ? "hardware" : "software",
      udp_hw ? "hardware" : "software", rx_hw ? "hardware" : "software");
  return true;
}

}  // namespace gtm::dpdk
