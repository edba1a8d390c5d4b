#include "dataplane/io/snapshot_saver.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>

#include "dataplane/io/log.h"

namespace gtm::io {

SnapshotSaver::SnapshotSaver(std::string path) : path_(std::move(path)) {
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "gtm-saver");
  // Idle priority: on a busy (or single) core the checksum and write of a saved image yield to
  // everything else, the next publish and its acknowledgement included. Best effort.
  sched_param idle{};
  pthread_setschedparam(thread_.native_handle(), SCHED_IDLE, &idle);
}

SnapshotSaver::~SnapshotSaver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void SnapshotSaver::save(snap::FlatImage image, uint64_t generation) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_) ++stats_.skipped;
    pending_ = std::move(image);
    pending_generation_ = generation;
  }
  cv_.notify_one();
}

SnapshotSaver::Stats SnapshotSaver::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void SnapshotSaver::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || pending_.has_value(); });
    if (!pending_) return;  // stopping with nothing left to write
    const snap::FlatImage image = std::move(*pending_);
    const uint64_t generation = pending_generation_;
    pending_.reset();
    lock.unlock();
    write_one(image, generation);
    lock.lock();
  }
}

void SnapshotSaver::write_one(const snap::FlatImage& image, uint64_t generation) {
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  const bool ok = snap::write_snapshot_file(path_, image, &error);
  const uint64_t us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::steady_clock::now() - start)
                                                .count());
  // The swap has happened; failing to save only costs the image at the next start.
  if (!ok) {
    log_line("could not save generation %llu as %s: %s",
             static_cast<unsigned long long>(generation), path_.c_str(), error.c_str());
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (ok) {
    stats_.saved_generation = generation;
    ++stats_.saves;
  } else {
    ++stats_.failures;
  }
  stats_.last_save_us = us;
}

}  // namespace gtm::io
