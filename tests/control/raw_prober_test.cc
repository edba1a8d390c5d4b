// The raw-socket probes against the loopback interface: ICMP echo and half-open TCP through the
// prober, and the socket filters seen from the raw sockets themselves. Needs CAP_NET_RAW (the
// suite runs as root); without it every test here is skipped with a message, never passed.
#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "control/monitor/prober.h"
#include "control/monitor/raw_sockets.h"

namespace gtm::control {
namespace {

bool have_net_raw() {
  const int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (fd < 0) return false;
  close(fd);
  return true;
}

bool have_ipv6_loopback() {
  const int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

#define REQUIRE_NET_RAW()                                      \
  do {                                                         \
    if (!have_net_raw()) {                                     \
      GTEST_SKIP() << "no CAP_NET_RAW: raw probes cannot run"; \
    }                                                          \
  } while (0)

// A TCP socket on 127.0.0.1 or [::1], port chosen by the kernel: listening, or only bound (a
// closed port that nobody else can take while the test runs).
struct LocalPort {
  int fd = -1;
  uint16_t port = 0;
  LocalPort(bool v6, bool listening) {
    fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*a);
    }
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
    if (listening) {
      EXPECT_EQ(listen(fd, 16), 0);
    }
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);  // same offset in sockaddr_in6
  }
  ~LocalPort() { close(fd); }
};

ProbeTarget target(const char* address, MonitorSpec spec) {
  ProbeTarget t;
  std::vector<uint8_t> bytes(std::strchr(address, ':') ? 16 : 4);
  EXPECT_EQ(inet_pton(bytes.size() == 16 ? AF_INET6 : AF_INET, address, bytes.data()), 1);
  EXPECT_TRUE(make_probe_address(bytes, spec.port, &t.addr, &t.addr_len, &t.host));
  t.label = t.host;
  t.spec = std::move(spec);
  return t;
}

MonitorSpec spec_of(MonitorSpec::Type type, uint16_t port = 0) {
  MonitorSpec s;
  s.name = "m";
  s.type = type;
  s.port = port;
  s.interval_ms = 200;  // first probes start spread over one interval
  s.timeout_ms = 150;
  return s;
}

// Runs the prober until every target has a first verdict (or 3 s pass); the verdicts by target.
std::vector<ProbeResult> first_verdicts(std::vector<ProbeTarget> targets) {
  Prober prober;
  std::string error;
  const size_t n = targets.size();
  EXPECT_TRUE(prober.set_targets(std::move(targets), ProbeClock::now(), &error)) << error;
  std::vector<ProbeResult> by_target(n);
  std::vector<bool> seen(n, false);
  size_t done = 0;
  const auto give_up = ProbeClock::now() + std::chrono::seconds(3);
  while (done < n && ProbeClock::now() < give_up) {
    pollfd p{prober.fd(), POLLIN, 0};
    poll(&p, 1, 10);
    std::vector<ProbeResult> results;
    prober.run(ProbeClock::now(), &results);
    for (ProbeResult& r : results) {
      if (r.target < n && !seen[r.target]) {
        seen[r.target] = true;
        by_target[r.target] = std::move(r);
        ++done;
      }
    }
  }
  EXPECT_EQ(done, n) << "some targets had no verdict";
  return by_target;
}

TEST(RawProber, EchoFromLoopbackAddresses) {
  REQUIRE_NET_RAW();
  MonitorSpec all = spec_of(MonitorSpec::Type::kIcmp);
  all.count = 4;
  all.max_loss_percent = 0;
  std::vector<ProbeTarget> targets = {target("127.0.0.1", all), target("127.3.2.1", all)};
  if (have_ipv6_loopback()) targets.push_back(target("::1", all));
  const std::vector<ProbeResult> r = first_verdicts(targets);
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_TRUE(r[i].ok) << targets[i].host << ": " << r[i].detail;
    EXPECT_EQ(r[i].detail, "4/4 echo replies");
  }
}

TEST(RawProber, EchoVerdictComesAsSoonAsEnoughRepliesAreIn) {
  REQUIRE_NET_RAW();
  MonitorSpec half = spec_of(MonitorSpec::Type::kIcmp);
  half.count = 4;
  half.max_loss_percent = 50;  // 2 of 4 replies pass
  const std::vector<ProbeResult> r = first_verdicts({target("127.0.0.1", half)});
  ASSERT_TRUE(r[0].ok) << r[0].detail;
  EXPECT_EQ(r[0].detail, "2/4 echo replies");
}

TEST(RawProber, HalfOpenTellsListeningFromClosedPorts) {
  REQUIRE_NET_RAW();
  std::vector<bool> families = {false};
  if (have_ipv6_loopback()) families.push_back(true);
  for (bool v6 : families) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    LocalPort open_port(v6, true);
    LocalPort closed_port(v6, false);
    const char* host = v6 ? "::1" : "127.0.0.1";
    const std::vector<ProbeResult> r =
        first_verdicts({target(host, spec_of(MonitorSpec::Type::kTcpHalfOpen, open_port.port)),
                        target(host, spec_of(MonitorSpec::Type::kTcpHalfOpen, closed_port.port))});
    EXPECT_TRUE(r[0].ok) << r[0].detail;
    EXPECT_EQ(r[0].detail, "syn-ack");
    EXPECT_FALSE(r[1].ok);
    EXPECT_EQ(r[1].detail, "rst: port closed");
    // Our kernel answered the SYN-ACK with a RST: nothing reached the accept queue.
    EXPECT_LT(accept(open_port.fd, nullptr, nullptr), 0);
    EXPECT_EQ(errno, EAGAIN);
  }
}

// recv() on a raw socket without waiting: whether anything passed its filter.
bool something_queued(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 50) == 1;
}

TEST(RawSocketFilters, OnlyRepliesToOurOwnProbesPass) {
  REQUIRE_NET_RAW();
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  RawSockets ours;
  RawSockets theirs;  // another prober on the same host: another identifier, another port block
  std::string error;
  ASSERT_TRUE(ours.open(RawSockets::kIcmp4, ep, 1, &error)) << error;
  ASSERT_TRUE(ours.open(RawSockets::kTcp4, ep, 2, &error)) << error;
  ASSERT_TRUE(theirs.open(RawSockets::kIcmp4, ep, 3, &error)) << error;
  ASSERT_TRUE(theirs.open(RawSockets::kTcp4, ep, 4, &error)) << error;
  ASSERT_NE(ours.ident(), theirs.ident());  // 1 in 65536 runs would collide: rerun then
  ASSERT_NE(ours.port(0), theirs.port(0));

  const sockaddr_storage loopback = target("127.0.0.1", spec_of(MonitorSpec::Type::kIcmp)).addr;
  // Their ping, and an ordinary TCP handshake on loopback, reach neither queue of ours.
  uint32_t sent = 0;
  ASSERT_EQ(theirs.send_echoes(loopback, {theirs.cookie(), 0, 1, 0}, 1, 1, &sent), 0);
  EXPECT_TRUE(something_queued(theirs.fd(RawSockets::kIcmp4)));
  EXPECT_FALSE(something_queued(ours.fd(RawSockets::kIcmp4)));
  LocalPort listener(false, true);
  {
    const int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to = reinterpret_cast<const sockaddr_in&>(loopback);
    to.sin_port = htons(listener.port);
    ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
    close(c);
  }
  EXPECT_FALSE(something_queued(ours.fd(RawSockets::kTcp4)));
  EXPECT_FALSE(something_queued(theirs.fd(RawSockets::kTcp4)));

  // Our own ping and SYN come back to us, parsed, and only to us.
  int echoes = 0;
  ASSERT_EQ(ours.send_echoes(loopback, {ours.cookie(), 5, 9, 0}, 1, 2, &sent), 0);
  ASSERT_TRUE(something_queued(ours.fd(RawSockets::kIcmp4)));
  ours.receive_echo(RawSockets::kIcmp4,
                    [&](const probe_packets::EchoTag& tag, const sockaddr_storage& from) {
                      ++echoes;
                      EXPECT_EQ(tag.target, 5u);
                      EXPECT_EQ(tag.serial, 9u);
                      EXPECT_TRUE(same_address(from, loopback));
                    });
  EXPECT_EQ(echoes, 1);

  sockaddr_storage source{};
  ASSERT_TRUE(route_source(loopback, &source, &error)) << error;
  const uint32_t seq = probe_packets::syn_sequence(3, 1, ours.secret());
  ASSERT_EQ(ours.send_syn(source, loopback, ours.port(0), listener.port, seq), 0);
  ASSERT_TRUE(something_queued(ours.fd(RawSockets::kTcp4)));
  int replies = 0;
  ours.receive_tcp(RawSockets::kTcp4,
                   [&](const probe_packets::TcpReply& reply, const sockaddr_storage&) {
                     ++replies;
                     EXPECT_TRUE(reply.syn_ack);
                     EXPECT_EQ(reply.ack, seq + 1);
                     EXPECT_EQ(reply.dport, ours.port(0));
                   });
  EXPECT_EQ(replies, 1);
  EXPECT_FALSE(something_queued(theirs.fd(RawSockets::kTcp4)));
  close(ep);
}

}  // namespace
}  // namespace gtm::control
