// Runs health probes (TCP connect with optional send/expect, HTTP) for many targets from one
// thread: every probe is a non-blocking socket registered with one epoll instance, so gtm-control's
// poll loop drives thousands of probes without a thread per probe. The caller polls fd() for
// POLLIN, wakes at next_deadline() at the latest, and calls run(), which starts the probes that are
// due, advances the ones in flight, fails the ones past their timeout, and returns verdicts.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/monitor/monitor_spec.h"

namespace gtm::control {

using ProbeClock = std::chrono::steady_clock;

struct ProbeTarget {
  sockaddr_storage addr{};  // the member address with the monitor's port
  socklen_t addr_len = 0;
  MonitorSpec spec;
  std::string label;        // "192.0.2.10:80 (web)", for reasons and logs
};

struct ProbeResult {
  size_t target = 0;   // index into the targets given to set_targets()
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
  void set_targets(std::vector<ProbeTarget> targets, ProbeClock::time_point now);
  size_t target_count() const;

  void run(ProbeClock::time_point now, std::vector<ProbeResult>* results);
  ProbeClock::time_point next_deadline() const;

 private:
  struct Probe;
  void start(size_t index, ProbeClock::time_point now, std::vector<ProbeResult>* results);
  void advance(size_t index, uint32_t events, std::vector<ProbeResult>* results);
  void finish(size_t index, bool ok, std::string detail, std::vector<ProbeResult>* results);

  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Probe>> probes_;
};

// Builds the socket address of a member (4 or 16 address bytes) and a port.
bool make_probe_address(const std::vector<uint8_t>& address, uint16_t port, sockaddr_storage* out,
                        socklen_t* len, std::string* text);

}  // namespace gtm::control
