#include "dataplane/io/snapshot_saver.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "dataplane/io/log.h"
#include "dataplane/snapshot/snapshot.h"

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

void SnapshotSaver::save(int fd, uint64_t generation) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_fd_ >= 0) {
      close(pending_fd_);
      ++stats_.skipped;
    }
    pending_fd_ = fd;
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
    cv_.wait(lock, [this] { return stop_ || pending_fd_ >= 0; });
    if (pending_fd_ < 0) return;  // stopping with nothing left to write
    const int fd = pending_fd_;
    const uint64_t generation = pending_generation_;
    pending_fd_ = -1;
    lock.unlock();
    write_one(fd, generation);
    lock.lock();
  }
}

void SnapshotSaver::write_one(int fd, uint64_t generation) {
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  struct stat st;
  bool ok = false;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    error = std::string("fstat: ") + std::strerror(errno);
  } else {
    const size_t size = static_cast<size_t>(st.st_size);
    void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      error = std::string("mmap: ") + std::strerror(errno);
    } else {
      ok = snap::write_snapshot_file_checksummed(path_, static_cast<const uint8_t*>(map), size,
                                                 &error);
      munmap(map, size);
    }
  }
  close(fd);
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
