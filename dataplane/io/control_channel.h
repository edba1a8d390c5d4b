// The dataplane's control socket, <run-dir>/dataplane.sock (protocol: control_protocol.h).
//
// Serves PUBLISH (swap in a new image), GENERATION and STATUS on its own thread. That thread is the
// snapshot writer, never an RCU reader, so it may block in a grace period without stalling itself.
//
// A PUBLISH (an image, or an overlay and the base image it completes) is acknowledged as soon as
// the new snapshot is validated (against the one in service: dataplane/snapshot/snapshot.h) and
// swapped in; freeing the previous one and saving the new one's flat image as snapshot.bin
// (SnapshotSaver, on its own thread) come after the reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/io/snapshot_saver.h"
#include "dataplane/io/snapshot_slot.h"
#include "dataplane/io/worker_stats.h"

namespace gtm::io {

class ControlChannel {
 public:
  ControlChannel(SnapshotSlot* slot, std::string run_dir, int stop_fd,
                 std::vector<WorkerStatsSource> workers);
  ~ControlChannel();  // joins (if started), closes and removes the socket file

  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  // Creates the socket (mode 0660), replacing a stale socket file. Fails if another live process
  // answers on it.
  bool open(std::string* error);
  bool start(std::string* error);
  // Waits for the thread, which stops once `stop_fd` (an eventfd) becomes readable.
  void join();

  // Called while STATUS is built; appends more members to its JSON object (each starting with
  // ','), e.g. the DPDK backend's port statistics. Set before start().
  void set_status_extra(std::function<void(std::string*)> extra) {
    status_extra_ = std::move(extra);
  }

  // One request (with the descriptors that came with it, which this closes) -> its reply.
  // Work that waits for the reply (finish_after_reply) is done by the caller once it is sent.
  std::string handle(const char* request, size_t len, const int* fds, size_t fd_count);
  void finish_after_reply();

  // What the last accepted PUBLISH cost, from the request to the reply (STATUS "last_publish").
  struct PublishStats {
    uint64_t generation = 0;
    uint64_t bytes = 0;           // of the snapshot (as a flat image)
    uint64_t received_bytes = 0;  // of the image or overlay received (a base aside)
    uint32_t overlay = 0;         // 1: an overlay and its base
    uint32_t base_shared = 0;     // 1: that base was the image in service's (not mapped again)
    uint64_t total_us = 0;        // request received -> reply ready
    uint64_t map_us = 0;          // mmap of the memfd
    uint64_t checksum_us = 0;
    uint64_t compare_us = 0;  // sections compared with the image in service
    uint64_t checks_us = 0;
    uint64_t lpm_us = 0;
    uint64_t swap_us = 0;  // pointer exchange and RCU grace period
    uint64_t free_us = 0;  // unmapping the previous image, after the reply
    uint32_t sections_same = 0;
    uint32_t sections_shared = 0;  // of which read from the same mapping as before
    uint32_t checks_run = 0;
    uint32_t checks_skipped = 0;
    uint64_t bytes_same = 0;
  };
  PublishStats last_publish() const;
  SnapshotSaver::Stats saver_stats() const { return saver_.stats(); }

 private:
  void run();
  void serve_client(int fd, bool* keep);
  std::string publish(const std::string& args, const int* fds, size_t fd_count);
  std::string status_json() const;

  SnapshotSlot* slot_;
  std::string run_dir_;
  std::string socket_path_;
  int stop_fd_;
  std::vector<WorkerStatsSource> workers_;
  std::function<void(std::string*)> status_extra_;
  int listen_fd_ = -1;
  std::vector<int> clients_;
  std::vector<char> buffer_;
  SnapshotSaver saver_;
  // Left by the last PUBLISH for finish_after_reply.
  std::unique_ptr<snap::LoadedSnapshot> retired_;
  std::optional<snap::FlatImage> to_save_;
  uint64_t save_generation_ = 0;
  mutable std::mutex stats_mu_;  // last_publish_ is read by other threads (benchmarks)
  PublishStats last_publish_;
  std::thread thread_;
};

}  // namespace gtm::io
