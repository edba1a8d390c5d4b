// DNS queries as a stub resolver sends them, for the benchmarks (engine and dataplane loop).
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace gtm::bench {

// An EDNS Client Subnet: family 4 or 6, SOURCE PREFIX-LENGTH, the address (network order, zero
// past the prefix).
struct EcsSubnet {
  uint8_t family = 0;
  uint8_t prefix = 0;
  uint8_t addr[16] = {};
};

// "192.0.2.0/24" or "2001:db8::/56". False when `text` is not such a subnet.
inline bool parse_subnet(const std::string& text, EcsSubnet* out) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos) return false;
  const std::string addr = text.substr(0, slash);
  char* end = nullptr;
  const unsigned long prefix = std::strtoul(text.c_str() + slash + 1, &end, 10);
  if (end == text.c_str() + slash + 1 || *end != '\0') return false;
  EcsSubnet s;
  if (inet_pton(AF_INET, addr.c_str(), s.addr) == 1) {
    s.family = 4;
  } else if (inet_pton(AF_INET6, addr.c_str(), s.addr) == 1) {
    s.family = 6;
  } else {
    return false;
  }
  if (prefix == 0 || prefix > (s.family == 4 ? 32u : 128u)) return false;
  s.prefix = static_cast<uint8_t>(prefix);
  // RFC 7871 section 6: the address bits past SOURCE PREFIX-LENGTH must be zero.
  for (unsigned bit = s.prefix; bit < (s.family == 4 ? 32u : 128u); ++bit) {
    if (s.addr[bit / 8] & (0x80u >> (bit % 8))) return false;
  }
  *out = s;
  return true;
}

// RD set, optionally EDNS (payload 1232) and, with `ecs`, an EDNS Client Subnet option carrying
// the prefix's octets only (RFC 7871 section 6).
inline std::vector<uint8_t> make_query_subnet(const char* dotted, uint16_t qtype, bool edns,
                                              const EcsSubnet* ecs, uint16_t id) {
  std::vector<uint8_t> q = {
      static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0,
      edns ? uint8_t{1} : uint8_t{0}};
  const char* p = dotted;
  while (*p != '\0') {
    const char* dot = std::strchr(p, '.');
    const size_t len = dot != nullptr ? static_cast<size_t>(dot - p) : std::strlen(p);
    q.push_back(static_cast<uint8_t>(len));
    q.insert(q.end(), p, p + len);
    p += len;
    if (*p == '.') ++p;
  }
  q.push_back(0);
  q.insert(q.end(), {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), 0, 1});
  if (edns) {
    const uint8_t octets = ecs != nullptr ? static_cast<uint8_t>((ecs->prefix + 7) / 8) : 0;
    const uint8_t rdlen = ecs != nullptr ? static_cast<uint8_t>(8 + octets) : 0;
    q.insert(q.end(), {0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, rdlen});
    if (ecs != nullptr) {
      q.insert(q.end(), {0, 8, 0, static_cast<uint8_t>(4 + octets), 0,
                         static_cast<uint8_t>(ecs->family == 4 ? 1 : 2), ecs->prefix, 0});
      q.insert(q.end(), ecs->addr, ecs->addr + octets);
    }
  }
  return q;
}

// The same with, given `ecs_v4` (3 octets of a /24), EDNS Client Subnet for that /24.
inline std::vector<uint8_t> make_query(const char* dotted, uint16_t qtype, bool edns,
                                       const uint8_t* ecs_v4 = nullptr, uint16_t id = 0x1234) {
  if (ecs_v4 == nullptr) return make_query_subnet(dotted, qtype, edns, nullptr, id);
  EcsSubnet s;
  s.family = 4;
  s.prefix = 24;
  std::memcpy(s.addr, ecs_v4, 3);
  return make_query_subnet(dotted, qtype, edns, &s, id);
}

}  // namespace gtm::bench
