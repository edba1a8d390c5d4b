// Byte layout of an LPM table image (dataplane/geo/lpm.h), shared by the builder in control
// (control/geo/lpm_builder.cc) and the validator/reader (lpm.cc).
//
// The table is a multibit trie whose dense parts end in small sorted range buckets:
//
//   - A *node* covers an aligned address block and splits it by the next `stride` address bits
//     into 2^stride entries (the root is usually a 16-bit node: a direct index on the top 16 bits).
//   - An *entry* (uint32) is either a leaf, when its whole block maps to one value, holding the
//     value and the ECS prefix length precomputed for the block; or a reference to a child node
//     or bucket.
//   - A *bucket* covers a block in which few ranges start: their start offsets inside the block,
//     as the next 8, 16, 32 or 64 address bits (all its boundaries are aligned to that), sorted,
//     with one value each, searched branchlessly.
//
// Why this shape (measured on the full-scale country database, bench/RESULTS.md): sorted ranges
// behind a direct index (tried first: 3.0 + 12.6 MB) are compact for IPv4, but a dense bucket
// (the IPv4 subtree of an IPv6 database puts 340k ranges under ::/16) costs a cache miss per
// binary-search step (~600 ns). This trie is 1.8 + 3.8 MB; a uniformly random address costs one
// or two cache misses (root entry, then a bucket of one or two lines), the densest regions one
// per level, 3-5. Keys are mostly 1-2 bytes, bucket values 2 bytes where the value fits, a
// reference says what it points at (a node level reads one line, not the header first), and
// identical subtrees are stored once, which matters for IPv6: MaxMind's aliases
// of the IPv4 subtree (::ffff:0:0/96, 2001::/32, 2002::/16) and ::/96 itself share one copy,
// because nothing in a subtree depends on its absolute position (leaf prefix lengths are
// relative to the enclosing node, bucket keys to the bucket's block). DIR-24-8 would cost 64 MB
// per family, copied into every snapshot. What the geo compiler builds adds direct 8-bit nodes
// below a 16-bit root where they pay, within a size budget (control/geo/lpm_builder.h: the split
// /16 blocks with the most ranges, and IPv6 /24 blocks below them): the format is the same.
//
// The ECS scope: a block that is not uniform (a node or a bucket) contains the largest uniform
// block around any of its addresses, so that block is computed inside the bucket from the two
// range bounds (count trailing zeros/ones), or precomputed in a leaf entry.
//
// Layout: LpmHeader, then the object pool. Objects are 8-byte aligned and self-describing
// (LpmObject header); a reference points strictly backwards in the pool (children are written
// before their parents), so the graph is acyclic and the validator checks it in one forward pass.
// All integers little-endian.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace gtm::geo {

inline constexpr uint32_t kLpm4Magic = 0x344D504Cu;  // "LPM4" read as little-endian bytes
inline constexpr uint32_t kLpm6Magic = 0x364D504Cu;  // "LPM6"
inline constexpr uint16_t kLpmFormatVersion = 4;

// Entry encoding.
inline constexpr uint32_t kLpmLeaf = 1u << 31;
inline constexpr uint32_t kLpmValueBits = 23;  // values (class ids) are < 2^23
inline constexpr uint32_t kLpmValueMask = (1u << kLpmValueBits) - 1;
// Leaf: kLpmLeaf | rel << 23 | value, where rel = prefix_len - (depth of the enclosing node);
// the root entry counts as enclosed by a node at depth 0.
constexpr uint32_t lpm_leaf(uint32_t value, uint32_t rel) {
  return kLpmLeaf | (rel << kLpmValueBits) | value;
}
// Reference (bit 31 clear): what the object is, so that a lookup goes straight to the entry or
// key it needs without first reading the object's header (for a node, another cache line):
//   bit 30      1 = bucket, 0 = node
//   bits 26-29  node: stride - 1; bucket: log2(key width / 8)
//   bits 0-25   the object's offset in the pool in units of 8 bytes (pools up to 512 MB)
inline constexpr uint32_t kLpmRefBucket = 1u << 30;
inline constexpr uint32_t kLpmRefParamShift = 26;
inline constexpr uint32_t kLpmRefOffsetMask = (1u << kLpmRefParamShift) - 1;
inline constexpr uint64_t kLpmMaxPool = uint64_t{8} << kLpmRefParamShift;

inline constexpr uint32_t kLpmMaxStride = 16;

struct LpmHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t addr_bits;  // 32 or 128
  uint32_t root;       // entry for the whole address space
  uint32_t object_count;
  uint64_t pool_offset;  // sizeof(LpmHeader)
  uint64_t pool_size;    // bytes, a multiple of 8
  uint64_t total_size;   // pool_offset + pool_size
};
static_assert(sizeof(LpmHeader) == 40);

enum LpmObjectKind : uint8_t { kLpmNode = 1, kLpmBucket = 2 };

struct LpmObject {
  uint8_t kind;         // LpmObjectKind
  uint8_t bits;         // node: stride 1..16; bucket: key width 8, 16, 32 or 64
  uint8_t height;       // address bits this object resolves below its block's depth, at most: node:
                        // stride + max child height; bucket: key width minus the trailing zero bits
                        // common to its keys (a key may reach past the last address bit, where the
                        // lookup reads zeros: the boundaries are aligned above it)
  uint8_t value_bytes;  // bucket: 2 (every value < 65536) or 4; node: 0
  uint32_t count;       // node: 2^stride entries; bucket: ranges (>= 2)
  // A reference to this object at pool unit `unit`.
  constexpr uint32_t ref(uint32_t unit) const {
    const uint32_t param =
        kind == kLpmNode ? bits - 1u
                         : static_cast<uint32_t>(std::countr_zero(static_cast<unsigned>(bits / 8)));
    return (kind == kLpmBucket ? kLpmRefBucket : 0u) | (param << kLpmRefParamShift) | unit;
  }
  // node:   uint32_t entries[count], padded to 8 bytes
  // bucket: Key keys[count + 1] (keys[0] = 0, strictly increasing, keys[count] = 0: the end
  //         sentinel, so keys[i + 1] - 1 is the last offset of range i in Key arithmetic),
  //         padded to 8 bytes; then values[count] of value_bytes each (neighbours differ),
  //         padded to 8.
};
static_assert(sizeof(LpmObject) == 8);

// The largest m such that the aligned 2^m block around `a` lies inside [start, end], in the key
// space of T (any unsigned type up to unsigned __int128). That block starts at or after `start`
// when start is aligned to it (m <= ctz(start)) or when `a` exceeds start in a bit >= m
// (m < bit_width(a ^ start)); symmetrically for the end, with trailing ones. The ECS prefix
// length of `a` is then (key bits) - m, for the range [start, end] that holds it.
template <class T>
constexpr int lpm_trailing_zeros(T x) {
  if constexpr (sizeof(T) > 8) {
    const auto lo = static_cast<uint64_t>(x);
    return lo != 0 ? std::countr_zero(lo) : 64 + std::countr_zero(static_cast<uint64_t>(x >> 64));
  } else {
    return std::countr_zero(x);
  }
}

template <class T>
constexpr int lpm_bit_width(T x) {
  if constexpr (sizeof(T) > 8) {
    const auto hi = static_cast<uint64_t>(x >> 64);
    return hi != 0 ? 64 + static_cast<int>(std::bit_width(hi))
                   : static_cast<int>(std::bit_width(static_cast<uint64_t>(x)));
  } else {
    return static_cast<int>(std::bit_width(x));
  }
}

template <class T>
constexpr int lpm_block_bits(T a, T start, T end) {
  const int low = std::max(lpm_trailing_zeros(start), lpm_bit_width(static_cast<T>(a ^ start)) - 1);
  const int high = std::max(lpm_trailing_zeros(static_cast<T>(~end)),
                            lpm_bit_width(static_cast<T>(a ^ end)) - 1);
  return std::min(low, high);
}

}  // namespace gtm::geo
