// gtm-control: compiles the YAML configuration into a snapshot image and keeps the dataplane
// serving it.
//
// One thread, one poll loop: the signalfd (SIGHUP reload, SIGTERM/SIGINT exit), the control socket
// (RELOAD, STATUS) and a timer that either retries a pending publish (every 200 ms, the dataplane
// may start after us) or checks once a second that the dataplane has not fallen behind (it
// restarted without our last image), in which case the current image is republished with a new
// generation.
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "control/admin_state.h"
#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "control/events/state_events.h"
#include "control/events/webhook.h"
#include "control/geo/geo_compiler.h"
#include "control/geo/geo_job.h"
#include "control/json_text.h"
#include "control/monitor/health_tracker.h"
#include "control/monitor/prober.h"
#include "control/policy/switch_policy.h"
#include "control/publish/publisher.h"
#include "dataplane/io/control_protocol.h"

namespace gtm::control {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t micros_since(Clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
}

constexpr auto kRetryInterval = std::chrono::milliseconds(200);
constexpr auto kCheckInterval = std::chrono::seconds(1);
constexpr size_t kMaxClients = 16;
// Room for the next image to grow a little beyond the last one (SpareMemfd).
constexpr size_t kSpareSlack = 64 << 10;

void log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log(const char* fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "gtm-control: %s\n", line);
}

bool make_dirs(const std::string& path) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

// Loads a configuration. On failure *reason is "file:line:col: message".
bool load(const std::string& path, LoadedConfig* config, std::string* reason) {
  ConfigError err;
  if (load_config_file(path, config, &err)) return true;
  *reason = err.to_string();
  return false;
}

// Builds `model` once to find what only the compiler can see ("file: message").
bool test_build(const std::string& path, const SnapshotModel& model, std::string* reason) {
  std::vector<uint8_t> image;
  std::string error;
  if (build_snapshot(model, &image, &error)) return true;
  *reason = path + ": " + error;
  return false;
}

// Compiles the geo tables of a configuration that has any (synchronously: start-up only).
bool compile_geo_now(LoadedConfig* config, std::string* reason) {
  if (config->geo.empty()) return true;
  std::string error;
  if (!geo::compile_shared(config->geo, &config->model.geo, &error)) {
    *reason = config->path + ": geo: " + error;
    return false;
  }
  return true;
}

// Job tags: why a geo compilation runs.
constexpr uint64_t kGeoForReload = 1;
constexpr uint64_t kGeoForChangedSources = 2;

// The signals the event loop reads from its signalfd.
sigset_t control_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Blocks them in this thread before any other thread exists (the webhook sender's): threads
// inherit the mask, so the signals can only ever be read from the signalfd, never delivered to a
// thread whose default action would kill the process.
bool block_control_signals() {
  const sigset_t set = control_signals();
  signal(SIGPIPE, SIG_IGN);
  return pthread_sigmask(SIG_BLOCK, &set, nullptr) == 0;
}

// Raises this thread's priority for as long as it lives: from a decided change to its
// acknowledgement, gtm-control must not wait behind other work on the same cores (a probe sink,
// builds, the host's other tenants); the rest of the time (probing) it runs at its usual
// priority. Best effort: raising needs CAP_SYS_NICE; lowering it back never fails.
class PublishPriority {
 public:
  PublishPriority() {
    errno = 0;
    const int now = getpriority(PRIO_PROCESS, 0);
    if (errno != 0 || now <= kNice) return;
    if (setpriority(PRIO_PROCESS, 0, kNice) == 0) {
      restore_ = now;
    } else if (!complained_) {
      complained_ = true;
      log("cannot raise the priority of publishes (nice %d): %s", kNice, std::strerror(errno));
    }
  }
  ~PublishPriority() {
    if (restore_) setpriority(PRIO_PROCESS, 0, *restore_);
  }
  PublishPriority(const PublishPriority&) = delete;
  PublishPriority& operator=(const PublishPriority&) = delete;

 private:
  static constexpr int kNice = -10;
  static inline bool complained_ = false;
  std::optional<int> restore_;
};

class ControlDaemon {
 public:
  ControlDaemon(std::string config_path, std::string run_dir, LoadedConfig config)
      : config_path_(std::move(config_path)),
        run_dir_(std::move(run_dir)),
        model_(std::move(config.model)),
        control_path_(run_dir_path(run_dir_, proto::kControlSocket)),
        admin_path_(run_dir_path(run_dir_, proto::kAdminState)),
        monitors_(std::move(config.monitors)),
        geo_config_(std::move(config.geo)),
        geo_key_(geo::config_key(geo_config_)),
        unstable_ttl_(std::move(config.unstable_ttl)) {
    if (model_.geo) log_geo("compiled", *model_.geo);
  }

  ~ControlDaemon() {
    for (int fd : clients_) close(fd);
    if (listen_fd_ >= 0) {
      close(listen_fd_);
      unlink(control_path_.c_str());
    }
    if (signal_fd_ >= 0) close(signal_fd_);
    if (base_memfd_ >= 0) close(base_memfd_);
  }

  bool start(std::vector<WebhookConfig> webhooks) {
    if (!open_signals() || !open_control_socket()) return false;
    webhooks_.set_hooks(std::move(webhooks));
    if (prober_.fd() < 0) {
      log("epoll_create1: %s", std::strerror(errno));
      return false;
    }
    std::string error;
    if (!health_.configure(model_, monitors_, &prober_, Clock::now(), &error)) {
      log("%s: %s", config_path_.c_str(), error.c_str());
      return false;
    }
    if (health_.target_count() > 0) log("probing %zu target(s)", health_.target_count());
    if (!admin_.load(admin_path_, &error)) log("admin overrides: %s", error.c_str());
    if (!admin_.empty()) log("admin overrides in force: %s", admin_.to_json().c_str());
    return true;
  }

  // Runs until SIGTERM/SIGINT. Returns the process exit code.
  int run() {
    need_publish_ = true;
    next_timer_ = Clock::now();
    for (;;) {
      if (Clock::now() >= next_timer_) on_timer();

      if (!need_publish_ && switch_.next_deadline() && Clock::now() >= *switch_.next_deadline()) {
        on_switch_deadline();
      }

      std::vector<pollfd> fds;
      fds.push_back({signal_fd_, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      fds.push_back({prober_.fd(), POLLIN, 0});
      fds.push_back({geo_job_.fd(), POLLIN, 0});
      for (int c : clients_) fds.push_back({c, POLLIN, 0});
      auto wake = std::min({next_timer_, prober_.next_deadline(), ttl_restore_at_});
      if (!need_publish_ && switch_.next_deadline()) {
        wake = std::min(wake, *switch_.next_deadline());
      }
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now());
      int timeout = static_cast<int>(std::max<int64_t>(0, wait.count()));
      int n = poll(fds.data(), fds.size(), timeout);
      if (n < 0) {
        if (errno == EINTR) continue;
        log("poll: %s", std::strerror(errno));
        return 1;
      }
      run_probes();
      if (Clock::now() >= ttl_restore_at_) restore_ttl();
      if (n == 0) continue;
      if (fds[0].revents & POLLIN) {
        if (!handle_signal()) return 0;
      }
      if (fds[3].revents & POLLIN) on_geo_job_done();
      constexpr size_t kFirstClient = 4;
      for (size_t i = kFirstClient; i < fds.size(); ++i) {
        int& client = clients_[i - kFirstClient];
        if (fds[i].revents != 0 && client >= 0) handle_client(client);
      }
      std::erase(clients_, -1);
      if (fds[1].revents & POLLIN) accept_clients();
    }
  }

 private:
  bool open_signals() {
    const sigset_t set = control_signals();
    signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd_ < 0) log("signalfd: %s", std::strerror(errno));
    return signal_fd_ >= 0;
  }

  bool open_control_socket() {
    if (!make_dirs(run_dir_)) {
      log("cannot create run directory %s: %s", run_dir_.c_str(), std::strerror(errno));
      return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (control_path_.size() >= sizeof(addr.sun_path)) {
      log("socket path too long: %s", control_path_.c_str());
      return false;
    }
    std::memcpy(addr.sun_path, control_path_.c_str(), control_path_.size() + 1);
    // A live socket means another gtm-control owns this run directory; a dead one is a leftover.
    RequestResult probe = send_request(control_path_, "STATUS", -1, 500);
    if (probe.status != RequestStatus::kUnreachable) {
      log("another gtm-control is serving %s", control_path_.c_str());
      return false;
    }
    unlink(control_path_.c_str());
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd, 16) != 0) {
      log("cannot listen on %s: %s", control_path_.c_str(), std::strerror(errno));
      if (fd >= 0) close(fd);
      return false;
    }
    listen_fd_ = fd;
    return true;
  }

  // Returns false when the process should exit.
  bool handle_signal() {
    signalfd_siginfo info;
    while (read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      if (info.ssi_signo == SIGHUP) {
        log("SIGHUP: reloading %s", config_path_.c_str());
        request_reload(-1);
      } else {
        log("signal %u: exiting", info.ssi_signo);
        return false;
      }
    }
    return true;
  }

  void accept_clients() {
    for (;;) {
      int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c < 0) return;
      if (clients_.size() >= kMaxClients) {
        close(c);
        continue;
      }
      clients_.push_back(c);
    }
  }

  void handle_client(int& fd) {
    std::vector<char> buf(proto::kMaxMessage);
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      forget_waiter(fd);
      close(fd);
      fd = -1;
      return;
    }
    std::string request(buf.data(), static_cast<size_t>(n));
    while (!request.empty() && (request.back() == '\n' || request.back() == ' ')) {
      request.pop_back();
    }
    std::string reply;
    if (request == "RELOAD") {
      request_reload(fd);
      return;  // answered when the reload is done (it may wait for a geo compilation)
    } else if (request == "STATUS") {
      reply = status_json();
    } else if (request.rfind("MEMBER ", 0) == 0 || request.rfind("POOL ", 0) == 0) {
      reply = admin_command(request);
    } else {
      reply = "ERR unknown request";
    }
    if (send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
      close(fd);
      fd = -1;
    }
  }

  // Replies to a client whose request was answered later (RELOAD). A client that went away in
  // the meantime is closed and forgotten.
  void reply_later(int fd, const std::string& reply) {
    for (int& c : clients_) {
      if (c != fd) continue;
      if (send(c, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
        close(c);
        c = -1;  // the poll loop erases it
      }
    }
  }

  std::string status_json() const {
    const WebhookSender::Stats hooks = webhooks_.stats();
    return "{\"config\":\"" + json_escape(config_path_) +
           "\",\"generation\":" + std::to_string(generation_) +
           ",\"acked_generation\":" + std::to_string(acked_generation_) + ",\"last_error\":\"" +
           json_escape(publish_error_.empty() ? reload_error_ : publish_error_) +
           "\",\"last_publish_us\":" + std::to_string(last_publish_us_) +
           ",\"last_health_publish_us\":" + std::to_string(last_health_publish_us_) +
           ",\"health_publishes\":" + std::to_string(health_publishes_) +
           ",\"last_build_us\":" + std::to_string(last_build_us_) +
           ",\"full_builds\":" + std::to_string(full_builds_) +
           ",\"health_builds\":" + std::to_string(health_builds_) +
           ",\"probe_targets\":" + std::to_string(health_.target_count()) +
           ",\"probes_completed\":" + std::to_string(prober_.completed()) +
           ",\"events\":" + std::to_string(events_) +
           ",\"webhooks_delivered\":" + std::to_string(hooks.delivered) +
           ",\"webhooks_failed\":" + std::to_string(hooks.failed) +
           ",\"webhooks_dropped\":" + std::to_string(hooks.dropped) + ",\"geo\":" + geo_json() +
           ",\"admin\":" + admin_.to_json() + "}";
  }

  std::string geo_json() const {
    std::string out = "{\"compiling\":" + std::string(geo_job_.busy() ? "true" : "false") +
                      ",\"error\":\"" + json_escape(geo_error_) + "\"";
    if (const geo::CompiledGeo* g = model_.geo.get()) {
      char ms[32];
      std::snprintf(ms, sizeof(ms), "%.1f", g->compile_ms);
      out += ",\"classes\":" + std::to_string(g->class_count) +
             ",\"networks\":" + std::to_string(g->networks_read) +
             ",\"lpm4_entries\":" + std::to_string(g->lpm4_entries) +
             ",\"lpm6_entries\":" + std::to_string(g->lpm6_entries) +
             ",\"files\":" + std::to_string(g->files.size()) + ",\"compile_ms\":" + ms;
    }
    return out + "}";
  }

  static void log_geo(const char* what, const geo::CompiledGeo& g) {
    log("geo: %s: %u classes, %llu networks read, %llu + %llu LPM entries, %zu files, %.1f ms",
        what, g.class_count, static_cast<unsigned long long>(g.networks_read),
        static_cast<unsigned long long>(g.lpm4_entries),
        static_cast<unsigned long long>(g.lpm6_entries), g.files.size(), g.compile_ms);
  }

  // An operator's enable/disable/drain: recorded, saved, and published at once. Returns the reply.
  std::string admin_command(const std::string& request) {
    std::string error;
    if (!admin_.apply_command(request, model_, &error)) return "ERR " + error;
    log("admin: %s", request.c_str());
    change_reason_ = "admin: " + request;
    if (!admin_.save(admin_path_, &error)) log("admin overrides not saved: %s", error.c_str());
    PublishResult p = publish(model_);
    if (p.ok()) return "OK " + std::to_string(p.generation);
    need_publish_ = true;
    next_timer_ = Clock::now() + kRetryInterval;
    return "ERR " + publish_error_ + " (recorded; published when the dataplane takes it)";
  }

  // A RELOAD (from `fd`, or -1 for SIGHUP): re-reads the configuration; publishes it at once when
  // its geo tables are the current ones, or after compiling them off this thread.
  void request_reload(int fd) { request_reload(std::vector<int>{fd}); }

  void request_reload(std::vector<int> waiters) {
    if (geo_job_.busy()) {
      // One compilation at a time: this reload starts when the running one is done.
      reload_queued_ = true;
      for (int fd : waiters) queued_reload_waiters_.push_back(fd);
      return;
    }
    LoadedConfig candidate;
    std::string reason;
    if (!load(config_path_, &candidate, &reason)) {
      refuse_reload(reason, waiters);
      return;
    }
    const bool same_geo =
        geo::config_key(candidate.geo) == geo_key_ &&
        (model_.geo == nullptr ? candidate.geo.empty() : !geo::geo_sources_changed(*model_.geo));
    if (candidate.geo.empty() || same_geo) {
      candidate.model.geo = candidate.geo.empty() ? nullptr : model_.geo;
      finish_reload(std::move(candidate), waiters);
      return;
    }
    log("reload: compiling the geo tables");
    reload_candidate_ = std::move(candidate);
    reload_waiters_ = std::move(waiters);
    geo_job_.start(reload_candidate_.geo, kGeoForReload);
  }

  // A client that hung up no longer waits for a reply (its descriptor number may be reused).
  void forget_waiter(int fd) {
    std::erase(reload_waiters_, fd);
    std::erase(queued_reload_waiters_, fd);
  }

  void refuse_reload(const std::string& reason, const std::vector<int>& waiters) {
    reload_error_ = reason;
    log("reload refused: %s", reason.c_str());
    for (int fd : waiters) {
      if (fd >= 0) reply_later(fd, "ERR " + reason);
    }
  }

  // Publishes a loaded configuration whose geo tables are attached. Replies to `waiters`.
  void finish_reload(LoadedConfig candidate, const std::vector<int>& waiters) {
    std::string reason;
    if (!test_build(config_path_, candidate.model, &reason)) {
      refuse_reload(reason, waiters);
      return;
    }
    std::string error;
    if (!health_.configure(candidate.model, candidate.monitors, &prober_, Clock::now(), &error)) {
      refuse_reload(config_path_ + ": " + error, waiters);
      return;
    }
    std::string reply;
    reload_error_.clear();
    geo_error_.clear();
    geo_failed_sources_.clear();
    webhooks_.set_hooks(candidate.webhooks);
    monitors_ = std::move(candidate.monitors);
    unstable_ttl_ = std::move(candidate.unstable_ttl);
    geo_key_ = geo::config_key(candidate.geo);
    geo_config_ = std::move(candidate.geo);
    change_reason_ = "reload";
    PublishResult p = publish(candidate.model);
    if (p.ok()) {
      model_ = std::move(candidate.model);
      ++model_serial_;
      reply = "OK " + std::to_string(p.generation);
    } else if (p.status == RequestStatus::kUnreachable) {
      // The configuration is valid: it becomes current and goes out as soon as the dataplane
      // is back, exactly as at start-up.
      model_ = std::move(candidate.model);
      ++model_serial_;
      need_publish_ = true;
      next_timer_ = Clock::now() + kRetryInterval;
      log("reload: dataplane unreachable (%s); will publish when it is back", p.error.c_str());
      reply = "ERR " + publish_error_ + " (the new configuration is published when it is back)";
    } else {
      log("reload refused: %s", publish_error_.c_str());
      reply = "ERR " + publish_error_;
    }
    for (int fd : waiters) {
      if (fd >= 0) reply_later(fd, reply);
    }
  }

  // A geo compilation finished: for a reload, or because a source file changed.
  void on_geo_job_done() {
    geo::GeoJob::Result r;
    if (!geo_job_.take(&r)) return;
    if (r.tag == kGeoForReload) {
      std::vector<int> waiters = std::move(reload_waiters_);
      reload_waiters_.clear();
      if (!r.ok) {
        geo_error_ = r.error;
        refuse_reload(config_path_ + ": geo: " + r.error + " (the previous tables keep serving)",
                      waiters);
      } else {
        log_geo("compiled", *r.compiled);
        reload_candidate_.model.geo = r.compiled;
        finish_reload(std::move(reload_candidate_), waiters);
      }
      reload_candidate_ = LoadedConfig();
    } else if (r.tag == kGeoForChangedSources) {
      if (!r.ok) {
        geo_error_ = r.error;
        log("geo: sources changed but refused: %s (the previous tables keep serving)",
            r.error.c_str());
      } else if (geo::config_key(r.config) == geo_key_) {
        geo_error_.clear();
        geo_failed_sources_.clear();
        log_geo("sources changed, recompiled", *r.compiled);
        model_.geo = r.compiled;
        ++model_serial_;
        change_reason_ = "geo: sources changed";
        PublishResult p = publish(model_);
        if (!p.ok()) {
          need_publish_ = true;
          next_timer_ = Clock::now() + kRetryInterval;
        }
      }
    }
    if (reload_queued_) {
      // Every request queued meanwhile is answered by one reload.
      reload_queued_ = false;
      std::vector<int> waiters = std::move(queued_reload_waiters_);
      queued_reload_waiters_.clear();
      request_reload(std::move(waiters));
    }
  }

  // Once a second: a geo source that changed on disk is recompiled and republished. After a
  // refused compilation, only a further change of the files tries again.
  void check_geo_sources() {
    if (geo_job_.busy() || geo_config_.empty() || model_.geo == nullptr) return;
    if (!geo::geo_sources_changed(*model_.geo)) return;
    std::vector<geo::SourceFile> now = geo::stat_sources(geo_config_);
    if (!geo_failed_sources_.empty() && geo::same_sources(now, geo_failed_sources_)) return;
    geo_failed_sources_ = std::move(now);  // cleared again when the compilation succeeds
    log("geo: a source file changed: recompiling");
    geo_job_.start(geo_config_, kGeoForChangedSources);
  }

  // A hold-down ended: the rule goes back to its primary set in a new image.
  void on_switch_deadline() {
    change_reason_ = "switch policy: hold-down ended";
    PublishResult p = publish(model_);
    if (!p.ok()) {
      need_publish_ = true;
      next_timer_ = Clock::now() + kRetryInterval;
    }
  }

  // publish_once, remembering why it failed for STATUS.
  PublishResult publish(const SnapshotModel& model) {
    PublishResult p = publish_once(model);
    if (!p.ok()) {
      publish_error_ = p.status == RequestStatus::kUnreachable
                           ? "dataplane unreachable: " + p.error
                           : "dataplane did not take the image: " + p.error;
    }
    return p;
  }

  // Builds `model` with the next generation and publishes it. The next generation is above both
  // ours and the dataplane's, so a restarted dataplane (lower) or one that kept a newer image
  // (higher) both accept it.
  PublishResult publish_once(const SnapshotModel& model) {
    // Measured on the shared 2-core machine under two compile jobs (bench/RESULTS.md): without
    // it, medians 3.3-5.6 ms and maxima above 11 ms; with it, 2.4-2.7 ms and 6.8-8.3 ms.
    const PublishPriority priority;
    PublishResult p;
    for (int attempt = 0; attempt < 2; ++attempt) {
      // After an acknowledged image the dataplane's generation is known (ours): no question is
      // asked on the way from a verdict to its image. A dataplane that moved on meanwhile
      // refuses the image as stale, and the second attempt asks.
      GenerationResult g;
      if (attempt == 0 && acked_generation_ != 0 && acked_generation_ == generation_) {
        g.status = RequestStatus::kOk;
        g.generation = acked_generation_;
      } else {
        g = query_generation(run_dir_);
      }
      if (!g.ok()) {
        p.status = g.status;
        p.error = g.error;
        return p;
      }
      const uint64_t gen = std::max(g.generation, generation_) + 1;
      // Probe results and operator overrides go on top of the configuration in every image.
      // When that configuration is model_ as it was for the last image, only the health fields
      // are reset, and the compiler is told its configuration is the one it kept: neither
      // compares the whole configuration again (at scale, ~0.5 ms each).
      SnapshotModel& stamped = stamped_;
      const uint64_t serial = &model == &model_ ? model_serial_ : 0;
      if (serial != 0 && stamped_serial_ == serial) {
        copy_health_fields(model, &stamped);
      } else {
        reset_to_configuration(model, &stamped);
        stamped_serial_ = serial;
      }
      admin_.apply_to(&stamped);
      health_.annotate(&stamped);
      switch_.apply(&stamped, Clock::now(), serial != 0 && switched_serial_ == serial);
      switched_serial_ = serial;
      const Clock::time_point ttl_restore_at =
          health_.apply_unstable_ttl(&stamped, unstable_ttl_, Clock::now());
      stamped.generation = gen;
      // A health-only change rebuilds only the sections health decides (SnapshotCompiler). No
      // checksum: the memfd is sealed, and the dataplane checksums what it saves.
      ImageParts parts;
      std::string error;
      const auto build_start = Clock::now();
      const bool same_as_compiled = serial != 0 && compiled_serial_ == serial;
      compiled_serial_ = 0;
      if (!compiler_.build(stamped, &parts, &error, /*with_checksum=*/false, same_as_compiled)) {
        p.status = RequestStatus::kFailed;
        p.error = "build: " + error;
        return p;
      }
      compiled_serial_ = serial;
      const SnapshotCompiler::Stats& built = compiler_.stats();
      ++(built.incremental ? health_builds_ : full_builds_);
      // A full build goes out as the image itself, which stays the base of the overlays of the
      // health changes after it: those send only the sections health recomputed, with the base's
      // memfd, which the dataplane already has mapped (or maps, after a restart).
      const int base = base_memfd(&p.error);
      const ImageParts* overlay = compiler_.overlay();
      const int memfd = base < 0 || overlay == nullptr
                            ? -1
                            : make_sealed_memfd(overlay->parts, &p.error, &spare_memfd_);
      if (base < 0 || (overlay != nullptr && memfd < 0)) {
        p.status = RequestStatus::kFailed;
        return p;
      }
      const size_t sent = overlay != nullptr ? overlay->size : parts.size;
      const uint64_t build_us = micros_since(build_start);
      generation_ = gen;
      if (overlay != nullptr) {
        p = publish_overlay(run_dir_, gen, memfd, base);
        close(memfd);
      } else {
        p = publish_memfd(run_dir_, gen, base);
      }
      if (p.ok()) {
        acked_generation_ = gen;
        ttl_restore_at_ = ttl_restore_at;
        publish_error_.clear();
        log("published generation %llu (%zu bytes, %llu us; %s build + memfd %llu us, %zu bytes "
            "sent, %u of %u pools recomputed)",
            static_cast<unsigned long long>(gen), parts.size,
            static_cast<unsigned long long>(p.round_trip_us),
            built.incremental ? "health-only" : "full", static_cast<unsigned long long>(build_us),
            sent, built.pools_recomputed, built.pools);
        last_publish_us_ = p.round_trip_us;
        last_build_us_ = build_us;
        if (health_change_pending_) {
          // From the probe verdict that decided a change to the dataplane's acknowledgement.
          last_health_publish_us_ = micros_since(health_changed_at_);
          ++health_publishes_;
          health_change_pending_ = false;
        }
        announce_changes(stamped, gen);
        std::swap(published_serial_, stamped_serial_);  // announce_changes swapped the models
        // The pages of the next overlay, allocated now rather than between its verdict and its
        // ack (a full build makes its base's memfd without one).
        if (overlay != nullptr) spare_memfd_.prepare(overlay->size + kSpareSlack);
        if (!ready_) {
          ready_ = true;
          log("ready");
        }
        need_publish_ = false;
        next_timer_ = Clock::now() + kCheckInterval;
        return p;
      }
      // Raced with another publisher or a restart: ask again and step above it, once.
      if (p.status != RequestStatus::kRefused || p.error.find("stale") == std::string::npos) break;
    }
    return p;
  }

  // The sealed memfd of the compiler's base image (its last full build), made once per base.
  // Returns -1 and sets *error when it cannot be made.
  int base_memfd(std::string* error) {
    const std::vector<uint8_t>* image = compiler_.base_image();
    if (image == nullptr) {
      *error = "internal: no base image";
      return -1;
    }
    if (base_memfd_ >= 0 && base_memfd_id_ == compiler_.base_id()) return base_memfd_;
    if (base_memfd_ >= 0) close(base_memfd_);
    base_memfd_ = make_sealed_memfd(image->data(), image->size(), error);
    base_memfd_id_ = compiler_.base_id();
    return base_memfd_;
  }

  // Advances the probes; when a member's health changed, publishes at once. The verdicts of the
  // probes' I/O are applied (and published) before the timers start the next probes, so a
  // verdict never waits behind a burst of connects; all verdicts of one phase go into one image,
  // so a burst of changes costs one publish.
  void run_probes() {
    probe_results_.clear();
    prober_.run_io(&probe_results_);
    apply_probe_results();
    probe_results_.clear();
    prober_.run_timers(Clock::now(), &probe_results_);
    apply_probe_results();
  }

  void apply_probe_results() {
    if (probe_results_.empty()) return;
    // The clock starts when the results that decide are in hand, before they are applied.
    const Clock::time_point verdicts_at = Clock::now();
    std::string reason;
    if (!health_.apply(probe_results_, verdicts_at, &reason)) return;
    log("health: %s", reason.c_str());
    change_reason_ = "health: " + reason;
    health_changed_at_ = verdicts_at;
    health_change_pending_ = true;
    publish(model_);
  }

  // Logs and sends the switch-policy transitions and member/pool/service state changes this image
  // brings, relative to the last acknowledged one (the first image has nothing to compare with).
  void announce_changes(SnapshotModel& now_published, uint64_t generation) {
    if (has_published_) {
      const uint64_t time_ms =
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
      for (const SwitchEvent& e : switch_events(published_, now_published)) {
        ++events_;
        log("switch: %s", switch_event_text(e).c_str());
        webhooks_.post(switch_event_json(e, change_reason_, generation, time_ms));
      }
      for (const StateEvent& e : diff_states(published_, now_published)) {
        ++events_;
        log("event: %s", event_text(e, change_reason_).c_str());
        webhooks_.post(event_json(e, change_reason_, generation, time_ms));
      }
    }
    // Swapped, not copied: the previous image's model becomes the next one to stamp, and it has
    // the same configuration unless that changed (reset_to_configuration).
    std::swap(published_, now_published);
    has_published_ = true;
    change_reason_.clear();
  }

  // A service's unstable window ended: publish its normal TTL again. A failed publish is retried
  // like any other (the next image is built with the TTLs of that moment).
  void restore_ttl() {
    ttl_restore_at_ = Clock::time_point::max();
    log("unstable_ttl: a window ended, publishing the normal TTL");
    change_reason_ = "unstable_ttl window ended";
    if (!publish(model_).ok()) {
      need_publish_ = true;
      next_timer_ = Clock::now() + kRetryInterval;
    }
  }

  void on_timer() {
    if (need_publish_) {
      PublishResult p = publish(model_);
      if (!p.ok()) {
        std::string what =
            p.status == RequestStatus::kUnreachable
                ? "waiting for the dataplane at " + run_dir_path(run_dir_, proto::kDataplaneSocket)
                : "publish failed: " + p.error;
        // Retried every 200 ms: say it once, and again only if the reason changes.
        if (what != last_publish_complaint_) log("%s", what.c_str());
        last_publish_complaint_ = what;
        next_timer_ = Clock::now() + kRetryInterval;
      } else {
        last_publish_complaint_.clear();
      }
      return;
    }
    next_timer_ = Clock::now() + kCheckInterval;
    check_geo_sources();
    GenerationResult g = query_generation(run_dir_);
    if (g.ok() && g.generation < acked_generation_) {
      log("dataplane is at generation %llu, behind ours (%llu): republishing",
          static_cast<unsigned long long>(g.generation),
          static_cast<unsigned long long>(acked_generation_));
      need_publish_ = true;
      on_timer();
    }
  }

  const std::string config_path_;
  const std::string run_dir_;
  SnapshotModel model_;  // the configuration currently published (or to be published)
  // Changes whenever model_ does; the configuration stamped_ was last reset to, and the one the
  // compiler last built, as of that serial (0: another configuration, or none).
  uint64_t model_serial_ = 1;
  uint64_t stamped_serial_ = 0;
  uint64_t published_serial_ = 0;  // the same for published_
  uint64_t switched_serial_ = 0;   // ... and for the last switch_.apply
  uint64_t compiled_serial_ = 0;
  const std::string control_path_;
  const std::string admin_path_;
  AdminOverrides admin_;
  std::vector<MonitorSpec> monitors_;
  geo::GeoConfig geo_config_;  // what model_.geo was compiled from
  std::string geo_key_;        // geo::config_key(geo_config_)
  std::string geo_error_;      // why the last geo compilation was refused; cleared by a good one
  std::vector<geo::SourceFile> geo_failed_sources_;  // the files as they were when it was refused
  geo::GeoJob geo_job_;
  LoadedConfig reload_candidate_;    // waiting for its geo tables
  std::vector<int> reload_waiters_;  // clients waiting for that reload's reply
  bool reload_queued_ = false;       // a reload asked for while a compilation ran
  std::vector<int> queued_reload_waiters_;
  SwitchTracker switch_;
  std::map<WireName, UnstableTtl> unstable_ttl_;
  // When the earliest lowered TTL of the published image goes back up (max(): none is lowered).
  Clock::time_point ttl_restore_at_ = Clock::time_point::max();
  Prober prober_;
  HealthTracker health_;
  std::vector<ProbeResult> probe_results_;
  Clock::time_point health_changed_at_;
  bool health_change_pending_ = false;
  uint64_t last_health_publish_us_ = 0;
  uint64_t health_publishes_ = 0;  // publishes that carried a health change
  SnapshotCompiler compiler_;
  SpareMemfd spare_memfd_;
  int base_memfd_ = -1;         // compiler_'s base image, sealed (base_memfd())
  uint64_t base_memfd_id_ = 0;  // compiler_.base_id() of the image it holds
  uint64_t last_build_us_ = 0;  // build + sealed memfd of the last acknowledged image
  uint64_t full_builds_ = 0;
  uint64_t health_builds_ = 0;  // health-only rebuilds (zones, geo and per-class tables reused)
  WebhookSender webhooks_;
  SnapshotModel published_;  // the last acknowledged model, overrides applied
  SnapshotModel stamped_;    // the model of the image being published
  bool has_published_ = false;
  std::string change_reason_;  // why the next image differs: "reload", "admin: ...", ...
  uint64_t events_ = 0;
  uint64_t last_publish_us_ = 0;

  int signal_fd_ = -1;
  int listen_fd_ = -1;
  std::vector<int> clients_;

  uint64_t generation_ = 0;        // the last generation we stamped on an image
  uint64_t acked_generation_ = 0;  // the last generation the dataplane acknowledged
  bool need_publish_ = false;
  bool ready_ = false;
  std::string reload_error_;   // why the last reload was refused; cleared by a good reload
  std::string publish_error_;  // why the last publish failed; cleared by a good publish
  std::string last_publish_complaint_;
  Clock::time_point next_timer_;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: gtm-control --config FILE [--run-dir DIR]\n"
               "  --config FILE   YAML configuration (required)\n"
               "  --run-dir DIR   directory of dataplane.sock and control.sock (default %s)\n"
               "  --help          this text\n"
               "Signals: SIGHUP reloads the configuration, SIGTERM exits.\n",
               proto::kDefaultRunDir);
}

int control_main(int argc, char** argv) {
  std::string config_path;
  std::string run_dir = proto::kDefaultRunDir;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag, std::string* out) {
      std::string prefix = std::string(flag) + "=";
      if (arg == flag && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      if (arg.compare(0, prefix.size(), prefix) == 0) {
        *out = arg.substr(prefix.size());
        return true;
      }
      return false;
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (value("--config", &config_path) || value("--run-dir", &run_dir)) continue;
    std::fprintf(stderr, "gtm-control: unknown or incomplete argument: %s\n", arg.c_str());
    usage(stderr);
    return 2;
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "gtm-control: --config is required\n");
    usage(stderr);
    return 2;
  }

  // A bad configuration at start is fatal: there is nothing good to serve.
  if (!block_control_signals()) {
    std::fprintf(stderr, "gtm-control: cannot block signals: %s\n", std::strerror(errno));
    return 1;
  }
  LoadedConfig config;
  std::string reason;
  if (!load(config_path, &config, &reason) || !compile_geo_now(&config, &reason) ||
      !test_build(config_path, config.model, &reason)) {
    std::fprintf(stderr, "gtm-control: %s\n", reason.c_str());
    return 1;
  }
  std::vector<WebhookConfig> webhooks = config.webhooks;
  ControlDaemon daemon(config_path, run_dir, std::move(config));
  if (!daemon.start(std::move(webhooks))) return 1;
  return daemon.run();
}

}  // namespace
}  // namespace gtm::control

int main(int argc, char** argv) {
  try {
    return gtm::control::control_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gtm-control: fatal: %s\n", e.what());
    return 1;
  }
}
