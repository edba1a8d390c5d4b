#include "dataplane/io/udp_workers.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

#include "dataplane/io/log.h"

namespace gtm::io {

namespace {

constexpr unsigned kBatch = 32;
// Larger queries are not DNS queries anyone needs answered; they are dropped (MSG_TRUNC).
constexpr size_t kRxBufSize = 4096;
// answer_query never writes more than 1232 octets over UDP; the slack costs nothing.
constexpr size_t kTxBufSize = 4096;
// Enough for one IP_PKTINFO or IPV6_PKTINFO control message.
constexpr size_t kCtrlSize = 64;
// Batches taken from one socket per wake-up before looking at the others (and the stop fd).
constexpr int kMaxBatchesPerWake = 8;
constexpr int kMaxSockets = 64;

uint64_t seed_for_worker(uint32_t index) {
  std::random_device rd;
  uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  seed ^= (index + 1) * 0x9E3779B97F4A7C15ull;      // distinct even if random_device were weak
  return seed != 0 ? seed : 0x2545F4914F6CDD1Dull;  // xorshift must not start at 0
}

}  // namespace

struct alignas(64) UdpWorkerContext {
  engine::WorkerState state;  // first: its own cache lines, written only by this worker
  uint32_t index = 0;
  uint32_t reader = 0;  // RCU reader id
  int cpu = -1;
  int fds[kMaxSockets];
  bool fd_pktinfo[kMaxSockets];
  int fd_count = 0;
  std::thread thread;

  mmsghdr rx_msgs[kBatch];
  iovec rx_iov[kBatch];
  sockaddr_storage rx_addr[kBatch];
  mmsghdr tx_msgs[kBatch];
  iovec tx_iov[kBatch];
  alignas(alignof(cmsghdr)) uint8_t rx_ctrl[kBatch][kCtrlSize];
  alignas(alignof(cmsghdr)) uint8_t tx_ctrl[kBatch][kCtrlSize];
  alignas(64) uint8_t rx_buf[kBatch][kRxBufSize];
  alignas(64) uint8_t tx_buf[kBatch][kTxBufSize];
};

namespace {

void to_client_addr(const sockaddr_storage& ss, engine::ClientAddr* out) {
  if (ss.ss_family == AF_INET) {
    out->family = 4;
    std::memcpy(out->addr, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    out->family = 6;
    std::memcpy(out->addr, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, 16);
  } else {
    out->family = 0;
  }
}

// Copies the query's destination address (wildcard sockets only) into a control message for the
// reply, so it leaves from the address the client sent to. Returns the control length, 0 if none.
size_t reply_source_ctrl(const msghdr& rx, uint8_t* ctrl) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&rx); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&rx), c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo in;
      std::memcpy(&in, CMSG_DATA(c), sizeof(in));
      in_pktinfo out{};
      out.ipi_spec_dst = in.ipi_addr;  // source address of the reply; routing picks the interface
      auto* h = reinterpret_cast<cmsghdr*>(ctrl);
      h->cmsg_level = IPPROTO_IP;
      h->cmsg_type = IP_PKTINFO;
      h->cmsg_len = CMSG_LEN(sizeof(out));
      std::memcpy(CMSG_DATA(h), &out, sizeof(out));
      return CMSG_SPACE(sizeof(out));
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo in;
      std::memcpy(&in, CMSG_DATA(c), sizeof(in));  // same address, same interface (link-local)
      auto* h = reinterpret_cast<cmsghdr*>(ctrl);
      h->cmsg_level = IPPROTO_IPV6;
      h->cmsg_type = IPV6_PKTINFO;
      h->cmsg_len = CMSG_LEN(sizeof(in));
      std::memcpy(CMSG_DATA(h), &in, sizeof(in));
      return CMSG_SPACE(sizeof(in));
    }
  }
  return 0;
}

// Sends tx_msgs[0, count); a message the kernel refuses (full send buffer, unreachable peer) is
// dropped and counted, and the rest still go out.
void send_batch(UdpWorkerContext& w, int fd, unsigned count) {
  unsigned sent = 0;
  while (sent < count) {
    int n = sendmmsg(fd, w.tx_msgs + sent, count - sent, MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<unsigned>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    ++w.state.counters.tx_errors;
    ++sent;
  }
}

// Receives, answers and sends one batch. Returns how many datagrams were received.
unsigned serve_batch(UdpWorkerContext& w, int fd, bool pktinfo, const snap::SnapshotView* snap) {
  for (unsigned i = 0; i < kBatch; ++i) {
    w.rx_iov[i] = {w.rx_buf[i], kRxBufSize};
    msghdr& h = w.rx_msgs[i].msg_hdr;
    h.msg_name = &w.rx_addr[i];
    h.msg_namelen = sizeof(w.rx_addr[i]);
    h.msg_iov = &w.rx_iov[i];
    h.msg_iovlen = 1;
    h.msg_control = pktinfo ? w.rx_ctrl[i] : nullptr;
    h.msg_controllen = pktinfo ? kCtrlSize : 0;
    h.msg_flags = 0;
  }
  int got;
  do {
    got = recvmmsg(fd, w.rx_msgs, kBatch, MSG_DONTWAIT, nullptr);
  } while (got < 0 && errno == EINTR);
  if (got <= 0) return 0;  // EAGAIN: another worker or a spurious wake-up took the data

  unsigned out = 0;
  engine::ClientAddr client;
  for (unsigned i = 0; i < static_cast<unsigned>(got); ++i) {
    const msghdr& rh = w.rx_msgs[i].msg_hdr;
    if (rh.msg_flags & MSG_TRUNC) {
      ++w.state.counters.malformed_dropped;
      continue;
    }
    to_client_addr(w.rx_addr[i], &client);
    size_t len = engine::answer_query(snap, w.rx_buf[i], w.rx_msgs[i].msg_len, w.tx_buf[out],
                                      kTxBufSize, client, engine::Transport::kUdp, w.state);
    if (len == 0) continue;
    w.tx_iov[out] = {w.tx_buf[out], len};
    msghdr& th = w.tx_msgs[out].msg_hdr;
    th.msg_name = w.rx_msgs[i].msg_hdr.msg_name;
    th.msg_namelen = rh.msg_namelen;
    th.msg_iov = &w.tx_iov[out];
    th.msg_iovlen = 1;
    size_t ctrl_len = pktinfo ? reply_source_ctrl(rh, w.tx_ctrl[out]) : 0;
    th.msg_control = ctrl_len != 0 ? w.tx_ctrl[out] : nullptr;
    th.msg_controllen = ctrl_len;
    th.msg_flags = 0;
    ++out;
  }
  if (out != 0) send_batch(w, fd, out);
  return static_cast<unsigned>(got);
}

void run_worker(UdpWorkerContext& w, SnapshotSlot& slot, int stop_fd) {
  const uint32_t reader = w.reader;
  if (!slot.register_reader(reader)) {
    log_line("udp worker %u: cannot register as an RCU reader", w.index);
    return;
  }
  pollfd pfds[kMaxSockets + 1];
  for (int i = 0; i < w.fd_count; ++i) pfds[i] = {w.fds[i], POLLIN, 0};
  pfds[w.fd_count] = {stop_fd, POLLIN, 0};

  for (;;) {
    // Offline while blocked: a reader that sleeps in poll() holds no snapshot reference, and if
    // it stayed online a publish would wait for it (grace period) until the next packet arrived.
    slot.offline(reader);
    int ready = poll(pfds, static_cast<nfds_t>(w.fd_count + 1), -1);
    // Back online before touching the snapshot; pointers from before the poll are not used again.
    slot.online(reader);
    if (ready < 0) {
      if (errno == EINTR) continue;
      log_line("udp worker %u: poll: %s", w.index, std::strerror(errno));
      break;
    }
    if (pfds[w.fd_count].revents != 0) break;
    for (int i = 0; i < w.fd_count; ++i) {
      if ((pfds[i].revents & (POLLIN | POLLERR)) == 0) continue;
      for (int round = 0; round < kMaxBatchesPerWake; ++round) {
        const snap::SnapshotView* snap = slot.acquire();
        unsigned got = serve_batch(w, w.fds[i], w.fd_pktinfo[i], snap);
        // Done with `snap`: a pending publish may now free it.
        slot.quiescent(reader);
        if (got < kBatch) break;
      }
    }
  }
  slot.offline(reader);
  slot.unregister_reader(reader);
}

}  // namespace

UdpWorkers::UdpWorkers(SnapshotSlot* slot, int stop_fd, uint32_t first_reader)
    : slot_(slot), stop_fd_(stop_fd), first_reader_(first_reader) {}

UdpWorkers::~UdpWorkers() {
  join();
  for (UdpWorkerContext* w : workers_) {
    for (int i = 0; i < w->fd_count; ++i) close(w->fds[i]);
    delete w;
  }
}

bool UdpWorkers::open(std::vector<ListenAddr>* addrs, uint32_t workers, std::string* error) {
  if (addrs->empty() || addrs->size() > static_cast<size_t>(kMaxSockets)) {
    *error = "between 1 and " + std::to_string(kMaxSockets) + " listen addresses are supported";
    return false;
  }
  for (uint32_t i = 0; i < workers; ++i) {
    auto* w = new UdpWorkerContext();
    w->index = i;
    w->reader = first_reader_ + i;
    w->state.rng = seed_for_worker(i);
    workers_.push_back(w);
  }
  for (ListenAddr& addr : *addrs) {
    for (UdpWorkerContext* w : workers_) {
      int fd = open_udp_socket(addr, error);
      if (fd < 0) return false;
      w->fds[w->fd_count] = fd;
      w->fd_pktinfo[w->fd_count] = addr.is_wildcard();
      ++w->fd_count;
      // Port 0: the first worker's socket picks the port, the others join it.
      if (addr.port() == 0) addr.set_port(bound_port(fd));
    }
  }
  return true;
}

bool UdpWorkers::start(const std::vector<int>& cpus, std::string* error) {
  for (UdpWorkerContext* w : workers_) {
    w->cpu = cpus.empty() ? -1 : cpus[w->index % cpus.size()];
    w->thread = std::thread([w, this] { run_worker(*w, *slot_, stop_fd_); });
    pthread_setname_np(w->thread.native_handle(), ("gtm-udp-" + std::to_string(w->index)).c_str());
    if (w->cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(w->cpu, &set);
      int rc = pthread_setaffinity_np(w->thread.native_handle(), sizeof(set), &set);
      if (rc != 0) {
        *error = "cannot pin udp worker " + std::to_string(w->index) + " to cpu " +
                 std::to_string(w->cpu) + ": " + std::strerror(rc);
        return false;
      }
    }
  }
  return true;
}

void UdpWorkers::join() {
  for (UdpWorkerContext* w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

const engine::WorkerState& UdpWorkers::state(uint32_t worker) const {
  return workers_[worker]->state;
}

}  // namespace gtm::io
