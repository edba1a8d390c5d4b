// The dataplane's control socket, <run-dir>/dataplane.sock (protocol: control_protocol.h).
//
// Serves PUBLISH (swap in a new image), GENERATION and STATUS on its own thread. That thread is the
// snapshot writer, never an RCU reader, so it may block in a grace period without stalling itself.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <thread>
#include <vector>

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
  std::string handle(const char* request, size_t len, const int* fds, size_t fd_count);

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
  std::thread thread_;
};

}  // namespace gtm::io
