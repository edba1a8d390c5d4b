// Saves published images as <run-dir>/snapshot.bin, the last good image loaded at start-up, on a
// thread of its own: writing and fsyncing megabytes takes milliseconds to tens of milliseconds
// on a disk, and none of that may delay the acknowledgement of a publish (or the next one).
//
// Latest wins: an image still waiting when a newer one arrives is never written. The image is
// read from a duplicate of its sealed memfd, which keeps its bytes alive and unchanged whatever
// the snapshot slot frees meanwhile.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace gtm::io {

class SnapshotSaver {
 public:
  struct Stats {
    uint64_t saved_generation = 0;  // the newest image on disk (0: none saved by this process)
    uint64_t saves = 0;
    uint64_t skipped = 0;   // images superseded before their turn
    uint64_t failures = 0;  // logged with the reason
    uint64_t last_save_us = 0;
  };

  explicit SnapshotSaver(std::string path);
  ~SnapshotSaver();  // writes the image still waiting, if any, then stops
  SnapshotSaver(const SnapshotSaver&) = delete;
  SnapshotSaver& operator=(const SnapshotSaver&) = delete;

  // Queues the image in `fd` (a sealed memfd; this takes ownership of the descriptor).
  void save(int fd, uint64_t generation);
  Stats stats() const;

 private:
  void run();
  void write_one(int fd, uint64_t generation);

  const std::string path_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int pending_fd_ = -1;
  uint64_t pending_generation_ = 0;
  bool stop_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace gtm::io
