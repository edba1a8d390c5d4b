#include "dataplane/io/tcp_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "dataplane/io/log.h"

namespace gtm::io {

namespace {

constexpr size_t kMaxFrame = 2 + 65535;
// One whole frame always fits, so a partial frame never needs more room than what is left.
constexpr size_t kInCap = kMaxFrame;
// Responses are written straight into the output buffer; a query is answered only when a
// maximum-size response still fits, so the engine never has to truncate for lack of room.
constexpr size_t kOutCap = 2 * kMaxFrame;
constexpr int kMaxEvents = 64;
constexpr int kMaxAcceptsPerWake = 64;
constexpr uint64_t kSweepIntervalMs = 100;

// epoll user data: listen sockets and the stop fd are tagged; connections carry their pool index
// and a use count, so an event queued for a connection closed earlier in the same batch (whose
// slot may already hold a new connection) is recognised as stale.
constexpr uint64_t kTagStop = 1ull << 63;
constexpr uint64_t kTagListen = 1ull << 62;

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

struct TcpServer::Conn {
  int fd = -1;
  uint32_t index = 0;
  uint32_t uses = 0;      // bumped at every accept into this slot (stale-event check)
  uint32_t interest = 0;  // events currently registered with epoll
  bool peer_closed = false;
  engine::ClientAddr client;
  uint64_t last_active_ms = 0;
  uint8_t* in = nullptr;  // kInCap bytes: received, not yet answered
  size_t in_len = 0;
  uint8_t* out = nullptr;  // kOutCap bytes: [out_start, out_end) still to be written
  size_t out_start = 0;
  size_t out_end = 0;
  Conn* next_free = nullptr;

  uint64_t tag() const { return (static_cast<uint64_t>(uses) << 32) | index; }
};

TcpServer::TcpServer(SnapshotSlot* slot, uint32_t reader_id, int stop_fd, TcpOptions options)
    : slot_(slot), reader_id_(reader_id), stop_fd_(stop_fd), options_(options) {
  std::random_device rd;
  uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ 0xD1B54A32D192ED03ull;
  state_.rng = seed != 0 ? seed : 0x2545F4914F6CDD1Dull;
}

TcpServer::~TcpServer() {
  join();
  for (Conn& c : pool_) {
    if (c.fd >= 0) close(c.fd);
  }
  for (int fd : listen_fds_) close(fd);
  if (spare_fd_ >= 0) close(spare_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

bool TcpServer::open(const std::vector<ListenAddr>& addrs, std::string* error) {
  if (options_.max_conns == 0) {
    *error = "--tcp-max-conns must be at least 1";
    return false;
  }
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    *error = std::string("epoll_create1: ") + std::strerror(errno);
    return false;
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (size_t i = 0; i < addrs.size(); ++i) {
    int fd = open_tcp_listener(addrs[i], error);
    if (fd < 0) return false;
    listen_fds_.push_back(fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagListen | i;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      *error = std::string("epoll_ctl: ") + std::strerror(errno);
      return false;
    }
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagStop;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev) != 0) {
    *error = std::string("epoll_ctl: ") + std::strerror(errno);
    return false;
  }

  const size_t per_conn = kInCap + kOutCap;
  buffers_.reset(new (std::nothrow) uint8_t[per_conn * options_.max_conns]);
  if (!buffers_) {
    *error = "out of memory for " + std::to_string(options_.max_conns) + " TCP connections";
    return false;
  }
  pool_.resize(options_.max_conns);
  for (uint32_t i = 0; i < options_.max_conns; ++i) {
    Conn& c = pool_[i];
    c.index = i;
    c.in = buffers_.get() + per_conn * i;
    c.out = c.in + kInCap;
    c.next_free = i + 1 < options_.max_conns ? &pool_[i + 1] : nullptr;
  }
  free_list_ = &pool_[0];
  return true;
}

bool TcpServer::start(std::string* /*error*/) {
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "gtm-tcp");
  return true;
}

void TcpServer::join() {
  if (thread_.joinable()) thread_.join();
}

void TcpServer::run() {
  if (!slot_->register_reader(reader_id_)) {
    log_line("tcp: cannot register as an RCU reader");
    return;
  }
  epoll_event events[kMaxEvents];
  uint64_t last_sweep = now_ms();
  bool stopping = false;
  while (!stopping) {
    // While connections are open, wake up regularly to close the idle ones.
    int timeout = open_conns_ != 0 ? static_cast<int>(kSweepIntervalMs) : -1;
    // Offline while blocked: otherwise a publish would wait (grace period) until the next TCP
    // event. No snapshot pointer from before this call is used after it.
    slot_->offline(reader_id_);
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout);
    slot_->online(reader_id_);
    if (n < 0) {
      if (errno == EINTR) continue;
      log_line("tcp: epoll_wait: %s", std::strerror(errno));
      break;
    }
    const snap::SnapshotView* snap = slot_->acquire();
    uint64_t now = now_ms();
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kTagStop) {
        stopping = true;
      } else if (tag & kTagListen) {
        accept_all(listen_fds_[tag & ~kTagListen], now);
      } else {
        Conn& c = pool_[static_cast<uint32_t>(tag)];
        if (c.fd >= 0 && c.tag() == tag) service(c, events[i].events, snap, now);
      }
    }
    // Done with `snap` for this round.
    slot_->quiescent(reader_id_);
    if (open_conns_ != 0 && now - last_sweep >= kSweepIntervalMs) {
      close_idle(now);
      last_sweep = now;
    }
  }
  slot_->offline(reader_id_);
  slot_->unregister_reader(reader_id_);
}

void TcpServer::accept_all(int listen_fd, uint64_t now) {
  for (int i = 0; i < kMaxAcceptsPerWake; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd =
        accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
        // Out of descriptors: the pending connection would keep the listen socket readable and
        // spin this loop. Free the spare, accept and drop the connection, take the spare back.
        close(spare_fd_);
        int dropped = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (dropped >= 0) {
          close(dropped);
          ++state_.counters.tcp_rejected;
        }
        spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        log_line("tcp: accept: %s", std::strerror(errno));
      }
      return;
    }
    if (free_list_ == nullptr) {
      close(fd);
      ++state_.counters.tcp_rejected;
      continue;
    }
    Conn& c = *free_list_;
    free_list_ = c.next_free;
    c.next_free = nullptr;
    c.fd = fd;
    ++c.uses;
    c.peer_closed = false;
    c.in_len = 0;
    c.out_start = c.out_end = 0;
    c.last_active_ms = now;
    c.client = engine::ClientAddr{};
    if (ss.ss_family == AF_INET) {
      c.client.family = 4;
      std::memcpy(c.client.addr, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
      c.client.family = 6;
      std::memcpy(c.client.addr, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, 16);
    }
    // Responses are written whole; Nagle would only hold back the next one.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c.tag();
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log_line("tcp: epoll_ctl: %s", std::strerror(errno));
      close(fd);
      c.fd = -1;
      c.next_free = free_list_;
      free_list_ = &c;
      continue;
    }
    c.interest = ev.events;
    ++open_conns_;
    ++state_.counters.tcp_connections;
  }
}

void TcpServer::service(Conn& c, uint32_t events, const snap::SnapshotView* snap, uint64_t now) {
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c.peer_closed &&
      c.in_len < kInCap) {
    if (!read_some(c, now)) {
      close_conn(c);
      return;
    }
  }
  // Answering stops when the output buffer is full; writing makes room for more. This ends: each
  // round consumes input, and no more is read here (at most one input buffer per event).
  for (;;) {
    size_t before = c.in_len;
    answer_frames(c, snap);
    if (!flush(c, now)) {
      close_conn(c);
      return;
    }
    if (c.in_len == before || c.out_end != c.out_start) break;
  }
  if (c.peer_closed && c.out_end == c.out_start) {
    // The client sent everything it will send and has its answers; a left-over partial frame
    // can never complete.
    close_conn(c);
    return;
  }
  update_interest(c);
}

bool TcpServer::read_some(Conn& c, uint64_t now) {
  while (c.in_len < kInCap) {
    ssize_t n = recv(c.fd, c.in + c.in_len, kInCap - c.in_len, 0);
    if (n > 0) {
      c.in_len += static_cast<size_t>(n);
      c.last_active_ms = now;
      continue;
    }
    if (n == 0) {
      c.peer_closed = true;
      return true;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

void TcpServer::answer_frames(Conn& c, const snap::SnapshotView* snap) {
  size_t pos = 0;
  while (c.in_len - pos >= 2) {
    size_t qlen = (static_cast<size_t>(c.in[pos]) << 8) | c.in[pos + 1];
    if (c.in_len - pos - 2 < qlen) break;  // the rest of this frame has not arrived yet
    if (kOutCap - c.out_end < kMaxFrame) {
      // Reclaim the part already written before giving up on room.
      std::memmove(c.out, c.out + c.out_start, c.out_end - c.out_start);
      c.out_end -= c.out_start;
      c.out_start = 0;
      if (kOutCap - c.out_end < kMaxFrame) break;  // wait until the client reads
    }
    uint8_t* frame = c.out + c.out_end;
    size_t rlen = engine::answer_query(snap, c.in + pos + 2, qlen, frame + 2, kMaxFrame - 2,
                                       c.client, engine::Transport::kTcp, state_);
    if (rlen != 0) {
      frame[0] = static_cast<uint8_t>(rlen >> 8);
      frame[1] = static_cast<uint8_t>(rlen);
      c.out_end += 2 + rlen;
    }
    pos += 2 + qlen;
  }
  if (pos != 0) {
    std::memmove(c.in, c.in + pos, c.in_len - pos);
    c.in_len -= pos;
  }
}

bool TcpServer::flush(Conn& c, uint64_t now) {
  while (c.out_start < c.out_end) {
    ssize_t n = send(c.fd, c.out + c.out_start, c.out_end - c.out_start, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_start += static_cast<size_t>(n);
      c.last_active_ms = now;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    ++state_.counters.tx_errors;  // the client went away with answers pending
    return false;
  }
  c.out_start = c.out_end = 0;
  return true;
}

void TcpServer::update_interest(Conn& c) {
  // Level-triggered: after the peer's FIN, EPOLLIN/EPOLLRDHUP would fire forever, so only
  // writability is of interest then.
  uint32_t want = 0;
  if (!c.peer_closed) want |= EPOLLRDHUP;
  if (!c.peer_closed && c.in_len < kInCap) want |= EPOLLIN;
  if (c.out_end != c.out_start) want |= EPOLLOUT;
  if (want == c.interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c.tag();
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
    log_line("tcp: epoll_ctl: %s", std::strerror(errno));
    close_conn(c);
    return;
  }
  c.interest = want;
}

void TcpServer::close_conn(Conn& c) {
  close(c.fd);  // also removes it from the epoll set
  c.fd = -1;
  c.next_free = free_list_;
  free_list_ = &c;
  --open_conns_;
}

void TcpServer::close_idle(uint64_t now) {
  for (Conn& c : pool_) {
    if (c.fd >= 0 && now - c.last_active_ms >= options_.idle_ms) close_conn(c);
  }
}

}  // namespace gtm::io
