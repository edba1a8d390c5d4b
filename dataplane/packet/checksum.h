// Internet checksum (RFC 1071) for the packet path. No DPDK: the same code runs in the lcore loop,
// the unit tests and the fuzzer.
//
// The one's-complement sum does not depend on byte order (RFC 1071 section 2(B)): words are loaded
// in host order, summed, folded, and the result stored back in host order lands in network order.
// Sums are carried in 64 bits so that adding 32-bit halves never overflows for any frame size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gtm::packet {

// Adds `len` bytes at `p` to a running sum. `p` may be unaligned; an odd last byte is padded with
// zero as the RFC says. Callers summing several pieces must give every piece but the last an even
// length (the pieces here are headers of even size, then the payload).
inline uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t len) {
  while (len >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    sum += (v & 0xFFFFFFFFu) + (v >> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    sum += v;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    sum += v;
    p += 2;
    len -= 2;
  }
  if (len != 0) {
    const uint8_t last[2] = {p[0], 0};
    uint16_t v;
    std::memcpy(&v, last, 2);
    sum += v;
  }
  return sum;
}

// Adds a 16-bit value given in host order (a length, a protocol number) as the network-order word
// it stands for.
inline uint64_t csum_add_u16(uint64_t sum, uint16_t host_value) {
  return sum + __builtin_bswap16(host_value);
}

// Folds to 16 bits (not complemented).
inline uint16_t csum_fold(uint64_t sum) {
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);
  sum = (sum & 0xFFFFu) + (sum >> 16);
  sum = (sum & 0xFFFFu) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The value to store in a checksum field: the complemented fold, in host order of the loaded words.
inline uint16_t csum_finish(uint64_t sum) {
  return static_cast<uint16_t>(~csum_fold(sum));
}

// UDP (RFC 768) and UDP over IPv6 (RFC 8200 section 8.1) transmit a computed 0 as 0xFFFF, since 0
// means "no checksum" (IPv4) or is invalid (IPv6).
inline uint16_t udp_csum_finish(uint64_t sum) {
  const uint16_t c = csum_finish(sum);
  return c == 0 ? 0xFFFF : c;
}

}  // namespace gtm::packet
