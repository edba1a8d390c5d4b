// DNS over UDP: one thread per worker, each with its own SO_REUSEPORT socket per listen address,
// so the kernel spreads queries over the workers and no two threads share a socket or a cache line.
//
// Per wake-up a worker receives up to kBatch datagrams with recvmmsg, answers each into its own
// preallocated response buffer and sends the replies with one sendmmsg. Nothing on that path
// allocates or locks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/engine/answer.h"
#include "dataplane/io/listen_addr.h"
#include "dataplane/io/snapshot_slot.h"

namespace gtm::io {

struct UdpWorkerContext;

class UdpWorkers {
 public:
  // Workers use RCU reader ids [first_reader, first_reader + count).
  UdpWorkers(SnapshotSlot* slot, int stop_fd, uint32_t first_reader = 0);
  ~UdpWorkers();  // joins (if started) and closes the sockets

  UdpWorkers(const UdpWorkers&) = delete;
  UdpWorkers& operator=(const UdpWorkers&) = delete;

  // Opens and binds every worker's sockets, so a port in use fails start-up before any thread
  // runs. An address with port 0 gets the port the kernel chose for it (written back to `addrs`).
  bool open(std::vector<ListenAddr>* addrs, uint32_t workers, std::string* error);
  // Starts the threads; worker i is pinned to cpus[i % cpus.size()] when `cpus` is not empty.
  bool start(const std::vector<int>& cpus, std::string* error);
  // Waits for the threads, which stop once `stop_fd` (an eventfd) becomes readable.
  void join();

  uint32_t count() const { return static_cast<uint32_t>(workers_.size()); }
  const engine::WorkerState& state(uint32_t worker) const;

 private:
  SnapshotSlot* slot_;
  int stop_fd_;
  uint32_t first_reader_;
  std::vector<UdpWorkerContext*> workers_;
};

}  // namespace gtm::io
