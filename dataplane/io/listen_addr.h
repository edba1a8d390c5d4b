// Listen addresses ("127.0.0.1:5353", "[::1]:5353") and the sockets bound to them.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace gtm::io {

struct ListenAddr {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = 0;  // AF_INET or AF_INET6

  uint16_t port() const;
  void set_port(uint16_t port);
  // 0.0.0.0 or ::: replies must then carry the query's destination address (IP_PKTINFO).
  bool is_wildcard() const;
  std::string text() const;  // "127.0.0.1:5353", "[::1]:5353"
};

// Parses ADDR:PORT with a numeric IPv4 or bracketed IPv6 address. Port 0 means "any free port".
bool parse_listen_addr(const std::string& text, ListenAddr* out, std::string* error);

// "ADDR:PORT" of any IPv4/IPv6 socket address.
std::string sockaddr_text(const sockaddr* sa);

// A non-blocking UDP socket bound to `addr` with SO_REUSEPORT (one per worker, the kernel spreads
// queries over them), IPV6_V6ONLY on IPv6, and destination-address reporting on wildcard addresses.
// Returns -1 and sets *error on failure.
int open_udp_socket(const ListenAddr& addr, std::string* error);

// A non-blocking, listening TCP socket bound to `addr`. Returns -1 and sets *error on failure.
int open_tcp_listener(const ListenAddr& addr, std::string* error);

// The port the kernel chose for a socket bound to port 0, or 0 on error.
uint16_t bound_port(int fd);

}  // namespace gtm::io
