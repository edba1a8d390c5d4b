// gtm-dataplane --io dpdk: the kernel-bypass backend. Everything but the packet I/O is shared with
// the socket backend: the control channel (PUBLISH, STATUS), the snapshot slot and its RCU, the
// engine, and the TCP server, which answers DNS over TCP that reaches the kernel through the
// exception interface (plus a UDP socket there for what the kernel reassembled from fragments).
#pragma once

#include <signal.h>

#include <string>
#include <vector>

#include "dataplane/io/tcp_server.h"

namespace gtm::dpdk {

struct BackendOptions {
  std::string nic_config;
  std::vector<std::string> eal_args;  // from the command line, after "--"
  std::string run_dir;
  io::TcpOptions tcp;
};

// Runs until one of `stop_signals` (blocked by the caller) arrives. Returns the exit status:
// 0 after a clean stop, 1 on a start-up failure, 2 for a configuration refused.
int run_backend(const BackendOptions& options, const sigset_t& stop_signals);

}  // namespace gtm::dpdk
