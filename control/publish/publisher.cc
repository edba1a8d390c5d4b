#include "control/publish/publisher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <vector>

#include "dataplane/io/control_protocol.h"

namespace gtm::control {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Closes the descriptor when the scope ends, whichever way it ends.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until `fd` reports `events` or the deadline passes. Returns false on timeout or error.
bool wait_for(int fd, short events, Clock::time_point deadline, std::string* error) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) {
      *error = "timed out waiting for the reply";
      return false;
    }
    if (errno != EINTR) {
      *error = errno_text("poll");
      return false;
    }
  }
}

constexpr size_t kMaxPassedFds = 2;

bool send_with_fds(int sock, const std::string& request, const std::vector<int>& fds,
                   std::string* error) {
  if (fds.size() > kMaxPassedFds) {
    *error = "too many descriptors to pass";
    return false;
  }
  iovec iov{const_cast<char*>(request.data()), request.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(request.size())) return true;
    if (n < 0 && errno == EINTR) continue;
    *error = n < 0 ? errno_text("send") : "short send";
    return false;
  }
}

// Parses "OK <number>" exactly. Returns false on anything else.
bool parse_ok_number(const std::string& reply, uint64_t* value) {
  if (reply.size() < 4 || reply.compare(0, 3, "OK ") != 0) return false;
  uint64_t v = 0;
  for (size_t i = 3; i < reply.size(); ++i) {
    char c = reply[i];
    if (c == '\n' && i + 1 == reply.size() && i > 3) break;
    if (c < '0' || c > '9') return false;
    if (v > (UINT64_MAX - static_cast<uint64_t>(c - '0')) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *value = v;
  return true;
}

// Strips a leading "ERR " so callers can embed the dataplane's reason in their own messages.
std::string err_reason(const std::string& reply) {
  if (reply.compare(0, 4, "ERR ") == 0) return reply.substr(4);
  return reply;
}

}  // namespace

std::string run_dir_path(const std::string& run_dir, const char* name) {
  if (!run_dir.empty() && run_dir.back() == '/') return run_dir + name;
  return run_dir + "/" + name;
}

RequestResult send_request(const std::string& socket_path, const std::string& request,
                           int fd_to_pass, int timeout_ms) {
  return send_request(socket_path, request,
                      fd_to_pass >= 0 ? std::vector<int>{fd_to_pass} : std::vector<int>{},
                      timeout_ms);
}

RequestResult send_request(const std::string& socket_path, const std::string& request,
                           const std::vector<int>& fds_to_pass, int timeout_ms) {
  RequestResult r;
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + std::chrono::milliseconds(timeout_ms);

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    r.error = "socket path too long: " + socket_path;
    return r;
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);

  FdGuard sock(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (sock.get() < 0) {
    r.error = errno_text("socket");
    return r;
  }
  if (connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    // A Unix stream/seqpacket connect never completes asynchronously; EAGAIN means a full backlog.
    if (errno == ENOENT || errno == ECONNREFUSED) {
      r.status = RequestStatus::kUnreachable;
      r.error = errno_text(socket_path.c_str());
    } else {
      r.error = errno_text(("connect " + socket_path).c_str());
    }
    return r;
  }
  if (!wait_for(sock.get(), POLLOUT, deadline, &r.error)) return r;
  if (!send_with_fds(sock.get(), request, fds_to_pass, &r.error)) return r;

  std::vector<char> buf(proto::kMaxMessage);
  for (;;) {
    if (!wait_for(sock.get(), POLLIN, deadline, &r.error)) return r;
    ssize_t n = recv(sock.get(), buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      r.error = errno_text("recv");
      return r;
    }
    if (n == 0) {
      r.error = "connection closed without a reply";
      return r;
    }
    r.reply.assign(buf.data(), static_cast<size_t>(n));
    break;
  }
  r.round_trip_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  if (r.reply.compare(0, 3, "ERR") == 0) {
    r.status = RequestStatus::kRefused;
    r.error = err_reason(r.reply);
  } else {
    r.status = RequestStatus::kOk;
  }
  return r;
}

namespace {

// Sealed so the dataplane can map it knowing no one can change or truncate it underneath.
bool seal(int fd, std::string* error) {
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0) {
    return true;
  }
  *error = errno_text("seal memfd");
  return false;
}

int new_memfd(size_t len, std::string* error) {
  int fd = memfd_create("gtm-snapshot", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  if (fd < 0) {
    *error = errno_text("memfd_create");
    return -1;
  }
  // Sized first: the writes then fill pages without growing the file piece by piece.
  if (ftruncate(fd, static_cast<off_t>(len)) != 0) {
    *error = errno_text("ftruncate memfd");
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int make_sealed_memfd(const uint8_t* image, size_t len, std::string* error) {
  return make_sealed_memfd({{image, len}}, error);
}

SpareMemfd::~SpareMemfd() {
  if (fd_ >= 0) close(fd_);
}

void SpareMemfd::prepare(size_t capacity) {
  if (fd_ >= 0 && capacity_ >= capacity) return;
  if (fd_ >= 0) close(fd_);
  fd_ = memfd_create("gtm-snapshot", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  capacity_ = 0;
  if (fd_ < 0) return;
  if (fallocate(fd_, 0, 0, static_cast<off_t>(capacity)) != 0) {
    close(fd_);
    fd_ = -1;
    return;
  }
  capacity_ = capacity;
}

int SpareMemfd::take(size_t len) {
  if (fd_ < 0 || capacity_ < len) return -1;
  const int fd = fd_;
  fd_ = -1;
  capacity_ = 0;
  if (ftruncate(fd, static_cast<off_t>(len)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int make_sealed_memfd(const std::vector<std::pair<const uint8_t*, size_t>>& parts,
                      std::string* error, SpareMemfd* spare) {
  size_t total = 0;
  for (const auto& part : parts) total += part.second;
  int fd = spare != nullptr ? spare->take(total) : -1;
  if (fd < 0) fd = new_memfd(total, error);
  if (fd < 0) return -1;
  // writev takes at most IOV_MAX pieces and may write fewer bytes than asked: go on from where
  // it stopped.
  std::vector<iovec> iov;
  iov.reserve(parts.size());
  for (const auto& [data, len] : parts) {
    if (len != 0) iov.push_back({const_cast<uint8_t*>(data), len});
  }
  size_t next = 0;
  while (next < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - next, IOV_MAX));
    ssize_t n = writev(fd, iov.data() + next, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = errno_text("write memfd");
      close(fd);
      return -1;
    }
    size_t done = static_cast<size_t>(n);
    while (next < iov.size() && done >= iov[next].iov_len) done -= iov[next++].iov_len;
    if (done > 0) {
      iov[next].iov_base = static_cast<uint8_t*>(iov[next].iov_base) + done;
      iov[next].iov_len -= done;
    }
  }
  if (!seal(fd, error)) {
    close(fd);
    return -1;
  }
  return fd;
}

PublishResult publish_image(const std::string& run_dir, uint64_t generation, const uint8_t* image,
                            size_t len, int timeout_ms) {
  PublishResult p;
  FdGuard memfd(make_sealed_memfd(image, len, &p.error));
  if (memfd.get() < 0) return p;
  return publish_memfd(run_dir, generation, memfd.get(), timeout_ms);
}

PublishResult publish_memfd(const std::string& run_dir, uint64_t generation, int memfd,
                            int timeout_ms) {
  return publish_fds(run_dir, generation, {memfd}, timeout_ms);
}

PublishResult publish_overlay(const std::string& run_dir, uint64_t generation, int overlay_memfd,
                              int base_memfd, int timeout_ms) {
  return publish_fds(run_dir, generation, {overlay_memfd, base_memfd}, timeout_ms);
}

PublishResult publish_fds(const std::string& run_dir, uint64_t generation,
                          const std::vector<int>& memfds, int timeout_ms) {
  PublishResult p;
  RequestResult r = send_request(run_dir_path(run_dir, proto::kDataplaneSocket),
                                 "PUBLISH " + std::to_string(generation), memfds, timeout_ms);
  p.round_trip_us = r.round_trip_us;
  p.status = r.status;
  p.error = r.error;
  if (r.status != RequestStatus::kOk) return p;

  uint64_t acked = 0;
  if (!parse_ok_number(r.reply, &acked) || acked != generation) {
    p.status = RequestStatus::kFailed;
    p.error = "unexpected reply to PUBLISH " + std::to_string(generation) + ": " + r.reply;
    return p;
  }
  p.generation = acked;
  return p;
}

GenerationResult query_generation(const std::string& run_dir, int timeout_ms) {
  GenerationResult g;
  RequestResult r =
      send_request(run_dir_path(run_dir, proto::kDataplaneSocket), "GENERATION", -1, timeout_ms);
  g.status = r.status;
  g.error = r.error;
  if (r.status != RequestStatus::kOk) return g;
  if (!parse_ok_number(r.reply, &g.generation)) {
    g.status = RequestStatus::kFailed;
    g.error = "unexpected reply to GENERATION: " + r.reply;
  }
  return g;
}

}  // namespace gtm::control
