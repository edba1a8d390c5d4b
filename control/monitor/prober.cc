#include "control/monitor/prober.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace gtm::control {
namespace {

// A probe reads at most this much of an answer: enough for a status line, headers and a health
// body; a bigger body is judged on its first 16 KiB.
constexpr size_t kMaxReply = 16384;

bool status_in(const MonitorSpec& spec, int status) {
  if (spec.status_ranges.empty()) return status >= 200 && status <= 399;
  for (const auto& [lo, hi] : spec.status_ranges) {
    if (status >= lo && status <= hi) return true;
  }
  return false;
}

}  // namespace

struct Prober::Probe {
  ProbeTarget target;
  ProbeClock::time_point next_start;
  ProbeClock::time_point deadline;
  int fd = -1;  // >= 0 while in flight
  uint64_t timer_seq = 0;  // the live entry in Prober::timers_
  enum class Phase { kConnecting, kSending, kReading } phase = Phase::kConnecting;
  std::string request;
  size_t sent = 0;
  std::string reply;

  void close_socket() {
    if (fd < 0) return;
    // Abortive close (RST): a probe needs no orderly shutdown, and skipping the FIN exchange and
    // TIME_WAIT halves the packets per probe and keeps tens of thousands of sockets per minute
    // from piling up in TIME_WAIT.
    linger abort{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
    close(fd);
    fd = -1;
  }
};

Prober::Prober() { epoll_fd_ = epoll_create1(EPOLL_CLOEXEC); }

Prober::~Prober() {
  for (auto& p : probes_) p->close_socket();
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

size_t Prober::target_count() const { return probes_.size(); }

void Prober::set_targets(std::vector<ProbeTarget> targets, ProbeClock::time_point now) {
  for (auto& p : probes_) p->close_socket();  // closing also removes it from the epoll set
  probes_.clear();
  timers_ = {};
  const size_t n = targets.size();
  for (size_t i = 0; i < n; ++i) {
    auto p = std::make_unique<Probe>();
    p->target = std::move(targets[i]);
    const auto interval = std::chrono::milliseconds(p->target.spec.interval_ms);
    p->next_start = now + interval * static_cast<int64_t>(i) / static_cast<int64_t>(n);
    const auto first = p->next_start;
    probes_.push_back(std::move(p));
    schedule(i, first);
  }
}

void Prober::schedule(size_t index, ProbeClock::time_point at) {
  Probe& p = *probes_[index];
  p.timer_seq = ++timer_seq_;
  timers_.push({at, index, p.timer_seq});
}

ProbeClock::time_point Prober::next_deadline() const {
  while (!timers_.empty() && timers_.top().seq != probes_[timers_.top().index]->timer_seq) {
    timers_.pop();
  }
  return timers_.empty() ? ProbeClock::time_point::max() : timers_.top().at;
}

void Prober::run(ProbeClock::time_point now, std::vector<ProbeResult>* results) {
  if (epoll_fd_ < 0) return;
  // I/O first, so a reply that arrived just before its deadline still counts.
  epoll_event events[256];
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events, 256, 0);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) advance(events[i].data.u64, events[i].events, results);
    if (n < 256) break;
  }
  while (!timers_.empty() && timers_.top().at <= now) {
    const Timer t = timers_.top();
    timers_.pop();
    Probe& p = *probes_[t.index];
    if (t.seq != p.timer_seq) continue;  // superseded
    if (p.fd >= 0) {
      finish(t.index, false, "timeout", results);  // schedules the next start
    } else {
      start(t.index, now, results);
    }
  }
}

void Prober::start(size_t index, ProbeClock::time_point now, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  const auto interval = std::chrono::milliseconds(p.target.spec.interval_ms);
  // Fixed rate; after a stall (the loop was busy) restart from now rather than firing a burst.
  p.next_start += interval;
  if (p.next_start <= now) p.next_start = now + interval;
  p.deadline = now + std::chrono::milliseconds(p.target.spec.timeout_ms);
  schedule(index, p.deadline);
  p.phase = Probe::Phase::kConnecting;
  p.sent = 0;
  p.reply.clear();
  p.request.clear();

  const MonitorSpec& spec = p.target.spec;
  if (spec.type == MonitorSpec::Type::kHttp) {
    p.request = spec.method + " " + spec.path + " HTTP/1.1\r\nHost: " +
                (spec.host.empty() ? p.target.label.substr(0, p.target.label.find(' ')) : spec.host) +
                "\r\nUser-Agent: gtm-monitor\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  } else {
    p.request = spec.send;
  }

  p.fd = socket(p.target.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) {
    finish(index, false, std::string("socket: ") + std::strerror(errno), results);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u64 = index;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.fd, &ev) != 0) {
    finish(index, false, std::string("epoll: ") + std::strerror(errno), results);
    return;
  }
  if (connect(p.fd, reinterpret_cast<const sockaddr*>(&p.target.addr), p.target.addr_len) != 0 &&
      errno != EINPROGRESS) {
    finish(index, false, std::string("connect: ") + std::strerror(errno), results);
  }
  // Connected or in progress: EPOLLOUT reports the outcome either way.
}

void Prober::advance(size_t index, uint32_t events, std::vector<ProbeResult>* results) {
  if (index >= probes_.size()) return;
  Probe& p = *probes_[index];
  if (p.fd < 0) return;
  const MonitorSpec& spec = p.target.spec;

  if (p.phase == Probe::Phase::kConnecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      finish(index, false, std::string("connect: ") + std::strerror(err), results);
      return;
    }
    if (p.request.empty() && spec.expect.empty()) {
      finish(index, true, "connected", results);
      return;
    }
    p.phase = Probe::Phase::kSending;  // with nothing to send, straight through to reading
  }

  if (p.phase == Probe::Phase::kSending) {
    while (p.sent < p.request.size()) {
      const ssize_t n = send(p.fd, p.request.data() + p.sent, p.request.size() - p.sent,
                             MSG_NOSIGNAL);
      if (n > 0) {
        p.sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // EPOLLOUT again later
      finish(index, false, std::string("send: ") + std::strerror(errno), results);
      return;
    }
    p.phase = Probe::Phase::kReading;
    if (spec.type == MonitorSpec::Type::kTcp && spec.expect.empty()) {
      finish(index, true, "connected, sent", results);
      return;
    }
    // Level-triggered EPOLLOUT would fire forever from here on: wait for the reply instead.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = index;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, p.fd, &ev);
    return;
  }

  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
  bool eof = false;
  char buf[4096];
  while (p.reply.size() < kMaxReply) {
    const ssize_t n = recv(p.fd, buf, std::min(sizeof(buf), kMaxReply - p.reply.size()), 0);
    if (n > 0) {
      p.reply.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) eof = true;
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      finish(index, false, std::string("recv: ") + std::strerror(errno), results);
      return;
    }
    break;
  }
  const bool full = eof || p.reply.size() >= kMaxReply;

  if (spec.type == MonitorSpec::Type::kTcp) {
    if (p.reply.find(spec.expect) != std::string::npos) {
      finish(index, true, "reply matched", results);
    } else if (full) {
      finish(index, false, "reply did not contain the expected text", results);
    }
    return;
  }

  // HTTP: judge the status line as soon as it is complete, the body once it holds the text.
  const size_t line_end = p.reply.find("\r\n");
  if (line_end == std::string::npos) {
    if (full) finish(index, false, "no HTTP status line", results);
    return;
  }
  int status = 0;
  if (std::sscanf(p.reply.c_str(), "HTTP/%*d.%*d %3d", &status) != 1) {
    finish(index, false, "no HTTP status line", results);
    return;
  }
  const std::string code = "http " + std::to_string(status);
  if (!status_in(spec, status)) {
    finish(index, false, code, results);
    return;
  }
  if (spec.body_contains.empty()) {
    finish(index, true, code, results);
    return;
  }
  const size_t body = p.reply.find("\r\n\r\n");
  if (body != std::string::npos &&
      p.reply.find(spec.body_contains, body + 4) != std::string::npos) {
    finish(index, true, code + ", body matched", results);
  } else if (full) {
    finish(index, false, code + ", body did not contain the expected text", results);
  }
}

void Prober::finish(size_t index, bool ok, std::string detail, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  p.close_socket();
  schedule(index, p.next_start);
  ++completed_;
  results->push_back({index, ok, std::move(detail)});
}

bool make_probe_address(const std::vector<uint8_t>& address, uint16_t port, sockaddr_storage* out,
                        socklen_t* len, std::string* text) {
  *out = sockaddr_storage{};
  char buf[INET6_ADDRSTRLEN] = {};
  if (address.size() == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, address.data(), 4);
    *len = sizeof(sockaddr_in);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    *text = std::string(buf) + ":" + std::to_string(port);
    return true;
  }
  if (address.size() == 16) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, address.data(), 16);
    *len = sizeof(sockaddr_in6);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    *text = "[" + std::string(buf) + "]:" + std::to_string(port);
    return true;
  }
  return false;
}

}  // namespace gtm::control
