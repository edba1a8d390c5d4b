// Internet checksum (RFC 1071) for the packet path. No DPDK: the same code runs in the lcore loop,
// the unit tests and the fuzzer.
//
// The one's-complement sum does not depend on byte order (RFC 1071 section 2(B)): words are loaded
// in host order, summed, folded, and the result stored back in host order lands in network order.
// Nor does it depend on the width of the words summed (section 2(C)): 64-bit words with the
// carries added back in give the same folded sum as 16-bit words. A running sum is a 64-bit value
// of that kind; add to it only with csum_add* so no carry is lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gtm::packet {

// a + b with the carry added back in (one's-complement addition of 64-bit words).
inline uint64_t csum_add64(uint64_t a, uint64_t b) {
  uint64_t s;
  const bool carry = __builtin_add_overflow(a, b, &s);
  return s + carry;  // cannot carry again: s <= 2^64 - 2 when carry is set
}

// Adds `len` bytes at `p` to a running sum. `p` may be unaligned; an odd last byte is padded with
// zero as the RFC says. Callers summing several pieces must give every piece but the last an even
// length (the pieces here are headers of even size, then the payload).
//
// Eight octets per step, two instructions each (the carries collect in the high half of a 128-bit
// accumulator), and for a message of 8 octets or more the last 1..7 octets come from one load of
// the last 8, shifted: no byte loop, and nothing read outside [p, p + len).
inline uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t len) {
  unsigned __int128 acc = sum;
  if (len >= 8) {
    const uint8_t* end = p + len;
    for (; len >= 8; len -= 8, p += 8) {
      uint64_t v;
      std::memcpy(&v, p, 8);
      acc += v;
    }
    if (len != 0) {
      // The last 8 octets hold the `len` remaining ones at their top; shifted down, they sit
      // where a load at p would put them, with zeros after them.
      uint64_t v;
      std::memcpy(&v, end - 8, 8);
      acc += v >> (64 - 8 * len);
    }
  } else {
    uint8_t tail[8] = {};
    std::memcpy(tail, p, len);
    uint64_t v;
    std::memcpy(&v, tail, 8);
    acc += v;
  }
  return csum_add64(static_cast<uint64_t>(acc), static_cast<uint64_t>(acc >> 64));
}

// Adds a 16-bit value given in host order (a length, a protocol number) as the network-order word
// it stands for.
inline uint64_t csum_add_u16(uint64_t sum, uint16_t host_value) {
  return csum_add64(sum, __builtin_bswap16(host_value));
}

// Folds to 16 bits (not complemented). Adding a word to itself rotated by half its width leaves
// the end-around-carry sum of its halves in the top half.
inline uint16_t csum_fold(uint64_t sum) {
  const uint64_t s64 = sum + ((sum >> 32) | (sum << 32));
  const uint32_t s32 = static_cast<uint32_t>(s64 >> 32);
  const uint32_t s16 = s32 + ((s32 >> 16) | (s32 << 16));
  return static_cast<uint16_t>(s16 >> 16);
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
