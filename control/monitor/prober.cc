#include "control/monitor/prober.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
// ldns/common.h defines bool and false as macros (breaking the C++ headers after it) unless
// stdbool.h was included first.
// clang-format off
#include <stdbool.h>
#include <ldns/ldns.h>
// clang-format on
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace gtm::control {
namespace {

// A probe reads at most this much of an answer: enough for a status line, headers and a health
// body; a bigger body is judged on its first 16 KiB.
constexpr size_t kMaxReply = 16384;

// epoll data of the raw sockets: this bit plus the RawSockets::Kind. Probes' sockets carry their
// index and the descriptor (probe_data), so an event that was queued for a socket the probe has
// since given up cannot be taken for news of the socket it uses now.
constexpr uint64_t kRawTag = uint64_t{1} << 63;

uint64_t probe_data(size_t index, int fd) {
  return uint64_t{static_cast<uint32_t>(fd)} << 32 | static_cast<uint32_t>(index);
}

// Idle connect-probe sockets kept per family (beyond that they are closed): enough for the
// probes that are in flight at once, which is few while targets answer within microseconds.
constexpr size_t kMaxIdleSockets = 1024;

// A plain TCP connect probe (nothing to send or expect): its socket is reused (Prober::recycle).
bool is_connect_only(const MonitorSpec& spec) {
  return spec.type == MonitorSpec::Type::kTcp && spec.send.empty() && spec.expect.empty();
}

bool is_datagram(const MonitorSpec& spec) {
  return spec.type == MonitorSpec::Type::kUdp || spec.type == MonitorSpec::Type::kDns;
}

// icmp: whether `replies` of the probe's `count` requests are enough (the loss within
// max_loss_percent).
bool echo_loss_ok(const MonitorSpec& spec, uint32_t replies) {
  return uint64_t{spec.count - replies} * 100 <= uint64_t{spec.count} * spec.max_loss_percent;
}

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
  bool in_flight = false;  // started, no verdict yet
  int fd = -1;             // the probe's own socket (>= 0 while in flight), not for raw probes
  bool reusable = false;   // fd is a connect-only socket that goes back to the idle pool
  SSL* ssl = nullptr;      // https probes, from the end of the TCP connect
  pid_t child = -1;        // external probes: the running command; fd is then its pidfd
  uint64_t timer_seq = 0;  // the live entry in Prober::timers_
  enum class Phase { kConnecting, kTlsHandshake, kSending, kReading } phase = Phase::kConnecting;
  std::string request;
  size_t sent = 0;
  std::string reply;
  // icmp and tcp-half-open: replies name the probe they answer by its serial.
  uint32_t serial = 0;
  uint64_t echo_replies = 0;  // icmp: bit k = reply to request k came
  uint32_t echo_received = 0;
  uint16_t sport = 0;  // tcp-half-open: this probe's source port
  // tcp-half-open: the local address the SYN's checksum covers, looked up from the routing table
  // at the first probe and again after a timeout (at most every kSourceRefresh).
  sockaddr_storage source{};
  bool have_source = false;
  bool refresh_source = false;
  ProbeClock::time_point source_at;

  void close_socket() {
    if (ssl != nullptr) SSL_free(ssl);  // no close_notify: the reset below ends it anyway
    ssl = nullptr;
    if (child > 0) {
      // Timed out or abandoned: the command must not outlive its verdict.
      kill(child, SIGKILL);
      waitpid(child, nullptr, 0);
      child = -1;
      close(fd);
      fd = -1;
      return;
    }
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

Prober::Prober() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
}

Prober::~Prober() {
  for (auto& p : probes_) p->close_socket();
  for (std::vector<int>& idle : idle_sockets_) {
    for (int fd : idle) close(fd);
  }
  for (auto& [key, ctx] : tls_contexts_) SSL_CTX_free(ctx);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

namespace {

std::string tls_error_text() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "tls: handshake failed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return std::string("tls: ") + buf;
}

}  // namespace

SSL_CTX* Prober::tls_context(const MonitorSpec& spec, std::string* error) {
  const std::string key = (spec.verify ? "verify:" : "noverify:") + spec.ca_file;
  for (auto& [k, ctx] : tls_contexts_) {
    if (k == key) return ctx;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    *error = tls_error_text();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  // Many servers close right after answering, without close_notify: that ends the reply, it is
  // not a failure of the member (a truncated status line or body still fails on its own).
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  if (spec.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const bool loaded = spec.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                             : SSL_CTX_load_verify_locations(
                                                   ctx, spec.ca_file.c_str(), nullptr) == 1;
    if (!loaded) {
      *error = "tls: cannot load CA " + (spec.ca_file.empty() ? "store" : spec.ca_file);
      SSL_CTX_free(ctx);
      ERR_clear_error();
      return nullptr;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  tls_contexts_.emplace_back(key, ctx);
  return ctx;
}

bool Prober::start_tls(size_t index, std::string* error) {
  Probe& p = *probes_[index];
  const MonitorSpec& spec = p.target.spec;
  SSL_CTX* ctx = tls_context(spec, error);
  if (ctx == nullptr) return false;
  p.ssl = SSL_new(ctx);
  if (p.ssl == nullptr || SSL_set_fd(p.ssl, p.fd) != 1) {
    *error = tls_error_text();
    return false;
  }
  const std::string& sni = !spec.sni.empty() ? spec.sni : spec.host;
  if (!sni.empty()) SSL_set_tlsext_host_name(p.ssl, sni.c_str());
  if (spec.verify) {
    if (!spec.host.empty()) {
      SSL_set1_host(p.ssl, spec.host.c_str());
    } else {
      // No name to check: the certificate must carry the member's address.
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p.ssl), p.target.host.c_str());
    }
  }
  return true;
}

ssize_t Prober::probe_send(size_t index, bool* want_write, std::string* error) {
  Probe& p = *probes_[index];
  const char* data = p.request.data() + p.sent;
  const size_t len = p.request.size() - p.sent;
  if (p.ssl == nullptr) {
    const ssize_t n = send(p.fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EINTR) {
      *want_write = true;
      return -1;
    }
    *error = std::string("send: ") + std::strerror(errno);
    return -2;
  }
  const int n = SSL_write(p.ssl, data, static_cast<int>(len));
  if (n > 0) return n;
  const int e = SSL_get_error(p.ssl, n);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    *want_write = e == SSL_ERROR_WANT_WRITE;
    return -1;
  }
  *error = tls_error_text();
  return -2;
}

ssize_t Prober::probe_recv(size_t index, char* buf, size_t len, bool* want_write,
                           std::string* error) {
  Probe& p = *probes_[index];
  if (p.ssl == nullptr) {
    const ssize_t n = recv(p.fd, buf, len, 0);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EINTR) {
      *want_write = false;
      return -1;
    }
    *error = std::string("recv: ") + std::strerror(errno);
    return -2;
  }
  const int n = SSL_read(p.ssl, buf, static_cast<int>(len));
  if (n > 0) return n;
  const int e = SSL_get_error(p.ssl, n);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    *want_write = e == SSL_ERROR_WANT_WRITE;
    return -1;
  }
  // A clean close_notify, or a server that just closes after answering (common): end of stream.
  if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
    ERR_clear_error();
    return 0;
  }
  *error = tls_error_text();
  return -2;
}

void Prober::watch(size_t index, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = probe_data(index, probes_[index]->fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, probes_[index]->fd, &ev);
}

size_t Prober::target_count() const {
  return probes_.size();
}

bool Prober::set_targets(std::vector<ProbeTarget> targets, ProbeClock::time_point now,
                         std::string* error) {
  if (epoll_fd_ < 0) {
    *error = "epoll_create1 failed";
    return false;
  }
  if (targets.size() >= probe_packets::kMaxHalfOpenTargets) {
    *error = "too many probe targets (" + std::to_string(targets.size()) + ")";
    return false;
  }
  for (const ProbeTarget& t : targets) {
    const bool v6 = t.addr.ss_family == AF_INET6;
    RawSockets::Kind kind;
    if (t.spec.type == MonitorSpec::Type::kIcmp) {
      kind = v6 ? RawSockets::kIcmp6 : RawSockets::kIcmp4;
    } else if (t.spec.type == MonitorSpec::Type::kTcpHalfOpen) {
      kind = v6 ? RawSockets::kTcp6 : RawSockets::kTcp4;
    } else {
      continue;
    }
    std::string why;
    if (!raw_.open(kind, epoll_fd_, kRawTag | kind, &why)) {
      *error = "monitor " + t.spec.name + ": " + why;
      return false;
    }
  }
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
  return true;
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
  // I/O first, so a reply that arrived just before its deadline still counts.
  run_io(results);
  run_timers(now, results);
}

void Prober::run_io(std::vector<ProbeResult>* results) {
  if (epoll_fd_ < 0) return;
  epoll_event events[256];
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events, 256, 0);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (data & kRawTag) {
        receive_raw(static_cast<RawSockets::Kind>(data & ~kRawTag), results);
      } else {
        advance(static_cast<uint32_t>(data), static_cast<int>(data >> 32), events[i].events,
                results);
      }
    }
    if (n < 256) break;
  }
}

void Prober::run_timers(ProbeClock::time_point now, std::vector<ProbeResult>* results) {
  if (epoll_fd_ < 0) return;
  while (!timers_.empty() && timers_.top().at <= now) {
    const Timer t = timers_.top();
    timers_.pop();
    Probe& p = *probes_[t.index];
    if (t.seq != p.timer_seq) continue;  // superseded
    if (p.in_flight) {
      expire(t.index, results);  // schedules the next start
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
  p.in_flight = true;
  ++p.serial;
  p.phase = Probe::Phase::kConnecting;
  p.sent = 0;
  p.reply.clear();
  p.request.clear();

  const MonitorSpec& spec = p.target.spec;
  if (is_datagram(spec)) {
    start_datagram(index, results);
    return;
  }
  if (spec.type == MonitorSpec::Type::kExternal) {
    start_external(index, results);
    return;
  }
  if (spec.type == MonitorSpec::Type::kIcmp) {
    start_echo(index, results);
    return;
  }
  if (spec.type == MonitorSpec::Type::kTcpHalfOpen) {
    start_half_open(index, now, results);
    return;
  }
  if (is_connect_only(spec)) {
    start_connect(index, results);
    return;
  }
  if (spec.type != MonitorSpec::Type::kTcp) {
    p.request = spec.method + " " + spec.path +
                " HTTP/1.1\r\nHost: " + (spec.host.empty() ? endpoint_text(p.target) : spec.host) +
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
  ev.data.u64 = probe_data(index, p.fd);
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

// A connect-only probe: three system calls when a socket is idle (connect, arm the epoll entry,
// and the disconnect in recycle()) instead of six with a socket of its own (socket, epoll add,
// connect, SO_ERROR, SO_LINGER, close); the kernel also skips allocating and freeing a socket,
// a file and an epoll entry per probe. The entry is one-shot: it reports the connect's outcome
// once and then stays quiet while the socket idles in the pool, disconnected.
void Prober::start_connect(size_t index, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  std::vector<int>& idle = idle_sockets_[p.target.addr.ss_family == AF_INET6];
  int op = EPOLL_CTL_MOD;
  if (!idle.empty()) {
    p.fd = idle.back();
    idle.pop_back();
  } else {
    p.fd = socket(p.target.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p.fd < 0) {
      finish(index, false, std::string("socket: ") + std::strerror(errno), results);
      return;
    }
    op = EPOLL_CTL_ADD;
  }
  p.reusable = true;
  if (connect(p.fd, reinterpret_cast<const sockaddr*>(&p.target.addr), p.target.addr_len) != 0 &&
      errno != EINPROGRESS) {
    const int error = errno;
    if (op == EPOLL_CTL_ADD) p.reusable = false;  // not in the epoll set: close it instead
    finish(index, false, std::string("connect: ") + std::strerror(error), results);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLONESHOT;
  ev.data.u64 = probe_data(index, p.fd);
  if (epoll_ctl(epoll_fd_, op, p.fd, &ev) != 0) {
    const int error = errno;
    p.reusable = false;
    finish(index, false, std::string("epoll: ") + std::strerror(error), results);
  }
}

void Prober::advance_connect(size_t index, uint32_t events, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  if ((events & (EPOLLERR | EPOLLHUP)) == 0) {
    finish(index, true, "connected", results);
    return;
  }
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  finish(index, false, std::string("connect: ") + std::strerror(err != 0 ? err : ECONNRESET),
         results);
}

// Disconnecting (connect to AF_UNSPEC) resets an established connection (RST, as the abortive
// close of the other probes), leaves the socket unbound and unconnected, and lets the next
// connect() reuse it; that connect also clears the error the reset leaves on the socket.
void Prober::recycle(Probe& p) {
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  std::vector<int>& idle = idle_sockets_[p.target.addr.ss_family == AF_INET6];
  if (idle.size() < kMaxIdleSockets && connect(p.fd, &unspec, sizeof(unspec)) == 0) {
    idle.push_back(p.fd);
  } else {
    close(p.fd);
  }
  p.fd = -1;
  p.reusable = false;
}

// UDP and DNS: a connected datagram socket, so an ICMP port-unreachable comes back as
// ECONNREFUSED on the next receive instead of silently timing out.
void Prober::start_datagram(size_t index, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  const MonitorSpec& spec = p.target.spec;
  p.fd = socket(p.target.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) {
    finish(index, false, std::string("socket: ") + std::strerror(errno), results);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = probe_data(index, p.fd);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.fd, &ev) != 0 ||
      connect(p.fd, reinterpret_cast<const sockaddr*>(&p.target.addr), p.target.addr_len) != 0 ||
      send(p.fd, spec.send.data(), spec.send.size(), MSG_NOSIGNAL) < 0) {
    finish(index, false, std::string("udp: ") + std::strerror(errno), results);
    return;
  }
  p.phase = Probe::Phase::kReading;
}

// icmp: every echo request of the probe goes out at once; the replies (or the timeout) decide.
void Prober::start_echo(size_t index, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  const MonitorSpec& spec = p.target.spec;
  p.echo_replies = 0;
  p.echo_received = 0;
  const probe_packets::EchoTag first{raw_.cookie(), static_cast<uint32_t>(index), p.serial, 0};
  uint32_t sent = 0;
  const int error = raw_.send_echoes(p.target.addr, first, spec.count, echo_seq_, &sent);
  echo_seq_ = static_cast<uint16_t>(echo_seq_ + spec.count);
  // Requests that could not be sent count as lost; with none sent, say why at once.
  if (sent == 0) finish(index, false, std::string("icmp: ") + std::strerror(error), results);
}

// tcp-half-open: one SYN from the shared raw socket; the kernel resets the connection when the
// SYN-ACK comes back to a port no socket owns (raw_sockets.h).
void Prober::start_half_open(size_t index, ProbeClock::time_point now,
                             std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  constexpr auto kSourceRefresh = std::chrono::seconds(10);
  if (!p.have_source || (p.refresh_source && now - p.source_at >= kSourceRefresh)) {
    std::string error;
    p.source_at = now;
    p.refresh_source = false;
    p.have_source = route_source(p.target.addr, &p.source, &error);
    if (!p.have_source) {
      finish(index, false, error, results);
      return;
    }
  }
  p.sport = raw_.port(static_cast<uint32_t>(index) + p.serial);
  const uint16_t dport = p.target.spec.port;
  const uint32_t seq =
      probe_packets::syn_sequence(static_cast<uint32_t>(index), p.serial, raw_.secret());
  if (const int e = raw_.send_syn(p.source, p.target.addr, p.sport, dport, seq); e != 0) {
    p.refresh_source = true;  // a vanished source address shows up here first
    finish(index, false, std::string("syn: ") + std::strerror(e), results);
  }
}

void Prober::receive_raw(RawSockets::Kind kind, std::vector<ProbeResult>* results) {
  if (kind == RawSockets::kIcmp4 || kind == RawSockets::kIcmp6) {
    raw_.receive_echo(kind, [&](const probe_packets::EchoTag& tag, const sockaddr_storage& from) {
      if (tag.target >= probes_.size()) return;
      Probe& p = *probes_[tag.target];
      const MonitorSpec& spec = p.target.spec;
      if (!p.in_flight || spec.type != MonitorSpec::Type::kIcmp || tag.serial != p.serial ||
          tag.number >= spec.count || !same_address(from, p.target.addr)) {
        return;  // late (an earlier probe's), or not from the target
      }
      const uint64_t bit = uint64_t{1} << tag.number;
      if (p.echo_replies & bit) return;  // duplicated on the way
      p.echo_replies |= bit;
      ++p.echo_received;
      if (echo_loss_ok(spec, p.echo_received)) {
        finish(tag.target, true,
               std::to_string(p.echo_received) + "/" + std::to_string(spec.count) + " echo replies",
               results);
      }
    });
    return;
  }
  raw_.receive_tcp(kind, [&](const probe_packets::TcpReply& reply, const sockaddr_storage& from) {
    uint32_t index = 0;
    uint8_t serial_low = 0;
    probe_packets::decode_ack(reply.ack, raw_.secret(), &index, &serial_low);
    if (index >= probes_.size()) return;
    Probe& p = *probes_[index];
    if (!p.in_flight || p.target.spec.type != MonitorSpec::Type::kTcpHalfOpen ||
        static_cast<uint8_t>(p.serial) != serial_low || reply.dport != p.sport ||
        reply.sport != p.target.spec.port || !same_address(from, p.target.addr)) {
      return;
    }
    finish(index, reply.syn_ack, reply.syn_ack ? "syn-ack" : "rst: port closed", results);
  });
}

// A probe whose timeout passed without a verdict.
void Prober::expire(size_t index, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  if (p.target.spec.type == MonitorSpec::Type::kIcmp) {
    const uint32_t count = p.target.spec.count;
    finish(index, false,
           "timeout: " + std::to_string(count - p.echo_received) + "/" + std::to_string(count) +
               " echo requests lost",
           results);
    return;
  }
  if (p.target.spec.type == MonitorSpec::Type::kTcpHalfOpen) p.refresh_source = true;
  finish(index, false, "timeout", results);
}

extern "C" char** environ;

// external: posix_spawn (no shell), then a pidfd in the epoll set: readable when the command
// exits, so waiting for it costs nothing and needs no SIGCHLD handling.
void Prober::start_external(size_t index, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  const MonitorSpec& spec = p.target.spec;
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("GTM_MEMBER_ADDRESS=" + p.target.host);
  env_strings.push_back("GTM_MONITOR_PORT=" + std::to_string(spec.port));
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.command;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    finish(index, false, "exec " + spec.command[0] + ": " + std::strerror(rc), results);
    return;
  }
  p.child = pid;
  p.fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = probe_data(index, p.fd);
  if (p.fd < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.fd, &ev) != 0) {
    finish(index, false, std::string("pidfd: ") + std::strerror(errno), results);
    return;
  }
  p.phase = Probe::Phase::kReading;
}

void Prober::advance_external(size_t index, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  int status = 0;
  if (waitpid(p.child, &status, WNOHANG) != p.child) return;
  p.child = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    finish(index, true, "exit 0", results);
  } else if (WIFEXITED(status)) {
    finish(index, false, "exit " + std::to_string(WEXITSTATUS(status)), results);
  } else {
    finish(index, false, "killed by signal " + std::to_string(WTERMSIG(status)), results);
  }
}

void Prober::advance_datagram(size_t index, std::vector<ProbeResult>* results) {
  Probe& p = *probes_[index];
  const MonitorSpec& spec = p.target.spec;
  char buf[4096];
  const ssize_t n = recv(p.fd, buf, sizeof(buf), 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    finish(index, false, std::string("udp: ") + std::strerror(errno), results);
    return;
  }
  const std::string reply(buf, static_cast<size_t>(n));
  if (spec.type == MonitorSpec::Type::kUdp) {
    if (reply.find(spec.expect) != std::string::npos) {
      finish(index, true, "reply matched", results);
    } else {
      finish(index, false, "reply did not contain the expected text", results);
    }
    return;
  }
  std::string detail;
  const bool ok =
      judge_dns_reply(spec, reinterpret_cast<const uint8_t*>(reply.data()), reply.size(), &detail);
  finish(index, ok, detail, results);
}

void Prober::advance(size_t index, int fd, uint32_t events, std::vector<ProbeResult>* results) {
  if (index >= probes_.size()) return;
  Probe& p = *probes_[index];
  if (p.fd < 0 || p.fd != fd) return;  // an event of a socket the probe no longer uses
  const MonitorSpec& spec = p.target.spec;
  if (p.reusable) {
    advance_connect(index, events, results);
    return;
  }
  if (is_datagram(spec)) {
    advance_datagram(index, results);
    return;
  }
  if (spec.type == MonitorSpec::Type::kExternal) {
    advance_external(index, results);
    return;
  }

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
    std::string error;
    if (spec.type == MonitorSpec::Type::kHttps) {
      if (!start_tls(index, &error)) {
        finish(index, false, error, results);
        return;
      }
      p.phase = Probe::Phase::kTlsHandshake;
    } else {
      p.phase = Probe::Phase::kSending;  // with nothing to send, straight through to reading
    }
  }

  if (p.phase == Probe::Phase::kTlsHandshake) {
    const int r = SSL_connect(p.ssl);
    if (r != 1) {
      const int e = SSL_get_error(p.ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        watch(index, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
        return;
      }
      const long verify = SSL_get_verify_result(p.ssl);
      finish(index, false,
             verify != X509_V_OK
                 ? std::string("tls: certificate: ") + X509_verify_cert_error_string(verify)
                 : tls_error_text(),
             results);
      ERR_clear_error();
      return;
    }
    p.phase = Probe::Phase::kSending;
  }

  if (p.phase == Probe::Phase::kSending) {
    while (p.sent < p.request.size()) {
      bool want_write = true;
      std::string error;
      const ssize_t n = probe_send(index, &want_write, &error);
      if (n > 0) {
        p.sent += static_cast<size_t>(n);
        continue;
      }
      if (n == -1) {
        watch(index, want_write ? EPOLLOUT : EPOLLIN);
        return;
      }
      finish(index, false, n == 0 ? "send: connection closed" : error, results);
      return;
    }
    p.phase = Probe::Phase::kReading;
    if (spec.type == MonitorSpec::Type::kTcp && spec.expect.empty()) {
      finish(index, true, "connected, sent", results);
      return;
    }
    // Level-triggered EPOLLOUT would fire forever from here on: wait for the reply instead.
    watch(index, EPOLLIN | EPOLLRDHUP);
    events = 0;
    if (p.ssl == nullptr) return;
    // TLS may already hold decrypted bytes that epoll will never report: try reading now.
    events = EPOLLIN;
  }

  if ((events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
  bool eof = false;
  char buf[4096];
  while (p.reply.size() < kMaxReply) {
    bool want_write = false;
    std::string error;
    const ssize_t n = probe_recv(index, buf, std::min(sizeof(buf), kMaxReply - p.reply.size()),
                                 &want_write, &error);
    if (n > 0) {
      p.reply.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) eof = true;
    if (n == -1) watch(index, want_write ? EPOLLOUT : (EPOLLIN | EPOLLRDHUP));
    if (n == -2) {
      finish(index, false, error, results);
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
  if (p.reusable) {
    recycle(p);
  } else {
    p.close_socket();
  }
  p.in_flight = false;
  schedule(index, p.next_start);
  ++completed_;
  results->push_back({index, ok, std::move(detail)});
}

bool judge_dns_reply(const MonitorSpec& spec, const uint8_t* data, size_t len,
                     std::string* detail) {
  // The query the loader built carries its ID in its first two octets.
  if (len < 12 || spec.send.size() < 2 || std::memcmp(data, spec.send.data(), 2) != 0 ||
      (data[2] & 0x80) == 0) {
    *detail = "dns: not an answer to our query";
    return false;
  }
  ldns_pkt* pkt = nullptr;
  if (ldns_wire2pkt(&pkt, data, len) != LDNS_STATUS_OK) {
    *detail = "dns: malformed answer";
    return false;
  }
  const uint8_t rcode = static_cast<uint8_t>(ldns_pkt_get_rcode(pkt));
  bool ok = rcode == spec.expect_rcode;
  *detail = "dns rcode " + std::to_string(rcode);
  if (ok && !spec.expect_address.empty()) {
    bool found = false;
    ldns_rr_list* answer = ldns_pkt_answer(pkt);
    for (size_t i = 0; answer != nullptr && i < ldns_rr_list_rr_count(answer); ++i) {
      ldns_rr* rr = ldns_rr_list_rr(answer, i);
      if (ldns_rr_rd_count(rr) != 1) continue;
      const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
      found |= ldns_rdf_size(rdf) == spec.expect_address.size() &&
               std::memcmp(ldns_rdf_data(rdf), spec.expect_address.data(),
                           spec.expect_address.size()) == 0;
    }
    ok = found;
    *detail += found ? ", address found" : ", expected address missing";
  }
  ldns_pkt_free(pkt);
  return ok;
}

std::string endpoint_text(const ProbeTarget& target) {
  if (target.addr.ss_family == AF_INET6) {
    const uint16_t port = ntohs(reinterpret_cast<const sockaddr_in6&>(target.addr).sin6_port);
    return "[" + target.host + "]:" + std::to_string(port);
  }
  const uint16_t port = ntohs(reinterpret_cast<const sockaddr_in&>(target.addr).sin_port);
  return target.host + ":" + std::to_string(port);
}

bool make_probe_address(const std::vector<uint8_t>& address, uint16_t port, sockaddr_storage* out,
                        socklen_t* len, std::string* host) {
  *out = sockaddr_storage{};
  char buf[INET6_ADDRSTRLEN] = {};
  if (address.size() == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, address.data(), 4);
    *len = sizeof(sockaddr_in);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    *host = buf;
    return true;
  }
  if (address.size() == 16) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, address.data(), 16);
    *len = sizeof(sockaddr_in6);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    *host = buf;
    return true;
  }
  return false;
}

}  // namespace gtm::control
