#include "dataplane/io/listen_addr.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gtm::io {
namespace {

std::string errno_reason(const char* what, const ListenAddr& addr) {
  const int err = errno;  // building the text may clobber errno
  std::string reason = std::string(what) + " " + addr.text() + ": " + std::strerror(err);
  if (err == EADDRINUSE) reason += " (is another DNS server running on this port?)";
  if (err == EACCES) reason += " (ports below 1024 need CAP_NET_BIND_SERVICE)";
  if (err == EADDRNOTAVAIL) reason += " (no such local address)";
  return reason;
}

bool set_int_option(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof(value)) == 0;
}

}  // namespace

uint16_t ListenAddr::port() const {
  if (family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
}

void ListenAddr::set_port(uint16_t port) {
  if (family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port);
  }
}

bool ListenAddr::is_wildcard() const {
  if (family == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr;
  return IN6_IS_ADDR_UNSPECIFIED(&a);
}

std::string ListenAddr::text() const {
  return sockaddr_text(reinterpret_cast<const sockaddr*>(&addr));
}

std::string sockaddr_text(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  char text[INET6_ADDRSTRLEN + 8];
  if (sa->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    std::snprintf(text, sizeof(text), "%s:%u", host, ntohs(v4->sin_port));
    return text;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    std::snprintf(text, sizeof(text), "[%s]:%u", host, ntohs(v6->sin6_port));
    return text;
  }
  return "?";
}

bool parse_listen_addr(const std::string& text, ListenAddr* out, std::string* error) {
  std::string host;
  std::string port_text;
  bool v6 = false;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "bad listen address '" + text + "' (IPv6 is written [ADDR]:PORT)";
      return false;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    v6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      *error = "bad listen address '" + text + "' (expected ADDR:PORT, IPv6 as [ADDR]:PORT)";
      return false;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos ||
      std::atoi(port_text.c_str()) > 65535) {
    *error = "bad port in listen address '" + text + "'";
    return false;
  }
  uint16_t port = static_cast<uint16_t>(std::atoi(port_text.c_str()));
  ListenAddr a;
  if (v6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&a.addr);
    sa->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, host.c_str(), &sa->sin6_addr) != 1) {
      *error = "bad IPv6 address in listen address '" + text + "'";
      return false;
    }
    a.family = AF_INET6;
    a.len = sizeof(sockaddr_in6);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&a.addr);
    sa->sin_family = AF_INET;
    if (inet_pton(AF_INET, host.c_str(), &sa->sin_addr) != 1) {
      *error = "bad IPv4 address in listen address '" + text + "'";
      return false;
    }
    a.family = AF_INET;
    a.len = sizeof(sockaddr_in);
  }
  a.set_port(port);
  *out = a;
  return true;
}

int open_udp_socket(const ListenAddr& addr, std::string* error) {
  int fd = socket(addr.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = errno_reason("socket", addr);
    return -1;
  }
  bool ok = set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (ok && addr.family == AF_INET6) ok = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (ok && addr.is_wildcard()) {
    ok = addr.family == AF_INET ? set_int_option(fd, IPPROTO_IP, IP_PKTINFO, 1)
                                : set_int_option(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
  }
  if (!ok) {
    *error = errno_reason("setsockopt", addr);
    close(fd);
    return -1;
  }
  // Bursts are absorbed by the socket buffer; the kernel caps this at net.core.rmem_max.
  set_int_option(fd, SOL_SOCKET, SO_RCVBUF, 4 << 20);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
    *error = errno_reason("bind udp", addr);
    close(fd);
    return -1;
  }
  return fd;
}

int open_tcp_listener(const ListenAddr& addr, std::string* error) {
  int fd = socket(addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = errno_reason("socket", addr);
    return -1;
  }
  // SO_REUSEADDR (not SO_REUSEPORT): restarts do not wait for TIME_WAIT, but a second server on
  // the same port still fails to bind.
  bool ok = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (ok && addr.family == AF_INET6) ok = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (!ok) {
    *error = errno_reason("setsockopt", addr);
    close(fd);
    return -1;
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
    *error = errno_reason("bind tcp", addr);
    close(fd);
    return -1;
  }
  if (listen(fd, 1024) != 0) {
    *error = errno_reason("listen tcp", addr);
    close(fd);
    return -1;
  }
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

}  // namespace gtm::io
