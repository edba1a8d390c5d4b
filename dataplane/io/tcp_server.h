// DNS over TCP (RFC 7766) on the listen addresses: one thread, epoll, non-blocking sockets.
//
// Each message is framed by a two-byte length. A connection may carry several queries, also
// pipelined; they are answered in order. Partial reads and writes are carried over in the
// connection's buffers, which come from a pool fixed at start (--tcp-max-conns): connections
// beyond it are accepted and closed at once (tcp_rejected), so the server's memory is bounded.
// Idle connections are closed after --tcp-idle-ms.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/engine/answer.h"
#include "dataplane/io/listen_addr.h"
#include "dataplane/io/snapshot_slot.h"

namespace gtm::io {

struct TcpOptions {
  uint32_t max_conns = 256;
  uint32_t idle_ms = 10000;
};

class TcpServer {
 public:
  // The thread uses RCU reader id `reader_id`.
  TcpServer(SnapshotSlot* slot, uint32_t reader_id, int stop_fd, TcpOptions options);
  ~TcpServer();  // joins (if started), closes every socket, frees the pool

  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  // Binds and listens on every address, allocates the connection pool.
  bool open(const std::vector<ListenAddr>& addrs, std::string* error);
  bool start(std::string* error);
  // Waits for the thread, which stops once `stop_fd` (an eventfd) becomes readable.
  void join();

  const engine::WorkerState& state() const { return state_; }

  struct Conn;

 private:
  void run();
  void accept_all(int listen_fd, uint64_t now_ms);
  void service(Conn& c, uint32_t events, const snap::SnapshotView* snap, uint64_t now_ms);
  bool read_some(Conn& c, uint64_t now_ms);
  void answer_frames(Conn& c, const snap::SnapshotView* snap);
  bool flush(Conn& c, uint64_t now_ms);
  void update_interest(Conn& c);
  void close_conn(Conn& c);
  void close_idle(uint64_t now_ms);

  engine::WorkerState state_;  // first: its own cache lines, written only by the TCP thread
  SnapshotSlot* slot_;
  uint32_t reader_id_;
  int stop_fd_;
  TcpOptions options_;
  int epoll_fd_ = -1;
  int spare_fd_ = -1;  // released to accept-and-close when the process is out of descriptors
  std::vector<int> listen_fds_;
  std::vector<Conn> pool_;
  // All connections' buffers in one allocation; untouched pages cost no memory until used.
  std::unique_ptr<uint8_t[]> buffers_;
  Conn* free_list_ = nullptr;
  uint32_t open_conns_ = 0;
  std::thread thread_;
};

}  // namespace gtm::io
