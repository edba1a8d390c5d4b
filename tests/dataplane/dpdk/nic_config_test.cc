#include "dataplane/dpdk/nic_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace gtm::dpdk {
namespace {

const char* kMinimal = R"(main_lcore: 0
ports:
  - name: wan0
    device: "net_pcap0,rx_pcap=in.pcap"
    service_addresses: [198.18.0.1/24]
lcores:
  - {lcore: 1, queues: [{port: wan0, queue: 0}]}
)";

NicConfig load_ok(const std::string& yaml) {
  NicConfig cfg;
  NicConfigError err;
  EXPECT_TRUE(load_nic_config_string(yaml, "nic.yaml", &cfg, &err)) << err.to_string();
  return cfg;
}

// The error message for `yaml`, as "line:column: message".
std::string load_error(const std::string& yaml) {
  NicConfig cfg;
  NicConfigError err;
  if (load_nic_config_string(yaml, "nic.yaml", &cfg, &err)) return "(loaded)";
  return std::to_string(err.line) + ":" + std::to_string(err.column) + ": " + err.message;
}

// kMinimal with `from` replaced by `to`.
std::string edit(const std::string& from, const std::string& to) {
  std::string s = kMinimal;
  const size_t pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

TEST(NicConfigTest, EveryShippedConfigLoads) {
  const std::filesystem::path dir = std::filesystem::path(GTM_SOURCE_DIR) / "nic_configs";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    NicConfig cfg;
    NicConfigError err;
    EXPECT_TRUE(load_nic_config_file(entry.path().string(), &cfg, &err)) << err.to_string();
    ++count;
  }
  // ixgbe, i40e, ice, mlx5, virtio; af_packet, af_xdp, pcap, tap.
  EXPECT_GE(count, 9);
}

TEST(NicConfigTest, HardwareConfigsSayWhatTheyMean) {
  NicConfig cfg;
  NicConfigError err;
  const std::string dir = std::string(GTM_SOURCE_DIR) + "/nic_configs/";
  ASSERT_TRUE(load_nic_config_file(dir + "ixgbe-82599.yaml", &cfg, &err)) << err.to_string();
  ASSERT_EQ(cfg.ports.size(), 1u);
  const PortConfig& p = cfg.ports[0];
  EXPECT_TRUE(p.device_is_pci);
  EXPECT_EQ(p.queue_count, 4);
  EXPECT_EQ(p.rss, RssMode::kUdp);
  EXPECT_EQ(p.exception.route_table, 153u);
  EXPECT_EQ(p.exception.gateway_ipv4, "192.0.2.1");
  ASSERT_EQ(p.service_addresses.size(), 2u);
  EXPECT_EQ(p.service_addresses[0].prefix_len, 24);
  EXPECT_EQ(p.service_addresses[1].family, 6);
  EXPECT_GE(p.mbufs, min_mbufs(p, 4));
  EXPECT_EQ(cfg.main_lcore, 1u);
  EXPECT_EQ(cfg.lcores.size(), 4u);

  ASSERT_TRUE(load_nic_config_file(dir + "i40e-x710.yaml", &cfg, &err)) << err.to_string();
  ASSERT_EQ(cfg.ports.size(), 2u);
  EXPECT_EQ(cfg.ports[1].vlan_count, 1);
  EXPECT_EQ(cfg.ports[1].vlan_id[0], 120);
  EXPECT_EQ(cfg.lcores[0].queues.size(), 2u);

  ASSERT_TRUE(load_nic_config_file(dir + "ice-e810.yaml", &cfg, &err)) << err.to_string();
  EXPECT_EQ(cfg.ports[0].vlan_count, 2);
  EXPECT_EQ(cfg.ports[0].qinq_tpid, 0x88A8);
  EXPECT_EQ(cfg.ports[0].ipv4_checksum, Offload::kHardware);
  EXPECT_EQ(cfg.ports[0].queue_count, 8);

  ASSERT_TRUE(load_nic_config_file(dir + "mlx5-connectx.yaml", &cfg, &err)) << err.to_string();
  EXPECT_TRUE(cfg.ports[0].device_is_pci) << "PCI address with devargs";

  ASSERT_TRUE(load_nic_config_file(dir + "virtio.yaml", &cfg, &err)) << err.to_string();
  EXPECT_EQ(cfg.ports[0].ipv4_checksum, Offload::kSoftware);
  EXPECT_EQ(cfg.ports[0].rss, RssMode::kNone);
}

TEST(NicConfigTest, Defaults) {
  const NicConfig cfg = load_ok(kMinimal);
  const PortConfig& p = cfg.ports[0];
  EXPECT_FALSE(p.device_is_pci);
  EXPECT_EQ(p.mtu, 1500u);
  EXPECT_EQ(p.dns_port, 53);
  EXPECT_EQ(p.exception.kind, ExceptionKind::kTap);
  EXPECT_EQ(p.exception.interface, "gtm-wan0");
  EXPECT_EQ(p.queue_count, 1);
  EXPECT_EQ(p.mbufs, min_mbufs(p, 1));
  EXPECT_EQ(cfg.tx_drain_us, 100u);
  EXPECT_EQ(cfg.idle_sleep_us, 0u);
}

TEST(NicConfigTest, UnknownAndDuplicateKeysAreNamed) {
  EXPECT_EQ(load_error(edit("    device:", "    rx_desc: 5\n    device:")),
            "4:5: unknown key 'rx_desc' in ports[0] (known: name, device, mac, mtu, "
            "rx_descriptors, tx_descriptors, mbufs, mbuf_cache, rss, offloads, vlan, qinq_tpid, "
            "dns_port, service_addresses, exception)");
  EXPECT_EQ(load_error(edit("    device:", "    offloads: {udp_cksum: auto}\n    device:")),
            "4:16: unknown key 'udp_cksum' in ports[0].offloads (known: ipv4_checksum, "
            "udp_checksum, rx_checksum)");
  EXPECT_EQ(load_error(edit("main_lcore: 0", "main_lcore: 0\nmain_lcore: 1")),
            "2:1: duplicate key 'main_lcore' in the NIC configuration");
  EXPECT_EQ(load_error(std::string(kMinimal) + "worker_lcores: 3\n"),
            "8:1: unknown key 'worker_lcores' in the NIC configuration (known: eal, main_lcore, "
            "ports, lcores, tx_drain_us, idle_sleep_us)");
}

TEST(NicConfigTest, QueueOwnership) {
  const std::string twice = edit("  - {lcore: 1, queues: [{port: wan0, queue: 0}]}",
                                 "  - {lcore: 1, queues: [{port: wan0, queue: 0}]}\n"
                                 "  - {lcore: 2, queues: [{port: wan0, queue: 0}]}");
  EXPECT_EQ(load_error(twice),
            "8:25: lcores[1].queues[0]: queue 0 of port 'wan0' is already owned by lcores[0] "
            "(lcore 1)");
  const std::string gap = edit("queue: 0}]}", "queue: 1}]}");
  EXPECT_EQ(load_error(gap),
            "3:5: ports[0]: queue 0 of port 'wan0' is owned by no lcore (queues are numbered 0..1 "
            "without gaps)");
  EXPECT_EQ(load_error(edit("lcore: 1,", "lcore: 0,")),
            "7:13: lcores[0].lcore: 0 is the main lcore (main_lcore), which polls no queue");
  const std::string listed_twice = edit("  - {lcore: 1, queues: [{port: wan0, queue: 0}]}",
                                        "  - {lcore: 1, queues: [{port: wan0, queue: 0}]}\n"
                                        "  - {lcore: 1, queues: [{port: wan0, queue: 1}]}");
  EXPECT_EQ(load_error(listed_twice),
            "8:13: lcores[1].lcore: lcore 1 is listed twice; give one entry all its queues");
  EXPECT_EQ(load_error(edit("{port: wan0, queue", "{port: wan9, queue")),
            "7:32: lcores[0].queues[0].port: no port named 'wan9'");
  const std::string two_queues_no_rss = edit("  - {lcore: 1, queues: [{port: wan0, queue: 0}]}",
                                             "  - {lcore: 1, queues: [{port: wan0, queue: 0}]}\n"
                                             "  - {lcore: 2, queues: [{port: wan0, queue: 1}]}");
  // One queue needs no RSS.
  EXPECT_EQ(load_error(edit("    device:", "    rss: none\n    device:")), "(loaded)");
  std::string no_rss = two_queues_no_rss;
  no_rss.replace(no_rss.find("    device:"), 11, "    rss: none\n    device:");
  EXPECT_EQ(load_error(no_rss),
            "3:5: ports[0].rss: none, but the port has 2 queues; without RSS only queue 0 would "
            "receive");
  const std::string second_port_idle =
      edit("lcores:",
           "  - name: wan1\n    device: net_null0\n    service_addresses: [192.0.2.1]\nlcores:");
  EXPECT_EQ(load_error(second_port_idle),
            "6:5: ports[1]: port 'wan1' has no queue; give one to an lcore (lcores[].queues)");
}

TEST(NicConfigTest, ValuesAreChecked) {
  EXPECT_EQ(load_error(edit("\"net_pcap0,rx_pcap=in.pcap\"", "eth0")),
            "4:13: ports[0].device must be a PCI address (0000:03:00.0) or a vdev string "
            "'net_<driver><n>[,args]', got 'eth0'");
  EXPECT_EQ(load_error(edit("    device:", "    mac: 03:00:00:00:00:01\n    device:")),
            "4:10: ports[0].mac must be a unicast address (lowest bit of the first octet clear)");
  EXPECT_EQ(
      load_error(edit("    device:", "    mac: 02:00:00:00:01\n    device:")),
      "4:10: ports[0].mac must be a MAC address like 02:00:00:00:00:01, got '02:00:00:00:01'");
  EXPECT_EQ(load_error(edit("[198.18.0.1/24]", "[198.18.0.0/24]")),
            "5:25: ports[0].service_addresses[0]: '198.18.0.0/24' is a network address; give the "
            "host address with its prefix");
  EXPECT_EQ(
      load_error(edit("[198.18.0.1/24]", "[198.18.0.1/33]")),
      "5:25: ports[0].service_addresses[0]: prefix length must be 1..32, got '198.18.0.1/33'");
  EXPECT_EQ(load_error(edit("[198.18.0.1/24]", "[198.18.0.1, 198.18.0.1/24]")),
            "5:37: ports[0].service_addresses[1]: duplicate address '198.18.0.1/24'");
  EXPECT_EQ(load_error(edit("[198.18.0.1/24]", "[]")),
            "5:24: ports[0].service_addresses must not be empty");
  EXPECT_EQ(load_error(edit("    device:", "    mtu: 1000\n    device:")),
            "4:10: ports[0].mtu must be an integer in 1280..9000, got '1000'");
  EXPECT_EQ(load_error(edit("    device:", "    vlan: 4095\n    device:")),
            "4:11: ports[0].vlan must be an integer in 1..4094, got '4095'");
  EXPECT_EQ(load_error(edit("    device:", "    qinq_tpid: \"0x88a8\"\n    device:")),
            "4:16: ports[0].qinq_tpid needs two VLAN tags (vlan: [outer, inner])");
  EXPECT_EQ(load_error(edit("    device:", "    mbufs: 1024\n    mbuf_cache: 512\n    device:")),
            "4:12: ports[0].mbufs: 1024 is too few for 1 queue(s) of 1024 rx + 1024 tx descriptors "
            "and 1 lcore cache(s) of 512; need at least 3488");
  EXPECT_EQ(load_error(edit("    device:", "    offloads: {udp_checksum: yes}\n    device:")),
            "4:30: ports[0].offloads.udp_checksum must be one of auto, hardware, software; got "
            "'yes'");
  EXPECT_EQ(load_error(edit("main_lcore: 0", "main_lcore: 0\neal: {args: [-l, \"0-3\"]}")),
            "2:14: eal.args[0]: '-l' is derived from main_lcore, lcores and ports; do not give it "
            "here");
}

TEST(NicConfigTest, ExceptionPath) {
  const auto with_exception = [](const std::string& block) {
    return edit("    service_addresses: [198.18.0.1/24]",
                "    service_addresses: [198.18.0.1/24]\n    exception: " + block);
  };
  NicConfig cfg = load_ok(with_exception("{kind: vdev, device: \"net_pcap1,tx_pcap=k.pcap\"}"));
  EXPECT_EQ(cfg.ports[0].exception.kind, ExceptionKind::kVdev);
  EXPECT_EQ(cfg.ports[0].exception.device, "net_pcap1,tx_pcap=k.pcap");
  cfg = load_ok(with_exception("{kind: none}"));
  EXPECT_EQ(cfg.ports[0].exception.kind, ExceptionKind::kNone);

  EXPECT_EQ(load_error(with_exception("{kind: vdev}")),
            "6:16: missing key 'device' in ports[0].exception (kind: vdev)");
  EXPECT_EQ(load_error(with_exception("{interface: this-name-is-too-long}")),
            "6:28: ports[0].exception.interface must be an interface name of 1..15 letters, "
            "digits, '-', '_', '.'; got 'this-name-is-too-long'");
  EXPECT_EQ(load_error(with_exception("{gateway_ipv4: 198.18.0.254}")),
            "6:16: ports[0].exception: a gateway needs 'route_table' (the policy-routing table gtm "
            "fills)");
  EXPECT_EQ(load_error(with_exception("{gateway_ipv4: \"2001:db8::1\", route_table: 7}")),
            "6:31: ports[0].exception.gateway_ipv4 must be an IPv4 address");
  EXPECT_EQ(load_error(with_exception("{gateway_ipv6: \"2001:db8::1\", route_table: 7}")),
            "3:5: ports[0].exception.gateway_ipv6 is set but the port has no IPv6 service address");
  EXPECT_EQ(load_error(with_exception("{gateway_ipv4: 198.18.0.254, route_table: 254}")),
            "6:58: ports[0].exception.route_table must not be one of the kernel's own tables (253 "
            "default, 254 main, 255 local)");
  EXPECT_EQ(load_error(with_exception("{kind: tap, device: net_null0}")),
            "6:36: ports[0].exception.device is for kind: vdev");
}

TEST(NicConfigTest, BrokenFilesAreRefused) {
  EXPECT_EQ(load_error(""), "0:0: the NIC configuration is empty");
  EXPECT_EQ(load_error(std::string(kMinimal) + "---\nmain_lcore: 1\n"),
            "9:1: one YAML document per NIC configuration");
  EXPECT_NE(load_error("ports: [").find("1:"), std::string::npos);
  NicConfig cfg;
  NicConfigError err;
  EXPECT_FALSE(load_nic_config_file("/nonexistent/nic.yaml", &cfg, &err));
  EXPECT_EQ(err.to_string(), "/nonexistent/nic.yaml: cannot open: No such file or directory");
}

}  // namespace
}  // namespace gtm::dpdk
