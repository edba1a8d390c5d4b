#include "control/geo/lpm_builder.h"

#include <bit>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "dataplane/geo/lpm_format.h"

namespace gtm::control::geo {

namespace {

using gtm::geo::kLpmBucket;
using gtm::geo::kLpmLeaf;
using gtm::geo::kLpmNode;
using gtm::geo::LpmHeader;
using gtm::geo::LpmObject;

constexpr uint64_t align8(uint64_t n) {
  return (n + 7) & ~uint64_t{7};
}

int ceil_log2(uint64_t n) {
  return n <= 1 ? 0 : static_cast<int>(std::bit_width(n - 1));
}

// Lays out the trie of lpm_format.h over `ranges`, depth first, children before parents, each
// distinct object once.
template <class Key>
class TrieEncoder {
 public:
  static constexpr int kBits = kKeyBits<Key>;

  TrieEncoder(const std::vector<LpmRange<Key>>& ranges, bool direct, uint64_t direct_budget)
      : r_(ranges), direct_(direct && ranges.size() > 1) {
    if (direct_) choose_direct_blocks(direct_budget);
  }

  std::vector<uint8_t> encode(uint32_t magic) {
    const uint32_t root = entry(0, 0, 0, 0, r_.size());
    if (pool_.size() > gtm::geo::kLpmMaxPool) return {};
    std::vector<uint8_t> image(sizeof(LpmHeader) + pool_.size());
    LpmHeader h{};
    h.magic = magic;
    h.version = gtm::geo::kLpmFormatVersion;
    h.addr_bits = kBits;
    h.root = root;
    h.object_count = objects_;
    h.pool_offset = sizeof(LpmHeader);
    h.pool_size = pool_.size();
    h.total_size = image.size();
    std::memcpy(image.data(), &h, sizeof(h));
    if (!pool_.empty()) std::memcpy(image.data() + sizeof(h), pool_.data(), pool_.size());
    return image;
  }

 private:
  // The direct layout (lpm_builder.h): a 16-bit root, then 8-bit nodes for split blocks at depth
  // 16 (IPv4: to /24) or 16 and 24 (IPv6: to /32), as many as the budget holds.
  static constexpr int kDirectLevels = kBits == 32 ? 1 : 2;
  static constexpr uint64_t kDirectNodeBytes = sizeof(LpmObject) + (uint64_t{4} << 8);

  // What the compact layout makes of a block that is not one range: a bucket of `bits`-bit keys
  // (`used` of them significant) or a node of stride `bits`.
  struct Plan {
    bool bucket;
    int bits;
    int used;
  };

  // Up to 256 bytes of keys: a binary search touches at most 3-4 lines of them.
  static uint64_t bucket_capacity(int key_bits) { return 256 / (key_bits / 8); }

  Key range_last(size_t i) const { return i + 1 < r_.size() ? r_[i + 1].start - 1 : ~Key{0}; }

  // The index of the range holding `addr`, among [lo, limit) (lo holds an address <= addr).
  size_t range_of(Key addr, size_t lo, size_t limit) const {
    auto it = std::upper_bound(r_.begin() + static_cast<std::ptrdiff_t>(lo) + 1,
                               r_.begin() + static_cast<std::ptrdiff_t>(limit), addr,
                               [](Key a, const LpmRange<Key>& x) { return a < x.start; });
    return static_cast<size_t>(it - r_.begin()) - 1;
  }

  // The entry for the block of `depth` bits at `start`, held by a node at `node_depth`; range
  // `lo` holds `start`, and no range at or after `limit` starts inside the block.
  uint32_t entry(Key start, int depth, int node_depth, size_t lo, size_t limit) {
    const Key last = prefix_last(start, depth);
    const size_t hi = range_of(last, lo, limit);
    if (lo == hi) {
      const int plen = kBits - gtm::geo::lpm_block_bits<Key>(start, r_[lo].start, range_last(lo));
      return gtm::geo::lpm_leaf(r_[lo].value, static_cast<uint32_t>(plen - node_depth));
    }
    // Direct: the top 16 bits are an array index, and so are the next 8 (IPv4) or 16 (IPv6) in
    // the blocks chosen for it, so that a client inside a /24-aligned IPv4 or /32-aligned IPv6
    // range costs two or three entry reads and no search, its ECS scope precomputed in the leaf.
    if (direct_ && depth == 0) return node(start, depth, lo, hi, 16);
    // (A /24 block is direct only under an 8-bit node at /16: not inside a trial of its parent.)
    if ((depth == 16 || node_depth == depth - 8) && is_direct_block(start, depth)) {
      // A subtree stored already (the IPv4 data of ::/96 again under 2002::/16 when that block is
      // an 8-bit node) is worth more than a direct node here: share it. Else build the direct
      // node, undoing the trial.
      const size_t pool_mark = pool_.size(), log_mark = inserted_.size();
      const uint32_t objects_mark = objects_;
      ++trials_;
      const uint32_t compact = compact_entry(start, depth, lo, hi);
      --trials_;
      if (pool_.size() == pool_mark) return compact;
      pool_.resize(pool_mark);
      objects_ = objects_mark;
      while (inserted_.size() > log_mark) {
        const std::string key = *inserted_.back();  // a copy: erasing frees the stored key
        seen_.erase(key);
        inserted_.pop_back();
      }
      return node(start, depth, lo, hi, 8);
    }
    return compact_entry(start, depth, lo, hi);
  }

  uint32_t compact_entry(Key start, int depth, size_t lo, size_t hi) {
    const Plan p = plan(depth, lo, hi);
    return p.bucket ? bucket(start, depth, lo, hi, p.bits, p.used)
                    : node(start, depth, lo, hi, p.bits);
  }

  // The compact layout's choice for the block of `depth` bits holding ranges lo..hi (hi > lo).
  Plan plan(int depth, size_t lo, size_t hi) const {
    const uint64_t count = hi - lo + 1;
    // The narrowest key that holds every boundary inside the block (only small blocks can be
    // buckets, so only they are scanned).
    int tz = 0;
    if (count <= bucket_capacity(8)) {
      tz = kBits;
      for (size_t i = lo + 1; i <= hi; ++i) {
        tz = std::min(tz, gtm::geo::lpm_trailing_zeros(r_[i].start));
      }
    }
    const int needed = kBits - depth - tz;
    // The narrowest key width that holds them; it may reach past the last address bit (the
    // lookup reads zeros there). Deciding on relative quantities only keeps equal subtrees equal
    // wherever they sit.
    int key_bits = 8;
    while (key_bits < needed) key_bits *= 2;
    if (key_bits <= std::min(64, kBits) && count <= bucket_capacity(key_bits)) {
      return {true, key_bits, needed};
    }
    // Where all boundaries share a longer prefix (the path from ::/16 down to the IPv4 data at
    // ::/96), wide nodes would be almost all leaves: walk there with 1 KB nodes.
    const int common = gtm::geo::lpm_bit_width(static_cast<Key>(r_[lo + 1].start ^ r_[hi].start));
    const int shared = kBits - common - depth;  // bits below `depth` that every boundary shares
    int stride = choose_stride(depth, count);
    if (depth > 0 && shared >= 4) stride = std::min(stride, std::min(8, shared / 4 * 4));
    return {false, stride, 0};
  }

  // Which split blocks at the direct levels get an 8-bit node (in place of what plan() would
  // make), within `budget` bytes of such nodes. Where plan() makes an 8-bit node anyway there is
  // nothing to decide; where it makes a wider one (a block with thousands of ranges: it resolves
  // more bits per read, and at 2002::/16 it is the IPv4 data shared with ::/96) it stays. The rest
  // (buckets and 4-bit nodes) are candidates, the blocks with the most ranges first: a bucket
  // search costs a step per doubling of its ranges, and with networks equally likely those blocks
  // also see the most clients. Ties go to the shallower, then the lower block, so a /24 block
  // comes after its /16 parent, whose node it needs.
  void choose_direct_blocks(uint64_t budget) {
    struct Candidate {
      uint64_t ranges;
      int level;
      uint32_t block;
    };
    std::vector<Candidate> candidates;
    std::vector<uint8_t> eight16(size_t{1} << 16, 0);  // the /16 blocks that are 8-bit nodes
    for (int level = 0; level < kDirectLevels; ++level) {
      const int depth = 16 + 8 * level;
      for (size_t i = 1; i < r_.size();) {
        if (prefix_mask(r_[i].start, depth) == r_[i].start) {
          ++i;
          continue;
        }
        // Boundaries i..j-1 split this block; range i - 1 holds its start.
        const uint32_t block = static_cast<uint32_t>(r_[i].start >> (kBits - depth));
        size_t j = i + 1;
        while (j < r_.size() && static_cast<uint32_t>(r_[j].start >> (kBits - depth)) == block) ++j;
        const Plan p = plan(depth, i - 1, j - 1);
        if (!p.bucket && p.bits == 8) {
          if (level == 0) eight16[block] = 1;
        } else if (p.bucket || p.bits < 8) {
          candidates.push_back({j - i + 1, level, block});
        }
        i = j;
      }
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      if (a.ranges != b.ranges) return a.ranges > b.ranges;
      return a.level != b.level ? a.level < b.level : a.block < b.block;
    });
    for (const Candidate& c : candidates) {
      if (budget < kDirectNodeBytes) break;
      if (c.level == 1 && !eight16[c.block >> 8]) continue;  // its /16 is a bucket or a 4-bit node
      if (c.level == 0) eight16[c.block] = 1;
      direct_blocks_[c.level].insert(c.block);
      budget -= kDirectNodeBytes;
    }
  }

  bool is_direct_block(Key start, int depth) const {
    if (depth < 16 || depth >= 16 + 8 * kDirectLevels || depth % 8 != 0) return false;
    const std::unordered_set<uint32_t>& set = direct_blocks_[(depth - 16) / 8];
    return !set.empty() && set.count(static_cast<uint32_t>(start >> (kBits - depth))) != 0;
  }

  // About 16 ranges per child, in multiples of 4 bits that never cross a depth that is a multiple
  // of 16: a subtree at such a depth (::/96, 2002::/16, 2001::/32) then starts with its own
  // object, and identical subtrees are stored once.
  // Large tables get the full 16-bit direct index at the root (small ones a smaller root).
  static int choose_stride(int depth, uint64_t count) {
    if (depth == 0 && count >= 4096) return 16;
    const int room = 16 - depth % 16;
    const int wanted = (std::clamp(ceil_log2(count) - 4, 4, 16) + 3) / 4 * 4;
    return std::min(wanted, room);
  }

  uint32_t node(Key start, int depth, size_t lo, size_t hi, int stride) {
    const uint32_t n = 1u << stride;
    std::vector<uint8_t> obj(sizeof(LpmObject) + align8(uint64_t{4} * n), 0);
    LpmObject h{kLpmNode, static_cast<uint8_t>(stride), 0, 0, n};
    const int child_depth = depth + stride;
    int child_height = 0;
    size_t at = lo;
    for (uint32_t i = 0; i < n; ++i) {
      const Key child = start | (static_cast<Key>(i) << (kBits - child_depth));
      while (at < hi && r_[at + 1].start <= child) ++at;
      const uint32_t e = entry(child, child_depth, depth, at, hi + 1);
      if (!(e & kLpmLeaf)) {
        LpmObject c;
        std::memcpy(&c, pool_.data() + uint64_t{e & gtm::geo::kLpmRefOffsetMask} * 8, sizeof(c));
        child_height = std::max<int>(child_height, c.height);
      }
      std::memcpy(obj.data() + sizeof(LpmObject) + uint64_t{i} * 4, &e, 4);
    }
    h.height = static_cast<uint8_t>(stride + child_height);
    std::memcpy(obj.data(), &h, sizeof(h));
    return h.ref(emit(std::move(obj)));
  }

  uint32_t bucket(Key start, int depth, size_t lo, size_t hi, int key_bits, int used_bits) {
    const uint32_t count = static_cast<uint32_t>(hi - lo + 1);
    const uint64_t key_bytes = static_cast<uint64_t>(key_bits / 8);
    const uint64_t keys_size = align8((uint64_t{count} + 1) * key_bytes);
    uint32_t value_bytes = 2;
    for (size_t i = lo; i <= hi; ++i) {
      if (r_[i].value > 0xFFFF) value_bytes = 4;
    }
    std::vector<uint8_t> obj(sizeof(LpmObject) + keys_size + align8(uint64_t{count} * value_bytes),
                             0);
    LpmObject h{kLpmBucket, static_cast<uint8_t>(key_bits), static_cast<uint8_t>(used_bits),
                static_cast<uint8_t>(value_bytes), count};
    std::memcpy(obj.data(), &h, sizeof(h));
    for (uint32_t i = 0; i < count; ++i) {
      // Offsets inside the block, in units of the key: the first range starts at the block.
      const Key off = i == 0 ? Key{0} : r_[lo + i].start - start;
      const int shift = kBits - depth - key_bits;
      const uint64_t key = static_cast<uint64_t>(shift >= 0 ? off >> shift : off << -shift);
      std::memcpy(obj.data() + sizeof(LpmObject) + i * key_bytes, &key, key_bytes);
      // Little-endian: the low value_bytes of the value.
      std::memcpy(obj.data() + sizeof(LpmObject) + keys_size + uint64_t{i} * value_bytes,
                  &r_[lo + i].value, value_bytes);
    }
    return h.ref(emit(std::move(obj)));
  }

  // The pool unit where `obj` is stored.
  uint32_t emit(std::vector<uint8_t>&& obj) {
    std::string bytes(obj.begin(), obj.end());
    auto it = seen_.find(bytes);
    if (it != seen_.end()) return it->second;
    const uint32_t ref = static_cast<uint32_t>(pool_.size() / 8);
    pool_.insert(pool_.end(), obj.begin(), obj.end());
    ++objects_;
    const auto added = seen_.emplace(std::move(bytes), ref).first;
    if (trials_ > 0) inserted_.push_back(&added->first);
    return ref;
  }

  const std::vector<LpmRange<Key>>& r_;
  const bool direct_;
  std::unordered_set<uint32_t> direct_blocks_[kDirectLevels];  // by level: block >> (bits - depth)
  std::vector<uint8_t> pool_;
  uint32_t objects_ = 0;
  std::unordered_map<std::string, uint32_t> seen_;
  // While a direct block's compact trial runs (entry()): what it added to seen_, to undo.
  int trials_ = 0;
  // (Keys by address: unlike iterators, they stay valid when the map rehashes.)
  std::vector<const std::string*> inserted_;
};

}  // namespace

u128 key6_from_bytes(const uint8_t* network_order) {
  u128 k = 0;
  for (int i = 0; i < 16; ++i) k = (k << 8) | network_order[i];
  return k;
}

void key6_to_bytes(u128 key, uint8_t* network_order) {
  for (int i = 15; i >= 0; --i) {
    network_order[i] = static_cast<uint8_t>(key);
    key >>= 8;
  }
}

std::vector<uint8_t> encode_lpm4(const std::vector<LpmRange<uint32_t>>& ranges, LpmLayout layout,
                                 uint64_t direct_budget) {
  if (ranges.empty()) return {};
  return TrieEncoder<uint32_t>(ranges, layout == LpmLayout::kDirect, direct_budget)
      .encode(gtm::geo::kLpm4Magic);
}

std::vector<uint8_t> encode_lpm6(const std::vector<LpmRange<u128>>& ranges, LpmLayout layout,
                                 uint64_t direct_budget) {
  if (ranges.empty()) return {};
  return TrieEncoder<u128>(ranges, layout == LpmLayout::kDirect, direct_budget)
      .encode(gtm::geo::kLpm6Magic);
}

}  // namespace gtm::control::geo
