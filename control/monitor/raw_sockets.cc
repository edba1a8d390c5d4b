#include "control/monitor/raw_sockets.h"

#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
// After netinet/in.h, so that the kernel header defers to the C library's definitions.
#include <linux/icmp.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace gtm::control {
namespace {

namespace pp = probe_packets;

// Replies arrive in bursts (every target's verdict of a tick); a bigger queue than the default
// keeps a burst from being dropped while the loop is busy elsewhere.
constexpr int kReceiveBuffer = 4 << 20;
constexpr unsigned kBatch = 64;
constexpr size_t kFrame = 256;  // the filters keep this much of each packet

const char* kind_text(RawSockets::Kind kind) {
  switch (kind) {
    case RawSockets::kIcmp4:
      return "raw ICMP socket";
    case RawSockets::kIcmp6:
      return "raw ICMPv6 socket";
    case RawSockets::kTcp4:
      return "raw TCP/IPv4 socket";
    default:
      return "raw TCP/IPv6 socket";
  }
}

template <typename T>
T random_value() {
  T v{};
  if (getrandom(&v, sizeof(v), 0) != static_cast<ssize_t>(sizeof(v))) {
    // No entropy source at all: still distinct per process, which is what matters most.
    v = static_cast<T>(getpid() * 0x9E3779B97F4A7C15ull);
  }
  return v;
}

void read_port_range(uint32_t* lo, uint32_t* hi) {
  *lo = 32768;
  *hi = 60999;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    unsigned a = 0, b = 0;
    if (std::fscanf(f, "%u %u", &a, &b) == 2 && a < b && b <= 65535) {
      *lo = a;
      *hi = b;
    }
    std::fclose(f);
  }
}

}  // namespace

RawSockets::RawSockets() {
  fds_.fill(-1);
  ident_ = random_value<uint16_t>();
  cookie_ = random_value<uint64_t>();
  secret_ = random_value<uint32_t>();
}

RawSockets::~RawSockets() {
  for (int fd : fds_) {
    if (fd >= 0) close(fd);
  }
  for (int fd : port_holders_) close(fd);
}

bool RawSockets::reserve_ports(std::string* error) {
  if (!port_holders_.empty()) return true;
  // A block of the ephemeral range, as any client would use: servers do not bind there. An IPv6
  // socket bound to [::] (not v6-only) holds the port for IPv4 too.
  uint32_t lo = 0, hi = 0;
  read_port_range(&lo, &hi);
  const uint32_t blocks = (hi - lo + 1) / kPorts;
  if (blocks == 0) {
    *error = "ip_local_port_range is too small for a block of " + std::to_string(kPorts) + " ports";
    return false;
  }
  const uint32_t first = random_value<uint32_t>();
  for (uint32_t attempt = 0; attempt < 64; ++attempt) {
    const uint32_t base = lo + ((first + attempt) % blocks) * kPorts;
    std::vector<int> held;
    bool ok = true;
    for (uint32_t port = base; ok && port < base + kPorts; ++port) {
      int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_storage ss{};
      socklen_t len = 0;
      if (fd >= 0) {
        int off = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(static_cast<uint16_t>(port));
        len = sizeof(sockaddr_in6);
      } else {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // a host without IPv6
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(static_cast<uint16_t>(port));
        len = sizeof(sockaddr_in);
      }
      if (fd < 0) {
        *error = std::string("reserving source ports: socket: ") + std::strerror(errno);
        for (int h : held) close(h);
        return false;
      }
      held.push_back(fd);
      ok = bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0;
    }
    if (ok) {
      port_holders_ = std::move(held);
      port_base_ = static_cast<uint16_t>(base);
      return true;
    }
    for (int h : held) close(h);
  }
  *error = "no free block of " + std::to_string(kPorts) + " source ports in ip_local_port_range";
  return false;
}

bool RawSockets::open(Kind kind, int epoll_fd, uint64_t epoll_data, std::string* error) {
  if (fds_[kind] >= 0) return true;
  const bool v6 = kind == kIcmp6 || kind == kTcp6;
  const bool tcp = kind == kTcp4 || kind == kTcp6;
  if (tcp && !reserve_ports(error)) return false;
  int protocol = IPPROTO_TCP;
  if (!tcp) protocol = v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP};
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    *error = std::string(kind_text(kind)) + ": " + std::strerror(errno);
    if (errno == EPERM || errno == EACCES) {
      *error +=
          " (icmp and tcp-half-open monitors need CAP_NET_RAW: run gtm-control as root or "
          "grant it the capability)";
    }
    return false;
  }
  auto fail = [&](const char* what) {
    *error = std::string(kind_text(kind)) + ": " + what + ": " + std::strerror(errno);
    close(fd);
    return false;
  };
  // The cheap type filters first: they run before the BPF program and drop most of the traffic.
  if (kind == kIcmp4) {
    icmp_filter filter{};
    filter.data = ~(1u << pp::kIcmpEchoReply);  // a set bit blocks that type
    if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)) != 0) {
      return fail("ICMP_FILTER");
    }
  } else if (kind == kIcmp6) {
    icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(pp::kIcmp6EchoReply, &filter);
    if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter)) != 0) {
      return fail("ICMP6_FILTER");
    }
  }
  std::vector<sock_filter> program =
      tcp ? pp::tcp_reply_filter(v6, port_base_, static_cast<uint16_t>(port_base_ + kPorts - 1))
          : pp::echo_reply_filter(v6, ident_);
  sock_fprog prog{static_cast<unsigned short>(program.size()), program.data()};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0) {
    return fail("SO_ATTACH_FILTER");
  }
  // Everything queued before the filter was attached passed no filter: drop it.
  uint8_t junk[kFrame];
  while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) >= 0) {
  }
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kReceiveBuffer, sizeof(kReceiveBuffer)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kReceiveBuffer, sizeof(kReceiveBuffer));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = epoll_data;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) return fail("epoll");
  fds_[kind] = fd;
  return true;
}

int RawSockets::send_echoes(const sockaddr_storage& dst, const pp::EchoTag& first, uint32_t count,
                            uint16_t first_seq, uint32_t* sent) {
  *sent = 0;
  if (count == 0 || count > kMaxEchoes) return EINVAL;
  const bool v6 = dst.ss_family == AF_INET6;
  // Raw IPv6 sockets refuse a port other than 0 or their protocol.
  sockaddr_storage to = dst;
  const socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (v6) {
    reinterpret_cast<sockaddr_in6*>(&to)->sin6_port = 0;
  } else {
    reinterpret_cast<sockaddr_in*>(&to)->sin_port = 0;
  }
  // All of a probe's requests in one system call.
  uint8_t packets[kMaxEchoes][pp::kEchoSize];
  iovec iov[kMaxEchoes];
  mmsghdr msgs[kMaxEchoes] = {};
  for (uint32_t k = 0; k < count; ++k) {
    pp::EchoTag tag = first;
    tag.number = static_cast<uint16_t>(first.number + k);
    pp::build_echo_request(v6, ident_, static_cast<uint16_t>(first_seq + k), tag, packets[k]);
    iov[k] = {packets[k], pp::kEchoSize};
    msgs[k].msg_hdr.msg_name = &to;
    msgs[k].msg_hdr.msg_namelen = len;
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  const int fd = fds_[v6 ? kIcmp6 : kIcmp4];
  while (*sent < count) {
    const int n = sendmmsg(fd, msgs + *sent, count - *sent, 0);
    if (n <= 0) return n < 0 ? errno : EIO;
    *sent += static_cast<uint32_t>(n);
  }
  return 0;
}

int RawSockets::send_syn(const sockaddr_storage& src, const sockaddr_storage& dst, uint16_t sport,
                         uint16_t dport, uint32_t seq) {
  const bool v6 = dst.ss_family == AF_INET6;
  uint8_t packet[pp::kSynSize];
  if (pp::build_syn(src, dst, sport, dport, seq, packet) == 0) return EAFNOSUPPORT;
  sockaddr_storage to = dst;
  iovec iov{packet, sizeof(packet)};
  msghdr msg{};
  msg.msg_name = &to;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // The source goes with the packet: it is the address the checksum was computed over, even if
  // the routes change before the next lookup.
  alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  msg.msg_control = control;
  cmsghdr* cmsg = reinterpret_cast<cmsghdr*>(control);
  if (v6) {
    reinterpret_cast<sockaddr_in6*>(&to)->sin6_port = 0;
    msg.msg_namelen = sizeof(sockaddr_in6);
    in6_pktinfo info{};
    info.ipi6_addr = reinterpret_cast<const sockaddr_in6&>(src).sin6_addr;
    cmsg->cmsg_level = IPPROTO_IPV6;
    cmsg->cmsg_type = IPV6_PKTINFO;
    cmsg->cmsg_len = CMSG_LEN(sizeof(info));
    std::memcpy(CMSG_DATA(cmsg), &info, sizeof(info));
    msg.msg_controllen = CMSG_SPACE(sizeof(info));
  } else {
    reinterpret_cast<sockaddr_in*>(&to)->sin_port = 0;
    msg.msg_namelen = sizeof(sockaddr_in);
    in_pktinfo info{};
    info.ipi_spec_dst = reinterpret_cast<const sockaddr_in&>(src).sin_addr;
    cmsg->cmsg_level = IPPROTO_IP;
    cmsg->cmsg_type = IP_PKTINFO;
    cmsg->cmsg_len = CMSG_LEN(sizeof(info));
    std::memcpy(CMSG_DATA(cmsg), &info, sizeof(info));
    msg.msg_controllen = CMSG_SPACE(sizeof(info));
  }
  if (sendmsg(fds_[v6 ? kTcp6 : kTcp4], &msg, 0) < 0) return errno;
  return 0;
}

void RawSockets::receive(
    Kind kind,
    const std::function<void(const uint8_t*, size_t, const sockaddr_storage&)>& handler) {
  const int fd = fds_[kind];
  if (fd < 0) return;
  uint8_t frames[kBatch][kFrame];
  sockaddr_storage from[kBatch];
  iovec iov[kBatch];
  mmsghdr msgs[kBatch];
  for (;;) {
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = {frames[i], kFrame};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    for (int i = 0; i < n; ++i) {
      // Truncated frames keep their headers, which is all the parsers read.
      const size_t len = std::min<size_t>(msgs[i].msg_len, kFrame);
      handler(frames[i], len, from[i]);
    }
    if (static_cast<unsigned>(n) < kBatch) return;
  }
}

void RawSockets::receive_echo(Kind kind, const EchoHandler& handler) {
  const bool v6 = kind == kIcmp6;
  receive(kind, [&](const uint8_t* data, size_t len, const sockaddr_storage& from) {
    pp::EchoTag tag;
    if (pp::parse_echo_reply(v6, data, len, ident_, cookie_, &tag)) handler(tag, from);
  });
}

void RawSockets::receive_tcp(Kind kind, const TcpHandler& handler) {
  const bool v6 = kind == kTcp6;
  receive(kind, [&](const uint8_t* data, size_t len, const sockaddr_storage& from) {
    pp::TcpReply reply;
    if (pp::parse_tcp_reply(v6, data, len, &reply)) handler(reply, from);
  });
}

bool route_source(const sockaddr_storage& dst, sockaddr_storage* src, std::string* error) {
  const bool v6 = dst.ss_family == AF_INET6;
  const socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  sockaddr_storage to = dst;
  // Any port: connecting a datagram socket only looks the route up.
  if (v6) {
    reinterpret_cast<sockaddr_in6*>(&to)->sin6_port = htons(9);
  } else {
    reinterpret_cast<sockaddr_in*>(&to)->sin_port = htons(9);
  }
  const int fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("route lookup: socket: ") + std::strerror(errno);
    return false;
  }
  socklen_t got = sizeof(*src);
  const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&to), len) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(src), &got) == 0;
  if (!ok) *error = std::string("no route: ") + std::strerror(errno);
  close(fd);
  return ok;
}

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                       &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, 16) == 0;
  }
  return false;
}

}  // namespace gtm::control
