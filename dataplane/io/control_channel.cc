#include "dataplane/io/control_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "dataplane/io/control_protocol.h"
#include "dataplane/io/log.h"

namespace gtm::io {

namespace {

// Clients normally connect, ask once and leave; a few may be connected at the same time.
constexpr size_t kMaxClients = 16;
constexpr size_t kMaxFds = 8;
constexpr int kChannelNice = -10;

std::string join_path(const std::string& dir, const char* name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

void close_fds(const int* fds, size_t count) {
  for (size_t i = 0; i < count; ++i) close(fds[i]);
}

// Parses a non-empty decimal uint64_t that fills the whole string.
bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

uint64_t micros_since(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
}

// {"name":value,...} members (without braces) from visit_counters-style (name, value) pairs.
class CounterJson {
 public:
  explicit CounterJson(std::string* out) : out_(out) {}
  void operator()(const char* name, uint64_t value) {
    *out_ += first_ ? "\"" : ",\"";
    *out_ += name;
    *out_ += "\":";
    *out_ += std::to_string(value);
    first_ = false;
  }

 private:
  std::string* out_;
  bool first_ = true;
};

}  // namespace

ControlChannel::ControlChannel(SnapshotSlot* slot, std::string run_dir, int stop_fd,
                               std::vector<WorkerStatsSource> workers)
    : slot_(slot),
      run_dir_(std::move(run_dir)),
      socket_path_(join_path(run_dir_, proto::kDataplaneSocket)),
      stop_fd_(stop_fd),
      workers_(std::move(workers)),
      buffer_(proto::kMaxMessage),
      saver_(join_path(run_dir_, proto::kLastGoodSnapshot)) {}

ControlChannel::~ControlChannel() {
  join();
  finish_after_reply();
  for (int fd : clients_) close(fd);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(socket_path_.c_str());
  }
}

bool ControlChannel::open(std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    *error = "control socket path too long: " + socket_path_;
    return false;
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);

  struct stat st;
  if (lstat(socket_path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = socket_path_ + " exists and is not a socket";
      return false;
    }
    // A socket file outlives a crashed process; one that still accepts belongs to a live one.
    int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    bool live =
        probe >= 0 && connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
    if (probe >= 0) close(probe);
    if (live) {
      *error = "another gtm-dataplane is serving " + socket_path_;
      return false;
    }
    if (unlink(socket_path_.c_str()) != 0) {
      *error = "cannot remove stale " + socket_path_ + ": " + std::strerror(errno);
      return false;
    }
    log_line("removed stale control socket %s", socket_path_.c_str());
  }

  listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) {
    *error = std::string("control socket: ") + std::strerror(errno);
    return false;
  }
  if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    *error = "bind " + socket_path_ + ": " + std::strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  // Before listen(), so nobody connects while the mode is still the umask's.
  if (chmod(socket_path_.c_str(), 0660) != 0 || listen(listen_fd_, 16) != 0) {
    *error = socket_path_ + ": " + std::strerror(errno);
    return false;  // the destructor removes the file
  }
  return true;
}

bool ControlChannel::start(std::string* /*error*/) {
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "gtm-control-ch");
  return true;
}

void ControlChannel::join() {
  if (thread_.joinable()) thread_.join();
}

void ControlChannel::run() {
  // A PUBLISH waits for this thread to be scheduled, and on a loaded host (probes, builds, other
  // work on the same cores) that wake-up can take milliseconds. The thread runs only to answer
  // requests, so a higher priority costs the workers nothing while it is idle. Best effort: it
  // needs CAP_SYS_NICE, and a thread's nice value is per thread on Linux.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kChannelNice) != 0) {
    log_line("control: cannot raise the control channel's priority (nice %d): %s", kChannelNice,
             std::strerror(errno));
  }
  std::vector<pollfd> pfds;
  for (;;) {
    pfds.clear();
    pfds.push_back({stop_fd_, POLLIN, 0});
    pfds.push_back({listen_fd_, POLLIN, 0});
    for (int fd : clients_) pfds.push_back({fd, POLLIN, 0});
    int n = poll(pfds.data(), pfds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log_line("control: poll: %s", std::strerror(errno));
      return;
    }
    if (pfds[0].revents != 0) return;
    std::vector<int> still_open;
    for (size_t i = 2; i < pfds.size(); ++i) {
      bool keep = true;
      if (pfds[i].revents != 0) serve_client(pfds[i].fd, &keep);
      if (keep) {
        still_open.push_back(pfds[i].fd);
      } else {
        close(pfds[i].fd);
      }
    }
    clients_.swap(still_open);
    if (pfds[1].revents & POLLIN) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        if (clients_.size() >= kMaxClients) {
          log_line("control: too many clients, dropping one connection");
          close(fd);
        } else {
          clients_.push_back(fd);
        }
      }
    }
  }
}

void ControlChannel::serve_client(int fd, bool* keep) {
  iovec iov{buffer_.data(), buffer_.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;

  int fds[kMaxFds];
  size_t fd_count = 0;
  if (n >= 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count && fd_count < kMaxFds; ++i) {
        std::memcpy(&fds[fd_count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      }
    }
  }
  if (n <= 0) {  // peer closed (or failed): nothing to answer
    close_fds(fds, fd_count);
    *keep = false;
    return;
  }
  std::string reply;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    close_fds(fds, fd_count);
    reply = (msg.msg_flags & MSG_TRUNC) ? "ERR request too long" : "ERR too many descriptors";
  } else {
    reply = handle(buffer_.data(), static_cast<size_t>(n), fds, fd_count);
  }
  if (reply.size() > proto::kMaxMessage) reply = "ERR reply too long";
  // One datagram; a client that does not read its reply loses it rather than stall the channel.
  if (send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) *keep = false;
  finish_after_reply();
}

void ControlChannel::finish_after_reply() {
  if (retired_ != nullptr) {
    const auto start = std::chrono::steady_clock::now();
    retired_.reset();
    std::lock_guard<std::mutex> lock(stats_mu_);
    last_publish_.free_us = micros_since(start);
  }
  if (to_save_) {
    saver_.save(std::move(*to_save_), save_generation_);
    to_save_.reset();
  }
}

ControlChannel::PublishStats ControlChannel::last_publish() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return last_publish_;
}

std::string ControlChannel::handle(const char* request, size_t len, const int* fds,
                                   size_t fd_count) {
  std::string text(request, len);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  size_t space = text.find(' ');
  std::string verb = text.substr(0, space);
  std::string args = space == std::string::npos ? "" : text.substr(space + 1);

  if (verb == "PUBLISH") return publish(args, fds, fd_count);
  close_fds(fds, fd_count);  // only PUBLISH takes a descriptor
  if (verb == "GENERATION" && args.empty()) {
    return "OK " + std::to_string(slot_->active_generation());
  }
  if (verb == "STATUS" && args.empty()) return status_json();
  std::string shown = text.substr(0, 64);
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return "ERR unknown request '" + shown + "'";
}

std::string ControlChannel::publish(const std::string& args, const int* fds, size_t fd_count) {
  const auto start = std::chrono::steady_clock::now();
  struct FdCloser {
    const int* fds;
    size_t count;
    ~FdCloser() { close_fds(fds, count); }
  } closer{fds, fd_count};

  uint64_t announced = 0;
  if (!parse_u64(args, &announced)) {
    return "ERR usage: PUBLISH <generation> with one fd (an image) or two (an overlay, its base)";
  }
  if (fd_count != 1 && fd_count != 2) {
    return "ERR PUBLISH needs one file descriptor (an image) or two (an overlay and its base), "
           "got " +
           std::to_string(fd_count);
  }
  // The image is validated once and then read without checks, so its bytes must not change
  // after validation: only memfds sealed against writes and shrinking are accepted.
  for (size_t i = 0; i < fd_count; ++i) {
    int seals = fcntl(fds[i], F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) != (F_SEAL_WRITE | F_SEAL_SHRINK)) {
      log_line("refused generation %llu: %s fd is not a sealed memfd",
               static_cast<unsigned long long>(announced),
               fd_count == 1 ? "image" : (i == 0 ? "overlay" : "base image"));
      return fd_count == 1 ? "ERR image must be a memfd sealed with F_SEAL_WRITE and F_SEAL_SHRINK"
                           : "ERR overlay and base image must be memfds sealed with F_SEAL_WRITE "
                             "and F_SEAL_SHRINK";
    }
  }
  std::string error;
  snap::ValidationStats vs;
  snap::LoadOptions options;
  // Sealed: nothing can have damaged the bytes since control wrote them. The saver writes the
  // checksum of what is saved.
  options.verify_checksum = false;
  options.previous = slot_->active_for_writer();
  options.stats = &vs;
  snap::LoadedSnapshot* loaded =
      fd_count == 1 ? snap::LoadedSnapshot::from_fd(fds[0], &error, options)
                    : snap::LoadedSnapshot::from_overlay(fds[0], fds[1], &error, options);
  if (loaded == nullptr) {
    log_line("refused generation %llu: invalid image: %s",
             static_cast<unsigned long long>(announced), error.c_str());
    return "ERR invalid snapshot: " + error;
  }
  const uint64_t validated_us = micros_since(start);
  const uint64_t generation = loaded->view().generation();
  const uint64_t active = slot_->active_generation();
  std::string refusal;
  if (generation != announced) {
    refusal = "generation mismatch: announced " + std::to_string(announced) + ", image has " +
              std::to_string(generation);
  } else if (generation <= active) {
    refusal = "stale generation " + std::to_string(generation) + " (active " +
              std::to_string(active) + ")";
  }
  if (!refusal.empty()) {
    delete loaded;
    log_line("refused generation %llu: %s", static_cast<unsigned long long>(announced),
             refusal.c_str());
    return "ERR " + refusal;
  }

  const auto swap_start = std::chrono::steady_clock::now();
  // This thread is the only writer, so `loaded` stays alive after the exchange until the next one.
  retired_ = slot_->exchange(loaded);
  const uint64_t swap_us = micros_since(swap_start);
  to_save_ = loaded->flat_image();
  save_generation_ = generation;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    PublishStats& p = last_publish_;
    p = PublishStats();
    p.generation = generation;
    p.bytes = loaded->size();
    p.received_bytes = loaded->received_size();
    p.overlay = fd_count == 2 ? 1 : 0;
    p.base_shared = loaded->base_shared() ? 1 : 0;
    p.sections_shared = vs.sections_shared;
    p.checksum_us = vs.checksum_ns / 1000;
    p.compare_us = vs.compare_ns / 1000;
    p.checks_us = vs.checks_ns / 1000;
    p.lpm_us = vs.lpm_ns / 1000;
    const uint64_t validation_us = p.checksum_us + p.compare_us + p.checks_us + p.lpm_us;
    p.map_us = validated_us > validation_us ? validated_us - validation_us : 0;
    p.swap_us = swap_us;
    p.sections_same = vs.sections_same;
    p.checks_run = vs.checks_run;
    p.checks_skipped = vs.checks_skipped;
    p.bytes_same = vs.bytes_same;
    p.total_us = micros_since(start);
  }
  log_line(
      "published generation %llu (%zu bytes%s%zu received, previous %llu; %u of %u checks "
      "reused)",
      static_cast<unsigned long long>(generation), loaded->size(),
      fd_count == 2 ? (loaded->base_shared() ? ", overlay on the base in service: "
                                             : ", overlay on a new base: ")
                    : ", ",
      loaded->received_size(), static_cast<unsigned long long>(active), vs.checks_skipped,
      vs.checks_skipped + vs.checks_run);
  return "OK " + std::to_string(generation);
}

std::string ControlChannel::status_json() const {
  // Totals in visiting order: the engine's counters, then the packet counters when any worker
  // (a DPDK lcore) has them.
  std::vector<uint64_t> totals;
  bool any_packets = false;
  std::string out = "{\"generation\":" + std::to_string(slot_->active_generation());
  out += ",\"workers\":[";
  for (size_t w = 0; w < workers_.size(); ++w) {
    out += w == 0 ? "{" : ",{";
    out += "\"worker\":" + std::to_string(w) + ",\"transport\":\"" + workers_[w].transport + "\",";
    CounterJson json(&out);
    size_t i = 0;
    visit_counters(workers_[w], [&](const char* name, uint64_t value) {
      json(name, value);
      if (i == totals.size()) totals.push_back(0);
      totals[i++] += value;
    });
    any_packets = any_packets || workers_[w].packets != nullptr;
    out += "}";
  }
  out += "],\"totals\":{";
  const engine::WorkerState zero_state;
  const packet::PacketCounters zero_packets;
  CounterJson json(&out);
  size_t i = 0;
  visit_counters(
      {&zero_state, "", any_packets ? &zero_packets : nullptr},
      [&](const char* name, uint64_t) { json(name, i < totals.size() ? totals[i++] : 0); });
  out += "}";
  const PublishStats p = last_publish();
  const SnapshotSaver::Stats saved = saver_.stats();
  out += ",\"last_publish\":{";
  CounterJson publish_json(&out);
  publish_json("generation", p.generation);
  publish_json("bytes", p.bytes);
  publish_json("received_bytes", p.received_bytes);
  publish_json("overlay", p.overlay);
  publish_json("base_shared", p.base_shared);
  publish_json("total_us", p.total_us);
  publish_json("map_us", p.map_us);
  publish_json("checksum_us", p.checksum_us);
  publish_json("compare_us", p.compare_us);
  publish_json("checks_us", p.checks_us);
  publish_json("lpm_us", p.lpm_us);
  publish_json("swap_us", p.swap_us);
  publish_json("free_us", p.free_us);
  publish_json("sections_same", p.sections_same);
  publish_json("sections_shared", p.sections_shared);
  publish_json("bytes_same", p.bytes_same);
  publish_json("checks_run", p.checks_run);
  publish_json("checks_skipped", p.checks_skipped);
  out += "},\"saved\":{";
  CounterJson saved_json(&out);
  saved_json("generation", saved.saved_generation);
  saved_json("saves", saved.saves);
  saved_json("skipped", saved.skipped);
  saved_json("failures", saved.failures);
  saved_json("last_save_us", saved.last_save_us);
  out += "}";
  if (status_extra_) status_extra_(&out);
  out += "}";
  return out;
}

}  // namespace gtm::io
