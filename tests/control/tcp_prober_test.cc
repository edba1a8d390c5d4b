// TCP connect probes on loopback, many rounds: their sockets are disconnected and reused between
// probes (Prober::recycle), so every outcome (connected, refused, timed out) must leave a socket
// that gives the next probe, of any target, its own right answer.
#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "control/monitor/prober.h"

namespace gtm::control {
namespace {

// A TCP socket on 127.0.0.1 with a kernel-chosen port.
struct Port {
  int fd = -1;
  uint16_t port = 0;
  explicit Port(int backlog) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
    if (backlog >= 0) {
      EXPECT_EQ(listen(fd, backlog), 0);
    }
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Port() { close(fd); }
  void accept_all() {
    for (int c; (c = accept(fd, nullptr, nullptr)) >= 0;) close(c);
  }
};

ProbeTarget tcp_target(uint16_t port) {
  ProbeTarget t;
  EXPECT_TRUE(make_probe_address({127, 0, 0, 1}, port, &t.addr, &t.addr_len, &t.host));
  t.spec.name = "tcp";
  t.spec.type = MonitorSpec::Type::kTcp;
  t.spec.port = port;
  t.spec.interval_ms = 100;
  t.spec.timeout_ms = 50;
  t.label = endpoint_text(t);
  return t;
}

TEST(TcpProber, ReusedSocketsGiveEveryProbeItsOwnVerdict) {
  Port open_port(64);
  Port closed_port(-1);  // bound, not listening: refused
  // A listener whose accept queue is full drops SYNs: the probe times out.
  Port full_port(0);
  std::vector<int> fillers;
  for (int i = 0; i < 2; ++i) {
    const int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(full_port.port);
    connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    fillers.push_back(c);
  }
  usleep(50000);

  Prober prober;
  std::string error;
  ASSERT_TRUE(prober.set_targets(
      {tcp_target(open_port.port), tcp_target(closed_port.port), tcp_target(full_port.port)},
      ProbeClock::now(), &error))
      << error;
  std::map<size_t, std::map<std::string, int>> details;
  const auto end = ProbeClock::now() + std::chrono::milliseconds(1500);
  while (ProbeClock::now() < end) {
    pollfd p{prober.fd(), POLLIN, 0};
    poll(&p, 1, 5);
    std::vector<ProbeResult> results;
    prober.run(ProbeClock::now(), &results);
    for (const ProbeResult& r : results) {
      ++details[r.target][r.detail];
      EXPECT_EQ(r.ok, r.target == 0) << r.target << ": " << r.detail;
    }
    open_port.accept_all();
  }
  EXPECT_EQ(details[0].size(), 1u);
  EXPECT_GE(details[0]["connected"], 10);
  EXPECT_EQ(details[1].size(), 1u);
  EXPECT_GE(details[1]["connect: Connection refused"], 10);
  EXPECT_EQ(details[2].size(), 1u);
  EXPECT_GE(details[2]["timeout"], 10);
  for (int c : fillers) close(c);
}

}  // namespace
}  // namespace gtm::control
