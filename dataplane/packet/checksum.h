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

// A 16-bit byte swap of a value in a register. GCC 12 compiles __builtin_bswap16 of a register,
// with -march=native on CPUs that have MOVBE (EPYC here), to a store and a MOVBE load: a
// store-forwarding round trip (~5 cycles) on the critical path. BSWAP and a shift stay in
// registers.
inline uint16_t swap16(uint16_t v) {
  return static_cast<uint16_t>(__builtin_bswap32(v) >> 16);
}

// Adds `len` bytes at `p` to a running sum. `p` may be unaligned; an odd last byte is padded with
// zero as the RFC says. Callers summing several pieces must give every piece but the last an even
// length (the pieces here are headers of even size, then the payload).
//
// On x86-64, 32 octets per step in one chain of four ADCs with memory operands (the carry stays
// in the flags across steps: LEA and DEC leave CF alone), one instruction per 8 octets where the
// compiler's 128-bit accumulation takes four; GCC does not keep a carry chain in the flags from
// _addcarry_u64. Then up to three 8-octet words, and for a message of 8 octets or more the last
// 1..7 octets from one load of the last 8, shifted: no byte loop, and nothing read outside
// [p, p + len).
inline uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t len) {
  if (len >= 8) {
    const uint8_t* end = p + len;
#if defined(__x86_64__)
    if (size_t blocks = len / 32; blocks != 0) {
      // The "m" operand tells the compiler the asm reads the octets at p (GCC manual, Extended
      // Asm, Clobbers: an array of unknown size).
      asm("clc\n\t"
          "1:\n\t"
          "adcq (%[p]), %[s]\n\t"
          "adcq 8(%[p]), %[s]\n\t"
          "adcq 16(%[p]), %[s]\n\t"
          "adcq 24(%[p]), %[s]\n\t"
          "leaq 32(%[p]), %[p]\n\t"
          "decq %[n]\n\t"
          "jnz 1b\n\t"
          "adcq $0, %[s]"
          : [s] "+r"(sum), [p] "+r"(p), [n] "+r"(blocks)
          : "m"(*reinterpret_cast<const uint8_t(*)[]>(p))
          : "cc");
      len &= 31;
    }
#endif
    unsigned __int128 acc = sum;
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
    return csum_add64(static_cast<uint64_t>(acc), static_cast<uint64_t>(acc >> 64));
  }
  uint8_t tail[8] = {};
  std::memcpy(tail, p, len);
  uint64_t v;
  std::memcpy(&v, tail, 8);
  return csum_add64(sum, v);
}

// Adds a 16-bit value given in host order (a length, a protocol number) as the network-order word
// it stands for.
inline uint64_t csum_add_u16(uint64_t sum, uint16_t host_value) {
  return csum_add64(sum, swap16(host_value));
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
