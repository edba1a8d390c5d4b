// The raw sockets behind the ICMP and half-open TCP monitors: one per (protocol, family), shared by
// every target, registered in the prober's epoll. Opening them needs CAP_NET_RAW; without it
// open() fails with a message saying so, and the configuration that needs them is refused.
//
// Each socket carries a classic-BPF filter (probe_packets.h) so the kernel queues only replies to
// this prober's probes: echo replies with our identifier, SYN-ACKs and RSTs to our port block. The
// port block is reserved by binding a TCP socket to each of its ports (never listened on): no other
// socket on the host can then own those ports, so the kernel, finding no socket for a SYN-ACK sent
// to one of them, answers it with a RST, which closes the half-open connection at the target.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control/monitor/probe_packets.h"

namespace gtm::control {

class RawSockets {
 public:
  enum Kind { kIcmp4, kIcmp6, kTcp4, kTcp6, kKinds };
  static constexpr uint16_t kPorts = 64;  // size of the half-open source-port block

  RawSockets();
  ~RawSockets();
  RawSockets(const RawSockets&) = delete;
  RawSockets& operator=(const RawSockets&) = delete;

  // Opens the socket of `kind` unless it is open, and adds it to `epoll_fd` with `epoll_data`.
  bool open(Kind kind, int epoll_fd, uint64_t epoll_data, std::string* error);
  bool is_open(Kind kind) const { return fds_[kind] >= 0; }
  int fd(Kind kind) const { return fds_[kind]; }

  uint16_t ident() const { return ident_; }
  uint64_t cookie() const { return cookie_; }
  uint32_t secret() const { return secret_; }
  uint16_t port(uint32_t slot) const { return static_cast<uint16_t>(port_base_ + slot % kPorts); }

  // Return 0 or an errno value. send_echoes sends `count` (<= kMaxEchoes) requests numbered from
  // first.number, with ICMP sequence numbers from first_seq; *sent says how many went out.
  static constexpr uint32_t kMaxEchoes = 64;
  int send_echoes(const sockaddr_storage& dst, const probe_packets::EchoTag& first, uint32_t count,
                  uint16_t first_seq, uint32_t* sent);
  int send_syn(const sockaddr_storage& src, const sockaddr_storage& dst, uint16_t sport,
               uint16_t dport, uint32_t seq);

  // Reads everything queued on `kind` and hands each reply that parses to the callback with the
  // address it came from.
  using EchoHandler = std::function<void(const probe_packets::EchoTag&, const sockaddr_storage&)>;
  using TcpHandler = std::function<void(const probe_packets::TcpReply&, const sockaddr_storage&)>;
  void receive_echo(Kind kind, const EchoHandler& handler);
  void receive_tcp(Kind kind, const TcpHandler& handler);

 private:
  bool reserve_ports(std::string* error);
  // Calls handler(data, len, from) for each datagram queued on fds_[kind].
  void receive(Kind kind,
               const std::function<void(const uint8_t*, size_t, const sockaddr_storage&)>& handler);

  std::array<int, kKinds> fds_;
  std::vector<int> port_holders_;  // the bound sockets that reserve the port block
  uint16_t port_base_ = 0;
  uint16_t ident_ = 0;
  uint64_t cookie_ = 0;
  uint32_t secret_ = 0;
};

// The source address the kernel would choose toward dst (the name of a connected UDP socket).
bool route_source(const sockaddr_storage& dst, sockaddr_storage* src, std::string* error);

// Whether two socket addresses hold the same IP address (ports ignored).
bool same_address(const sockaddr_storage& a, const sockaddr_storage& b);

}  // namespace gtm::control
