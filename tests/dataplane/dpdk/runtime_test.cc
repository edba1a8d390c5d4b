// The start-up checks that need the machine but not the EAL: lcores that do not exist here, and
// the EAL arguments derived from a configuration.
#include "dataplane/dpdk/runtime.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <string>

namespace gtm::dpdk {
namespace {

NicConfig load(const std::string& file) {
  NicConfig cfg;
  NicConfigError err;
  EXPECT_TRUE(
      load_nic_config_file(std::string(GTM_SOURCE_DIR) + "/nic_configs/" + file, &cfg, &err))
      << err.to_string();
  return cfg;
}

TEST(RuntimeTest, LcoresThatDoNotExistAreRefusedByKey) {
  NicConfig cfg = load("pcap.yaml");
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  int last = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) last = cpu;
  }
  ASSERT_GE(last, 0);
  cfg.main_lcore = 0;
  cfg.lcores[0].lcore = static_cast<uint32_t>(last + 1);  // one past the last CPU we may use
  std::string error;
  EXPECT_FALSE(check_lcores(cfg, &error));
  EXPECT_NE(error.find("pcap.yaml:21:13: lcores[0].lcore: lcore " + std::to_string(last + 1) +
                       " does not exist here (this process may run on CPUs "),
            std::string::npos)
      << error;
  cfg.lcores[0].lcore = 1000;
  EXPECT_FALSE(check_lcores(cfg, &error));
  EXPECT_NE(error.find("lcores[0].lcore: lcore 1000 is beyond this DPDK build's"),
            std::string::npos)
      << error;
}

TEST(RuntimeTest, EalArgumentsComeFromTheConfiguration) {
  const NicConfig pcap = load("pcap.yaml");
  EXPECT_EQ(
      eal_arguments(pcap, {"--file-prefix", "x"}),
      (std::vector<std::string>{"gtm-dataplane", "-l", "0,1", "--main-lcore", "0", "--no-pci",
                                "--no-huge", "-m", "256", "--no-shconf", "--file-prefix", "x"}));
  const NicConfig x710 = load("i40e-x710.yaml");
  EXPECT_EQ(eal_arguments(x710, {}),
            (std::vector<std::string>{"gtm-dataplane", "-l", "1,2,3,4,5", "--main-lcore", "1", "-a",
                                      "0000:3b:00.0", "-a", "0000:3b:00.1", "-n", "4",
                                      "--file-prefix", "gtm"}));
}

}  // namespace
}  // namespace gtm::dpdk
