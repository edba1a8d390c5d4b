// Builds LPM table images (dataplane/geo/lpm_format.h) from prefixes.
//
// Two layers. flatten() turns possibly overlapping prefixes into the sorted, non-overlapping,
// merged ranges the image stores; what a nested prefix means is up to the caller's combine
// function (the geo compiler unions set memberships; LpmBuilder lets the longest prefix win).
// encode_lpm4/6() then lay the ranges out as an image.
//
// Keys are addresses as unsigned integers in host order: uint32_t for IPv4 (1.2.3.4 is
// 0x01020304) and unsigned __int128 for IPv6 (the 16 network-order bytes read big-endian).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gtm::control::geo {

using u128 = unsigned __int128;

template <class Key>
inline constexpr int kKeyBits = static_cast<int>(sizeof(Key) * 8);

// The last address of the prefix addr/len (len 0..kKeyBits<Key>).
template <class Key>
constexpr Key prefix_last(Key addr, int len) {
  if (len <= 0) return ~Key{0};
  if (len >= kKeyBits<Key>) return addr;
  return addr | ((Key{1} << (kKeyBits<Key> - len)) - 1);
}

// `addr` with the bits past `len` cleared.
template <class Key>
constexpr Key prefix_mask(Key addr, int len) {
  if (len <= 0) return 0;
  if (len >= kKeyBits<Key>) return addr;
  return addr & ~((Key{1} << (kKeyBits<Key> - len)) - 1);
}

u128 key6_from_bytes(const uint8_t* network_order);
void key6_to_bytes(u128 key, uint8_t* network_order);

template <class Key>
struct PrefixItem {
  Key addr;  // bits past len are zero
  uint8_t len;
  uint32_t payload;
};

// Orders items as flatten() needs them: by address, then shorter (enclosing) prefixes first.
template <class Key>
inline bool prefix_item_less(const PrefixItem<Key>& a, const PrefixItem<Key>& b) {
  return a.addr != b.addr ? a.addr < b.addr : a.len < b.len;
}

// Range i covers [start, next range's start); ranges[0].start == 0, neighbours differ in value.
template <class Key>
struct LpmRange {
  Key start;
  uint32_t value;
};

// Walks `items` (sorted by prefix_item_less) and returns the ranges. The whole space has value
// `root`; each run of items with the same prefix gets
//   value = combine(value of the enclosing prefix, const PrefixItem<Key>* first, size_t count).
// Linear in the number of items: prefixes either nest or are disjoint, so the enclosing prefixes
// of the current position form a stack at most kKeyBits + 1 deep.
template <class Key, class Combine>
std::vector<LpmRange<Key>> flatten(const PrefixItem<Key>* items, size_t n, uint32_t root,
                                   Combine&& combine) {
  struct Level {
    Key last;
    uint32_t value;
  };
  Level stack[kKeyBits<Key> + 2];
  int depth = 0;
  stack[0] = {~Key{0}, root};
  std::vector<LpmRange<Key>> out;
  // Starts a range at `pos`, replacing one that started at the same address (a prefix and its
  // enclosing prefix can end together) and merging with an equal predecessor.
  auto start_range = [&out](Key pos, uint32_t value) {
    if (!out.empty() && out.back().start == pos) {
      out.pop_back();
    }
    if (!out.empty() && out.back().value == value) return;
    out.push_back({pos, value});
  };
  start_range(0, root);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && items[j].addr == items[i].addr && items[j].len == items[i].len) ++j;
    const Key addr = items[i].addr;
    while (stack[depth].last < addr) {
      const Key after = stack[depth].last + 1;
      --depth;
      start_range(after, stack[depth].value);
    }
    const uint32_t value = combine(stack[depth].value, items + i, j - i);
    stack[++depth] = {prefix_last(addr, items[i].len), value};
    start_range(addr, value);
    i = j;
  }
  while (depth > 0) {
    const Key last = stack[depth].last;
    --depth;
    if (last != ~Key{0}) start_range(last + 1, stack[depth].value);
  }
  return out;
}

// How a table is laid out. kDirect (what the geo compiler uses): the root is a 16-bit direct index
// and the split blocks below it (those a range boundary cuts) get 8-bit direct nodes too, down to
// /24 (IPv4) or /32 (IPv6, in two 8-bit levels), as many as `direct_budget` bytes of them hold
// (1 KB each), the blocks with the most ranges first; the others keep the compact layout (below).
// A lookup inside a /24-aligned IPv4 or /32-aligned IPv6 range of such a block reads two or three
// entries, searches nothing and finds its ECS scope precomputed in the leaf (the steered query's
// LPM cost, bench/RESULTS.md). A small table (a CIDR list, MaxMind's test database) gets all its
// split blocks direct; the full-scale country database fills the budget with its densest blocks.
// kCompact: the smallest trie (buckets wherever few ranges start, a small root for a small
// table). Both are the same format (lpm_format.h).
enum class LpmLayout { kDirect, kCompact };

// The default budget of direct 8-bit nodes per table (bench/RESULTS.md, "LPM with the full-scale
// database"): 4 MB, what the direct layout already allowed a small table (4096 split blocks).
inline constexpr uint64_t kLpmDirectBudget = uint64_t{4} << 20;

// Lays ranges (as flatten() returns them) out as an image. Values must be < 2^23 (class ids).
// An empty vector yields an empty image; so does a table too large for the format (a pool over
// 512 MB, some 50 million ranges), which callers must treat as an error.
std::vector<uint8_t> encode_lpm4(const std::vector<LpmRange<uint32_t>>& ranges,
                                 LpmLayout layout = LpmLayout::kDirect,
                                 uint64_t direct_budget = kLpmDirectBudget);
std::vector<uint8_t> encode_lpm6(const std::vector<LpmRange<u128>>& ranges,
                                 LpmLayout layout = LpmLayout::kDirect,
                                 uint64_t direct_budget = kLpmDirectBudget);

// Prefix -> value tables where the longest prefix wins; among equal prefixes the last one added.
// Addresses not covered by any prefix get `default_value`.
template <class Key>
class LpmBuilder {
 public:
  explicit LpmBuilder(uint32_t default_value = 0) : default_(default_value) {}

  // Bits of `addr` past `len` are ignored.
  void add(Key addr, int len, uint32_t value) {
    len = std::clamp(len, 0, kKeyBits<Key>);
    items_.push_back({prefix_mask(addr, len), static_cast<uint8_t>(len), value});
  }
  size_t size() const { return items_.size(); }

  std::vector<LpmRange<Key>> ranges() const {
    std::vector<PrefixItem<Key>> sorted = items_;
    std::stable_sort(sorted.begin(), sorted.end(), prefix_item_less<Key>);
    return flatten<Key>(
        sorted.data(), sorted.size(), default_,
        [](uint32_t, const PrefixItem<Key>* run, size_t count) { return run[count - 1].payload; });
  }

 private:
  uint32_t default_;
  std::vector<PrefixItem<Key>> items_;
};

using Lpm4Builder = LpmBuilder<uint32_t>;
using Lpm6Builder = LpmBuilder<u128>;

inline std::vector<uint8_t> encode_lpm(const std::vector<LpmRange<uint32_t>>& r,
                                       LpmLayout layout = LpmLayout::kDirect,
                                       uint64_t direct_budget = kLpmDirectBudget) {
  return encode_lpm4(r, layout, direct_budget);
}
inline std::vector<uint8_t> encode_lpm(const std::vector<LpmRange<u128>>& r,
                                       LpmLayout layout = LpmLayout::kDirect,
                                       uint64_t direct_budget = kLpmDirectBudget) {
  return encode_lpm6(r, layout, direct_budget);
}

}  // namespace gtm::control::geo
