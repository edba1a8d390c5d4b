// Runs health probes for many targets from one thread: every connection-style probe (TCP, HTTP(S),
// UDP, DNS, external command) is a non-blocking socket (or pidfd) registered with one epoll
// instance; ICMP echo and half-open TCP probes share one raw socket per family in that same epoll
// (raw_sockets.h), so gtm-control's poll loop drives thousands of probes without a thread per
// probe. The caller polls fd() for POLLIN, wakes at next_deadline() at the latest, and calls run(),
// which starts the probes that are due, advances the ones in flight, fails the ones past their
// timeout, and returns verdicts.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "control/monitor/monitor_spec.h"
#include "control/monitor/raw_sockets.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace gtm::control {

using ProbeClock = std::chrono::steady_clock;

struct ProbeTarget {
  sockaddr_storage addr{};  // the member address with the monitor's port
  socklen_t addr_len = 0;
  MonitorSpec spec;
  std::string host;   // the member address as text: "192.0.2.10", "2001:db8::1"
  std::string label;  // "192.0.2.10:80 (web)", for reasons and logs
};

struct ProbeResult {
  size_t target = 0;  // index into the targets given to set_targets()
  bool ok = false;
  std::string detail;  // "connected", "http 200", "connect: Connection refused", "timeout", ...
};

class Prober {
 public:
  Prober();
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  int fd() const { return epoll_fd_; }

  // Replaces the targets; probes in flight are abandoned. First probes start spread over one
  // interval so a large configuration does not open every socket in the same millisecond.
  // Fails, changing nothing, when a raw socket the targets need cannot be opened (no
  // CAP_NET_RAW): *error says which and why.
  bool set_targets(std::vector<ProbeTarget> targets, ProbeClock::time_point now,
                   std::string* error);
  size_t target_count() const;

  // Handles the probes' I/O, then the timers due at `now` (timeouts, next starts), appending
  // the verdicts reached. run_io and run_timers are its two halves: a caller that acts on
  // verdicts at once (gtm-control publishes health changes) takes those of the I/O before
  // starting a burst of new probes, which at scale costs milliseconds of connects.
  void run(ProbeClock::time_point now, std::vector<ProbeResult>* results);
  void run_io(std::vector<ProbeResult>* results);
  void run_timers(ProbeClock::time_point now, std::vector<ProbeResult>* results);
  uint64_t completed() const { return completed_; }  // probes that reached a verdict
  ProbeClock::time_point next_deadline() const;

 private:
  struct Probe;
  void start(size_t index, ProbeClock::time_point now, std::vector<ProbeResult>* results);
  void start_datagram(size_t index, std::vector<ProbeResult>* results);
  void advance_datagram(size_t index, std::vector<ProbeResult>* results);
  void start_external(size_t index, std::vector<ProbeResult>* results);
  void advance_external(size_t index, std::vector<ProbeResult>* results);
  void start_echo(size_t index, std::vector<ProbeResult>* results);
  void start_half_open(size_t index, ProbeClock::time_point now, std::vector<ProbeResult>* results);
  void receive_raw(RawSockets::Kind kind, std::vector<ProbeResult>* results);
  void expire(size_t index, std::vector<ProbeResult>* results);
  void start_connect(size_t index, std::vector<ProbeResult>* results);
  void advance_connect(size_t index, uint32_t events, std::vector<ProbeResult>* results);
  void recycle(Probe& p);
  void advance(size_t index, int fd, uint32_t events, std::vector<ProbeResult>* results);
  void finish(size_t index, bool ok, std::string detail, std::vector<ProbeResult>* results);
  void schedule(size_t index, ProbeClock::time_point at);
  void watch(size_t index, uint32_t events);
  bool start_tls(size_t index, std::string* error);
  SSL_CTX* tls_context(const MonitorSpec& spec, std::string* error);
  // Send/receive through TLS when the probe has it. Return > 0 bytes, 0 on end of stream, -1 when
  // the socket must become readable/writable first (*want_write says which), -2 on error (*error).
  ssize_t probe_send(size_t index, bool* want_write, std::string* error);
  ssize_t probe_recv(size_t index, char* buf, size_t len, bool* want_write, std::string* error);

  // Each probe has exactly one pending timer: its next start while idle, its deadline in flight.
  // A min-heap keeps run() and next_deadline() O(log n) per event instead of scanning every
  // target on every wake-up (that scan cost a tenth of a core at 10,000 targets). Superseded
  // entries stay in the heap and are skipped by their sequence number.
  struct Timer {
    ProbeClock::time_point at;
    size_t index;
    uint64_t seq;
    bool operator>(const Timer& o) const { return at > o.at; }
  };
  mutable std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  uint64_t timer_seq_ = 0;

  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Probe>> probes_;
  RawSockets raw_;
  // Disconnected TCP sockets for connect-only probes to reuse, by family (0: IPv4, 1: IPv6).
  // Each is still in the epoll set, its one-shot entry disarmed.
  std::vector<int> idle_sockets_[2];
  uint16_t echo_seq_ = 0;  // ICMP sequence numbers, for whoever watches the wire
  // One TLS context per (verify, CA file), created on first use and kept.
  std::vector<std::pair<std::string, SSL_CTX*>> tls_contexts_;
  uint64_t completed_ = 0;
};

// Whether a DNS reply answers the monitor's query with the expected rcode (and address).
bool judge_dns_reply(const MonitorSpec& spec, const uint8_t* data, size_t len, std::string* detail);

// Builds the socket address of a member (4 or 16 address bytes) and a port; *host is the address
// as text.
bool make_probe_address(const std::vector<uint8_t>& address, uint16_t port, sockaddr_storage* out,
                        socklen_t* len, std::string* host);

// "192.0.2.10:80", "[2001:db8::1]:80".
std::string endpoint_text(const ProbeTarget& target);

}  // namespace gtm::control
