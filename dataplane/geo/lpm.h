// Longest-prefix-match tables that map a client address to a client class
// (control/geo/geo_model.h).
//
// Control compiles every geo source (MaxMind DB networks, CIDR lists, ISP lines, topology records)
// into one IPv4 and one IPv6 table and stores each as a snapshot section (kSecLpm4, kSecLpm6). The
// dataplane does exactly one lookup per client-dependent query: no MaxMind lookup, no allocation,
// no branch on the number of sources.
//
// The tables are flattened at compile time: their prefixes do not overlap, so each lookup result
// also says how far its answer reaches. `prefix_len` is the length of the largest CIDR block that
// contains the address and throughout which the lookup returns the same value. That is exactly the
// ECS SCOPE PREFIX-LENGTH of an answer decided by the value (RFC 7871 section 7.2.1): a resolver
// that caches the answer for that block never serves it to a client the table would treat
// differently. An address covered by no source maps to value 0 (kNoClass) with the prefix length of
// the largest uncovered block around it.
//
// The image is flat and position-independent (offsets, never pointers), little-endian, 8-byte
// aligned, and checked once by validate(); lookups then index without checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "dataplane/geo/lpm_format.h"

namespace gtm::geo {

inline constexpr uint32_t kNoClass = 0;

struct LpmMatch {
  uint32_t value = kNoClass;  // client class id, < the value_limit given to validate()
  uint8_t prefix_len = 0;     // see above: 0..32 (IPv4) or 0..128 (IPv6)
};

// A validated view of an IPv4 table image. A default-constructed view (or one validated over an
// empty image) maps every address to {kNoClass, 0}.
class Lpm4View {
 public:
  // Checks every offset, index, count, ordering invariant and value (< value_limit) of the image.
  // On failure returns false and sets *error to a one-line reason.
  bool validate(const uint8_t* data, size_t len, uint32_t value_limit, std::string* error);
  // `addr` in host byte order (1.2.3.4 is 0x01020304).
  LpmMatch lookup(uint32_t addr) const;

 private:
  // Set by validate(): the root entry and the object pool (dataplane/geo/lpm_format.h). The
  // default root is a leaf {kNoClass, 0}.
  const uint8_t* pool_ = nullptr;
  uint32_t root_ = 1u << 31;
};

// The same for IPv6; `addr` is 16 bytes in network order.
class Lpm6View {
 public:
  bool validate(const uint8_t* data, size_t len, uint32_t value_limit, std::string* error);
  LpmMatch lookup(const uint8_t* addr) const;

 private:
  const uint8_t* pool_ = nullptr;
  uint32_t root_ = 1u << 31;
};

// The lookups, inline: they run once per steered query, where a call frame was ~10 of ~130
// instructions (callgrind, bench/RESULTS.md). lookup_in is forced inline: GCC 12 kept it out of
// line (a call per steered query); inlined, the lcore's engine stage for topology+ECS is 2-5
// cycles cheaper per packet (bench/RESULTS.md, 2026-12-02 evening).
namespace lpm_detail {

template <class T>
inline __attribute__((always_inline)) LpmMatch bucket_lookup(const uint8_t* obj, uint32_t count,
                                                             uint32_t value_bytes, T key,
                                                             uint32_t depth) {
  const T* keys = reinterpret_cast<const T*>(obj + sizeof(LpmObject));
  uint32_t base = 0, n = count;
  // Branchless: log2(count) steps, each a conditional move; the keys span one or two lines.
  while (n > 1) {
    const uint32_t half = n >> 1;
    base += keys[base + half] <= key ? half : 0;
    n -= half;
  }
  const T start = keys[base];
  const T end = static_cast<T>(keys[base + 1] - 1);  // the zero sentinel ends the last range
  // Keys then values, each padded to 8 octets (lpm_format.h).
  const uint8_t* values = obj + sizeof(LpmObject) + ((uint64_t{count} + 1) * sizeof(T) + 7) / 8 * 8;
  // One table almost always has one value width; this branch is predicted.
  uint32_t value;
  if (value_bytes == 2) {
    uint16_t v;
    std::memcpy(&v, values + base * 2, 2);
    value = v;
  } else {
    std::memcpy(&value, values + base * 4, 4);
  }
  return {value, static_cast<uint8_t>(depth + sizeof(T) * 8 - lpm_block_bits<T>(key, start, end))};
}

// An address as the lookup reads it: host-order words, most significant first.
struct Addr32 {
  uint32_t a;
  // The `n` address bits after the first `depth` bits (n >= 1, depth + n <= 32).
  uint64_t take(uint32_t depth, uint32_t n) const {
    return static_cast<uint32_t>(a << depth) >> (32 - n);
  }
};
struct Addr128 {
  uint64_t hi, lo;
  // The same for n <= 64, depth + n <= 128. Nearly every IPv6 table resolves inside the first 64
  // bits (allocations and ECS prefixes are /64 or shorter): one 64-bit shift pair there instead
  // of 128-bit shifts (~7 instructions each).
  uint64_t take(uint32_t depth, uint32_t n) const {
    if (__builtin_expect(depth + n <= 64, 1)) return (hi << depth) >> (64 - n);
    using u128 = unsigned __int128;
    const u128 v = (u128{hi} << 64) | lo;
    return static_cast<uint64_t>((v << depth) >> (128 - n));
  }
};

template <class A>
inline __attribute__((always_inline)) LpmMatch lookup_in(const uint8_t* pool, uint32_t e, A addr) {
  uint32_t depth = 0;       // first address bit the current entry's object splits on
  uint32_t node_depth = 0;  // depth of the node that holds the current entry
  while (!(e & kLpmLeaf)) {
    const uint8_t* obj = pool + uint64_t{e & kLpmRefOffsetMask} * 8;
    const uint32_t param = (e >> kLpmRefParamShift) & 15;
    if (!(e & kLpmRefBucket)) {
      // A node: the reference carries the stride, so only the entry's cache line is read.
      const uint32_t stride = param + 1;
      node_depth = depth;
      std::memcpy(&e, obj + sizeof(LpmObject) + addr.take(depth, stride) * 4, 4);
      depth += stride;
      continue;
    }
    LpmObject o;
    std::memcpy(&o, obj, sizeof(o));
    const uint64_t key = addr.take(depth, 8u << param);
    switch (param) {
      case 0:
        return bucket_lookup<uint8_t>(obj, o.count, o.value_bytes, static_cast<uint8_t>(key),
                                      depth);
      case 1:
        return bucket_lookup<uint16_t>(obj, o.count, o.value_bytes, static_cast<uint16_t>(key),
                                       depth);
      case 2:
        return bucket_lookup<uint32_t>(obj, o.count, o.value_bytes, static_cast<uint32_t>(key),
                                       depth);
      default:
        return bucket_lookup<uint64_t>(obj, o.count, o.value_bytes, key, depth);
    }
  }
  return {e & kLpmValueMask, static_cast<uint8_t>(node_depth + ((e & ~kLpmLeaf) >> kLpmValueBits))};
}

}  // namespace lpm_detail

inline LpmMatch Lpm4View::lookup(uint32_t addr) const {
  return lpm_detail::lookup_in(pool_, root_, lpm_detail::Addr32{addr});
}

inline LpmMatch Lpm6View::lookup(const uint8_t* addr) const {
  uint64_t hi, lo;
  std::memcpy(&hi, addr, 8);
  std::memcpy(&lo, addr + 8, 8);
  return lpm_detail::lookup_in(pool_, root_,
                               lpm_detail::Addr128{__builtin_bswap64(hi), __builtin_bswap64(lo)});
}

}  // namespace gtm::geo
