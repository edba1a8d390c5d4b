// Saves published images as <run-dir>/snapshot.bin, the last good image loaded at start-up, on a
// thread of its own: writing and fsyncing megabytes takes milliseconds to tens of milliseconds
// on a disk, and none of that may delay the acknowledgement of a publish (or the next one).
//
// Latest wins: an image still waiting when a newer one arrives is never written. The image is
// read from the mappings of the snapshot it was (snap::FlatImage keeps them), which stay alive
// and unchanged (sealed memfds) whatever the snapshot slot frees meanwhile. An overlay's snapshot
// is saved as the flat image it makes, so snapshot.bin always loads as a complete snapshot.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "dataplane/snapshot/snapshot.h"

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

  // Queues the image.
  void save(snap::FlatImage image, uint64_t generation);
  Stats stats() const;

 private:
  void run();
  void write_one(const snap::FlatImage& image, uint64_t generation);

  const std::string path_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<snap::FlatImage> pending_;
  uint64_t pending_generation_ = 0;
  bool stop_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace gtm::io
