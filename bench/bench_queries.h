// DNS queries as a stub resolver sends them, for the benchmarks (engine and dataplane loop).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace gtm::bench {

// RD set, optionally EDNS (payload 1232) and, with `ecs_v4` (3 octets of a /24), EDNS Client
// Subnet for that /24.
inline std::vector<uint8_t> make_query(const char* dotted, uint16_t qtype, bool edns,
                                       const uint8_t* ecs_v4 = nullptr, uint16_t id = 0x1234) {
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
    const uint8_t rdlen = ecs_v4 != nullptr ? 11 : 0;
    q.insert(q.end(), {0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, rdlen});
    if (ecs_v4 != nullptr) {
      q.insert(q.end(), {0, 8, 0, 7, 0, 1, 24, 0, ecs_v4[0], ecs_v4[1], ecs_v4[2]});
    }
  }
  return q;
}

}  // namespace gtm::bench
