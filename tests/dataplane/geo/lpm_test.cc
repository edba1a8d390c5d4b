// LPM tables (dataplane/geo/lpm.h built by control/geo/lpm_builder.h) against a naive reference:
// for every address, the longest matching prefix (the last added among equal ones) gives the
// value, and prefix_len must be the largest CIDR block around the address that is uniform.
#include "dataplane/geo/lpm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "control/geo/lpm_builder.h"
#include "dataplane/geo/lpm_format.h"

namespace {

using gtm::control::geo::key6_to_bytes;
using gtm::control::geo::LpmBuilder;
using gtm::control::geo::LpmLayout;
using gtm::control::geo::prefix_last;
using gtm::control::geo::prefix_mask;
using gtm::control::geo::u128;
using gtm::geo::LpmMatch;

template <class Key>
struct Prefix {
  Key addr;
  int len;
  uint32_t value;
};

// The reference: the longest prefix containing `a` (the last added among equal lengths).
template <class Key>
uint32_t naive_value(const std::vector<Prefix<Key>>& ps, Key a) {
  int best = -1;
  uint32_t v = 0;
  for (const auto& p : ps) {
    if (p.len >= best && a >= p.addr && a <= prefix_last(p.addr, p.len)) {
      best = p.len;
      v = p.value;
    }
  }
  return v;
}

// The reference partition: values only change where a prefix starts or just after one ends, so
// the naive value at each such point, neighbours with equal values joined, gives the uniform
// runs (independently of the builder's flatten()).
template <class Key>
class Reference {
 public:
  explicit Reference(const std::vector<Prefix<Key>>& ps) {
    std::vector<Key> points{0};
    for (const auto& p : ps) {
      points.push_back(p.addr);
      const Key last = prefix_last(p.addr, p.len);
      if (last != ~Key{0}) points.push_back(last + 1);
    }
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
    for (Key pt : points) {
      const uint32_t v = naive_value(ps, pt);
      if (values_.empty() || values_.back() != v) {
        starts_.push_back(pt);
        values_.push_back(v);
      }
    }
  }
  uint32_t value(Key a) const { return values_[run(a)]; }
  bool uniform(Key lo, Key hi) const { return run(lo) == run(hi); }

 private:
  size_t run(Key a) const {
    return static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), a) -
                               starts_.begin()) -
           1;
  }
  std::vector<Key> starts_;
  std::vector<uint32_t> values_;
};

struct View4 {
  std::vector<uint8_t> image;
  gtm::geo::Lpm4View view;
  LpmMatch lookup(uint32_t a) const { return view.lookup(a); }
};

struct View6 {
  std::vector<uint8_t> image;
  gtm::geo::Lpm6View view;
  LpmMatch lookup(u128 a) const {
    uint8_t b[16];
    key6_to_bytes(a, b);
    return view.lookup(b);
  }
};

template <class Key>
using ViewFor = std::conditional_t<sizeof(Key) == 4, View4, View6>;

template <class Key>
void build(const std::vector<Prefix<Key>>& ps, uint32_t limit, ViewFor<Key>* v,
           LpmLayout layout = LpmLayout::kDirect,
           uint64_t direct_budget = gtm::control::geo::kLpmDirectBudget) {
  LpmBuilder<Key> b;
  for (const auto& p : ps) b.add(p.addr, p.len, p.value);
  v->image = gtm::control::geo::encode_lpm(b.ranges(), layout, direct_budget);
  std::string error;
  ASSERT_TRUE(v->view.validate(v->image.data(), v->image.size(), limit, &error)) << error;
}

// Checks the value against the reference, and that prefix_len names a uniform block whose parent
// is not uniform.
template <class Key>
void check_address(const Reference<Key>& ref, const ViewFor<Key>& v, Key a) {
  constexpr int kBits = static_cast<int>(sizeof(Key) * 8);
  const LpmMatch m = v.lookup(a);
  ASSERT_EQ(m.value, ref.value(a)) << "address " << static_cast<uint64_t>(a);
  ASSERT_LE(m.prefix_len, kBits);
  const Key lo = prefix_mask(a, m.prefix_len);
  ASSERT_TRUE(ref.uniform(lo, prefix_last(lo, m.prefix_len)))
      << "block /" << int{m.prefix_len} << " is not uniform";
  if (m.prefix_len > 0) {
    const int parent = m.prefix_len - 1;
    const Key plo = prefix_mask(a, parent);
    ASSERT_FALSE(ref.uniform(plo, prefix_last(plo, parent)))
        << "block /" << int{m.prefix_len} << " is not the largest uniform one";
  }
}

template <class Key>
Key random_key(std::mt19937_64& rng) {
  if constexpr (sizeof(Key) == 4) {
    return static_cast<Key>(rng());
  } else {
    return (static_cast<u128>(rng()) << 64) | rng();
  }
}

// Random prefixes clustered so that they nest and touch: lengths skewed to the family's useful
// range, addresses often derived from an earlier prefix.
template <class Key>
std::vector<Prefix<Key>> random_prefixes(std::mt19937_64& rng, int n, uint32_t values) {
  constexpr int kBits = static_cast<int>(sizeof(Key) * 8);
  std::vector<Prefix<Key>> ps;
  for (int i = 0; i < n; ++i) {
    int len = static_cast<int>(rng() % (kBits + 1));
    Key addr = random_key<Key>(rng);
    if (!ps.empty() && rng() % 3 != 0) {
      const auto& base = ps[rng() % ps.size()];
      // Inside, next to, or at the same place as an earlier prefix.
      addr = base.addr;
      if (rng() % 2 == 0) addr = prefix_last(base.addr, base.len) + 1;
      len = std::min(kBits, base.len + static_cast<int>(rng() % 6));
      addr ^= random_key<Key>(rng) & ~prefix_mask(~Key{0}, base.len) & prefix_mask(~Key{0}, len);
    }
    ps.push_back({prefix_mask(addr, len), len, static_cast<uint32_t>(rng() % values)});
  }
  return ps;
}

// Random addresses, and the interesting ones: each prefix's first and last address and the
// addresses just outside.
template <class Key>
void check_all(const std::vector<Prefix<Key>>& ps, uint32_t limit, std::mt19937_64& rng,
               int random_count, LpmLayout layout = LpmLayout::kDirect) {
  ViewFor<Key> v;
  build(ps, limit, &v, layout);
  const Reference<Key> ref(ps);
  for (const auto& p : ps) {
    const Key last = prefix_last(p.addr, p.len);
    for (Key a : {p.addr, last, static_cast<Key>(p.addr - 1), static_cast<Key>(last + 1)}) {
      check_address(ref, v, a);
    }
  }
  for (int i = 0; i < random_count; ++i) check_address(ref, v, random_key<Key>(rng));
  check_address(ref, v, Key{0});
  check_address(ref, v, ~Key{0});
}

TEST(Lpm4, RandomPrefixSetsMatchReference) {
  std::mt19937_64 rng(4);
  for (int round = 0; round < 150; ++round) {
    const auto ps = random_prefixes<uint32_t>(rng, 1 + round % 60, 1 + round % 5);
    check_all(ps, 8, rng, 300);
    check_all(ps, 8, rng, 300, LpmLayout::kCompact);
  }
}

TEST(Lpm6, RandomPrefixSetsMatchReference) {
  std::mt19937_64 rng(6);
  for (int round = 0; round < 150; ++round) {
    const auto ps = random_prefixes<u128>(rng, 1 + round % 60, 1 + round % 5);
    check_all(ps, 8, rng, 300);
    check_all(ps, 8, rng, 300, LpmLayout::kCompact);
  }
}

// Many prefixes in one /16 and one /8: exercises nodes, buckets of every key width and dense
// trie levels, which small random sets rarely reach.
TEST(Lpm4, DenseRegions) {
  std::mt19937_64 rng(44);
  std::vector<Prefix<uint32_t>> ps;
  for (int i = 0; i < 3000; ++i) {
    const int len = 17 + static_cast<int>(rng() % 16);
    const uint32_t base = i % 2 == 0 ? 0x0A0B0000u : 0xC6000000u;
    const uint32_t span = i % 2 == 0 ? 0xFFFFu : 0xFFFFFFu;
    ps.push_back({prefix_mask(base | (static_cast<uint32_t>(rng()) & span), len), len,
                  static_cast<uint32_t>(1 + rng() % 3)});
  }
  const Reference<uint32_t> ref(ps);
  for (LpmLayout layout : {LpmLayout::kDirect, LpmLayout::kCompact}) {
    ViewFor<uint32_t> v;
    build(ps, 4, &v, layout);
    for (int i = 0; i < 3000; ++i) {
      const auto& p = ps[rng() % ps.size()];
      const uint32_t a = p.addr | (static_cast<uint32_t>(rng()) & ~prefix_mask(~0u, p.len));
      check_address(ref, v, a);
    }
  }
}

// The root entry of an image and the object it refers to.
gtm::geo::LpmObject root_object(const std::vector<uint8_t>& image, uint32_t* root) {
  gtm::geo::LpmHeader h;
  std::memcpy(&h, image.data(), sizeof(h));
  *root = h.root;
  gtm::geo::LpmObject o{};
  if (!(h.root & gtm::geo::kLpmLeaf)) {
    std::memcpy(&o,
                image.data() + h.pool_offset + uint64_t{h.root & gtm::geo::kLpmRefOffsetMask} * 8,
                sizeof(o));
  }
  return o;
}

// Builds `ps` in both layouts; the direct one must start with a 16-bit node of `height`.
template <class Key>
void build_both(const std::vector<Prefix<Key>>& ps, ViewFor<Key>* direct, ViewFor<Key>* compact,
                int height) {
  build(ps, 4, direct);
  build(ps, 4, compact, LpmLayout::kCompact);
  uint32_t root = 0;
  const gtm::geo::LpmObject d = root_object(direct->image, &root);
  EXPECT_EQ(d.kind, gtm::geo::kLpmNode);
  EXPECT_EQ(d.bits, 16);
  EXPECT_EQ(d.count, 65536u);
  EXPECT_EQ(d.height, height);
}

// The direct layout: a small table (a few /24 and /23 networks, like a CIDR list or MaxMind's
// test database) gets a 16-bit root and an 8-bit node under each /16 that a network splits, so
// that the client's /24 is a leaf two entry reads deep with its ECS scope in it. The compact
// layout of the same ranges is one bucket.
TEST(Lpm4, DirectLayoutIndexesSixteenThenEightBits) {
  const std::vector<Prefix<uint32_t>> ps = {
      {0xAF10C700, 24, 1}, {0xAF10C800, 23, 2}, {0x51020000, 16, 3}, {0x0A000000, 8, 1}};
  View4 direct, compact;
  build_both(ps, &direct, &compact, 24);  // the 8-bit nodes under the root end in leaves
  // Root (256 KB) and one 1-KB node for 175.16.0.0/16; 81.2.0.0/16 and 10.0.0.0/8 are leaves.
  EXPECT_LT(direct.image.size(), size_t{65536 * 4 + 2 * 1032 + 64});
  uint32_t root = 0;
  EXPECT_EQ(root_object(compact.image, &root).kind, gtm::geo::kLpmBucket);
  EXPECT_LT(compact.image.size(), 256u);
  for (const View4* v : {&direct, &compact}) {
    EXPECT_EQ(v->lookup(0xAF10C701).value, 1u);
    EXPECT_EQ(v->lookup(0xAF10C701).prefix_len, 24);
    EXPECT_EQ(v->lookup(0xAF10C9FF).value, 2u);
    EXPECT_EQ(v->lookup(0xAF10C9FF).prefix_len, 23);
    EXPECT_EQ(v->lookup(0xAF10C600).value, 0u);
    EXPECT_EQ(v->lookup(0xAF10C600).prefix_len, 24);
    EXPECT_EQ(v->lookup(0x51020304).prefix_len, 16);
    EXPECT_EQ(v->lookup(0x0A010203).prefix_len, 8);
  }
}

// Entry `index` of the node that reference `ref` points at.
uint32_t node_entry(const std::vector<uint8_t>& image, uint32_t ref, uint32_t index) {
  uint32_t e;
  std::memcpy(&e,
              image.data() + sizeof(gtm::geo::LpmHeader) +
                  uint64_t{ref & gtm::geo::kLpmRefOffsetMask} * 8 + sizeof(gtm::geo::LpmObject) +
                  uint64_t{index} * 4,
              4);
  return e;
}

// What an entry is: 0 a leaf, -1 a bucket, else a node of that stride.
int entry_kind(uint32_t e) {
  if (e & gtm::geo::kLpmLeaf) return 0;
  if (e & gtm::geo::kLpmRefBucket) return -1;
  return static_cast<int>((e >> gtm::geo::kLpmRefParamShift) & 15) + 1;
}

// Every prefix's first address, the one before it and the one after its end.
template <class Key>
void check_prefix_edges(const Reference<Key>& ref, const ViewFor<Key>& v,
                        const std::vector<Prefix<Key>>& ps) {
  for (const auto& p : ps) {
    check_address(ref, v, p.addr);
    check_address(ref, v, static_cast<Key>(p.addr - 1));
    check_address(ref, v, static_cast<Key>(prefix_last(p.addr, p.len) + 1));
  }
}

constexpr uint64_t kNode8Bytes = sizeof(gtm::geo::LpmObject) + 256 * 4;

// The direct budget: 8-bit nodes (1 KB each) go to the split /16 blocks with the most ranges, as
// many as the budget holds, to the byte; the others keep their bucket. A block the compact layout
// makes an 8-bit node anyway costs nothing, one it makes a wider node keeps it.
TEST(Lpm4, DirectBudgetGoesToTheBlocksWithMostRanges) {
  std::vector<Prefix<uint32_t>> ps;
  constexpr int kBlocks = 12;
  auto block_of = [](int k) { return 0x0A00u + static_cast<uint32_t>(k) * 7; };
  for (int k = 0; k < kBlocks; ++k) {
    // k + 2 separate /24s: 2k + 5 ranges, a bucket of 8-bit keys in the compact layout.
    for (int j = 0; j < k + 2; ++j) {
      ps.push_back({block_of(k) << 16 | static_cast<uint32_t>(j * 3 + 1) << 8, 24,
                    1 + static_cast<uint32_t>((j + k) % 3)});
    }
  }
  constexpr uint32_t kFree = 0x2000, kWide = 0x3000;
  for (uint32_t j = 0; j < 300; ++j) {  // 301 ranges: an 8-bit node in any layout
    ps.push_back({kFree << 16 | j << 7, 25, 1 + j % 2});
  }
  for (uint32_t j = 0; j < 5000; ++j) {  // 5001 ranges: a 12-bit node
    ps.push_back({kWide << 16 | j << 2, 30, 1 + j % 2});
  }
  const Reference<uint32_t> ref(ps);
  std::mt19937_64 rng(46);
  size_t previous_size = 0;
  for (int m : {0, 1, 5, kBlocks}) {
    for (uint64_t budget : {m * kNode8Bytes, m * kNode8Bytes + kNode8Bytes - 1}) {
      SCOPED_TRACE("budget " + std::to_string(budget));
      View4 v;
      build(ps, 4, &v, LpmLayout::kDirect, budget);
      uint32_t root = 0;
      EXPECT_EQ(root_object(v.image, &root).bits, 16);
      for (int k = 0; k < kBlocks; ++k) {
        EXPECT_EQ(entry_kind(node_entry(v.image, root, block_of(k))), k >= kBlocks - m ? 8 : -1)
            << "block " << k;
      }
      EXPECT_EQ(entry_kind(node_entry(v.image, root, kFree)), 8);
      EXPECT_EQ(entry_kind(node_entry(v.image, root, kWide)), 12);
      EXPECT_GE(v.image.size(), previous_size);
      previous_size = v.image.size();
      check_prefix_edges(ref, v, ps);
      for (int i = 0; i < 2000; ++i) {
        check_address(ref, v,
                      block_of(static_cast<int>(rng() % kBlocks)) << 16 |
                          static_cast<uint32_t>(rng() & 0xFFFF));
      }
    }
  }
  // The compact layout has no direct nodes below a smaller root.
  View4 compact;
  build(ps, 4, &compact, LpmLayout::kCompact);
  EXPECT_LT(compact.image.size(), previous_size);
}

// More split /16 blocks than the default budget (4 MB) holds, their buckets all different (two
// /24s each): some 4000 of them get 8-bit nodes, the rest keep buckets, the image grows by about
// the budget, and every lookup answers as in the compact layout.
TEST(Lpm4, DirectLayoutKeepsBucketsPastTheBudget) {
  std::vector<Prefix<uint32_t>> ps;
  for (uint32_t i = 0; i < 4500; ++i) {
    const uint32_t block = (i * 7 % 65536) << 16;
    ps.push_back({block | (i % 64) << 8, 24, 1 + i % 3});
    ps.push_back({block | (64 + i / 64) << 8, 24, 1 + (i + 1) % 3});
  }
  View4 v, compact;
  build(ps, 4, &v);
  build(ps, 4, &compact, LpmLayout::kCompact);
  const uint64_t budget = gtm::control::geo::kLpmDirectBudget;
  EXPECT_GT(v.image.size(), compact.image.size() + budget * 3 / 4);
  EXPECT_LE(v.image.size(), compact.image.size() + budget);
  std::mt19937_64 rng(45);
  for (const auto& p : ps) {
    for (uint32_t a :
         {p.addr, p.addr - 1, p.addr + 256, p.addr | (static_cast<uint32_t>(rng()) & 255)}) {
      const LpmMatch d = v.lookup(a), c = compact.lookup(a);
      ASSERT_EQ(d.value, c.value) << a;
      ASSERT_EQ(d.prefix_len, c.prefix_len) << a;
    }
  }
}

TEST(Lpm6, DenseRegions) {
  std::mt19937_64 rng(66);
  std::vector<Prefix<u128>> ps;
  const u128 base = static_cast<u128>(0x2a01'0e00'0000'0000ull) << 64;
  for (int i = 0; i < 3000; ++i) {
    // /32../64 networks, some /96../128 ones (host routes, IPv4-embedded data).
    const int len =
        i % 7 == 0 ? 96 + static_cast<int>(rng() % 33) : 32 + static_cast<int>(rng() % 33);
    const u128 addr = base | (random_key<u128>(rng) & ~prefix_mask(~u128{0}, 24));
    ps.push_back({prefix_mask(addr, len), len, static_cast<uint32_t>(1 + rng() % 3)});
  }
  const Reference<u128> ref(ps);
  for (LpmLayout layout : {LpmLayout::kDirect, LpmLayout::kCompact}) {
    ViewFor<u128> v;
    build(ps, 4, &v, layout);
    for (int i = 0; i < 3000; ++i) {
      const auto& p = ps[rng() % ps.size()];
      const u128 a = p.addr | (random_key<u128>(rng) & ~prefix_mask(~u128{0}, p.len));
      check_address(ref, v, a);
    }
  }
}

// The direct IPv6 layout: a 16-bit root, then 8-bit nodes at /16 and /24, so that a client in a
// /32 (an allocation, like 2001:250::/32 in MaxMind's test database) is a leaf three entry reads
// deep; deeper networks continue in the compact layout below /32.
TEST(Lpm6, DirectLayoutIndexesSixteenThenEightThenEightBits) {
  const u128 cn = u128{0x2001'0250'0000'0000ull} << 64;
  const u128 jp = u128{0x2001'0218'0000'0000ull} << 64;
  const u128 deep = u128{0x2001'0254'0100'0000ull} << 64;
  const std::vector<Prefix<u128>> ps = {{cn, 32, 1}, {jp, 32, 2}, {deep, 40, 3}};
  View6 direct, compact;
  build_both(ps, &direct, &compact, 40);  // 16 + 8 + 8, then the /40 under 2001:254::/32
  EXPECT_LT(direct.image.size(), size_t{65536 * 4 + 4 * 1032 + 256});
  EXPECT_LT(compact.image.size(), 512u);
  for (const View6* v : {&direct, &compact}) {
    EXPECT_EQ(v->lookup(cn | 0x1234).value, 1u);
    EXPECT_EQ(v->lookup(cn | 0x1234).prefix_len, 32);
    EXPECT_EQ(v->lookup(jp).value, 2u);
    EXPECT_EQ(v->lookup(jp).prefix_len, 32);
    EXPECT_EQ(v->lookup(deep | 1).value, 3u);
    EXPECT_EQ(v->lookup(deep | 1).prefix_len, 40);
    EXPECT_EQ(v->lookup(u128{0x2001'0254'0000'0000ull} << 64).prefix_len, 40);
    EXPECT_EQ(v->lookup(u128{0x2a02} << 112).value, 0u);
  }
}

// The IPv6 budget covers /16 blocks first, then /24 blocks, and a /24 block only where its /16 is
// an 8-bit node (else a lookup never reaches depth 24 in one entry).
TEST(Lpm6, DirectBudgetCoversSlash24BlocksUnderEightBitNodesOnly) {
  std::vector<Prefix<u128>> ps;
  // 2400::/16: three /24 blocks with 2, 3 and 4 /32s; 2a00::/16: one /24 block with 6 /32s.
  for (uint32_t sub = 0; sub < 3; ++sub) {
    for (uint32_t j = 0; j < sub + 2; ++j) {
      ps.push_back({(u128{0x2400u} << 112) | (u128{sub * 16 + 1} << 104) | (u128{j * 2 + 1} << 96),
                    32, 1 + (j + sub) % 3});
    }
  }
  for (uint32_t j = 0; j < 6; ++j) {
    ps.push_back(
        {(u128{0x2a00u} << 112) | (u128{0x40} << 104) | (u128{j * 2 + 1} << 96), 32, 1 + j % 3});
  }
  const Reference<u128> ref(ps);
  std::mt19937_64 rng(68);
  struct Case {
    uint64_t nodes;
    int kind2400, kind2a00;  // the root entries
    int kind2400_sub;        // the 2400:1000::/24 entry when 2400::/16 is an 8-bit node
  };
  // 2400::/16 holds 19 ranges, 2a00::/16 13, its 2a00:4000::/24 13 too (after the parent), then
  // the 2400 /24s: 9, 7 (2400:1100::/24), 5.
  for (const Case c : {Case{0, -1, -1, 0}, Case{1, 8, -1, -1}, Case{2, 8, 8, -1}, Case{3, 8, 8, -1},
                       Case{4, 8, 8, -1}, Case{5, 8, 8, 8}, Case{6, 8, 8, 8}}) {
    SCOPED_TRACE("nodes " + std::to_string(c.nodes));
    View6 v;
    build(ps, 4, &v, LpmLayout::kDirect, c.nodes * kNode8Bytes);
    uint32_t root = 0;
    root_object(v.image, &root);
    const uint32_t e2400 = node_entry(v.image, root, 0x2400);
    const uint32_t e2a00 = node_entry(v.image, root, 0x2a00);
    EXPECT_EQ(entry_kind(e2400), c.kind2400);
    EXPECT_EQ(entry_kind(e2a00), c.kind2a00);
    if (c.kind2400 == 8) {
      EXPECT_EQ(entry_kind(node_entry(v.image, e2400, 0x11)), c.kind2400_sub);
    }
    if (c.kind2a00 == 8) {
      EXPECT_EQ(entry_kind(node_entry(v.image, e2a00, 0x40)), c.nodes >= 3 ? 8 : -1);
    }
    check_prefix_edges(ref, v, ps);
    for (int i = 0; i < 500; ++i) {
      check_address(ref, v,
                    (u128{rng() % 2 ? 0x2400u : 0x2a00u} << 112) | (random_key<u128>(rng) >> 16));
    }
  }
}

// Buckets store values in 2 bytes when they can, in 4 otherwise: both, side by side.
TEST(Lpm, ValuesAboveSixteenBits) {
  std::mt19937_64 rng(23);
  constexpr uint32_t kLimit = 1u << 23;
  for (int round = 0; round < 40; ++round) {
    auto ps4 = random_prefixes<uint32_t>(rng, 40, 6);
    auto ps6 = random_prefixes<u128>(rng, 40, 6);
    for (auto& p : ps4) p.value = p.value < 3 ? 65533 + p.value : kLimit - p.value;
    for (auto& p : ps6) p.value = p.value < 3 ? 65533 + p.value : kLimit - p.value;
    check_all(ps4, kLimit, rng, 100);
    check_all(ps6, kLimit, rng, 100);
  }
}

TEST(Lpm4, EdgeCases) {
  std::mt19937_64 rng(1);
  // Nothing: every address is {0, 0}.
  check_all<uint32_t>({}, 1, rng, 10);
  // /0 alone, /0 with a /32 inside, the first and last /32.
  check_all<uint32_t>({{0, 0, 3}}, 4, rng, 10);
  check_all<uint32_t>({{0, 0, 3}, {0x01020304, 32, 1}}, 4, rng, 10);
  check_all<uint32_t>({{0, 32, 1}, {0xFFFFFFFF, 32, 2}}, 4, rng, 10);
  // Nested chain /8 ⊃ /16 ⊃ /24 ⊃ /32 that all end at the same address.
  check_all<uint32_t>(
      {{0x0A000000, 8, 1}, {0x0AFF0000, 16, 2}, {0x0AFFFF00, 24, 3}, {0x0AFFFFFF, 32, 4}}, 5, rng,
      100);
  // Equal prefixes: the last one added wins.
  check_all<uint32_t>({{0x0A000000, 8, 1}, {0x0A000000, 8, 2}}, 3, rng, 10);
  // The same in the compact layout.
  check_all<uint32_t>({{0, 0, 3}, {0x01020304, 32, 1}}, 4, rng, 10, LpmLayout::kCompact);
  check_all<uint32_t>({{0, 32, 1}, {0xFFFFFFFF, 32, 2}}, 4, rng, 10, LpmLayout::kCompact);
}

TEST(Lpm4, AdjacentEqualBlocksMergeIntoOneScope) {
  // Two /25 halves with one value are one /24 for ECS; the /26 inside a third value splits it.
  std::vector<Prefix<uint32_t>> ps = {{0xC0000200, 25, 1}, {0xC0000280, 25, 1}};
  View4 v;
  build(ps, 3, &v);
  EXPECT_EQ(v.lookup(0xC0000201).prefix_len, 24);
  EXPECT_EQ(v.lookup(0xC0000201).value, 1u);
  // Outside: the largest uniform block around 192.0.3.0 is 192.0.3.0/24, around 0.0.0.0 it is /1.
  EXPECT_EQ(v.lookup(0xC0000300).prefix_len, 24);
  EXPECT_EQ(v.lookup(0).prefix_len, 1);
  ps.push_back({0xC00002C0, 26, 2});
  build(ps, 3, &v);
  EXPECT_EQ(v.lookup(0xC0000201).prefix_len, 25);
  EXPECT_EQ(v.lookup(0xC00002C1).prefix_len, 26);
  EXPECT_EQ(v.lookup(0xC00002C1).value, 2u);
  EXPECT_EQ(v.lookup(0xC0000281).prefix_len, 26);
  EXPECT_EQ(v.lookup(0xC0000281).value, 1u);
}

TEST(Lpm6, EdgeCases) {
  std::mt19937_64 rng(2);
  const u128 ones = ~u128{0};
  check_all<u128>({}, 1, rng, 10);
  check_all<u128>({{0, 0, 1}}, 2, rng, 10);
  check_all<u128>({{0, 128, 1}, {ones, 128, 2}, {0, 1, 3}}, 4, rng, 10);
  check_all<u128>({{u128{1} << 127, 1, 1}, {0, 1, 2}}, 3, rng, 10);
  // IPv4-embedded data at ::/96 and under the IPv4-mapped prefix, and a host route after a /64.
  const u128 mapped = u128{0xFFFF} << 32;
  check_all<u128>({{0x0A000000, 104, 1},
                   {0x0A000001, 128, 2},
                   {mapped | 0x0A000000, 104, 1},
                   {mapped | 0x0A000001, 128, 2},
                   {static_cast<u128>(0x2001'0db8'0000'0001ull) << 64, 64, 3},
                   {(static_cast<u128>(0x2001'0db8'0000'0002ull) << 64) | 5, 128, 3}},
                  4, rng, 200);
}

// The same IPv4-shaped subtree at ::/96, ::ffff:0:0/96 and 2002::/16 is stored once: the two
// extra copies cost only the nodes on their paths.
TEST(Lpm6, IdenticalSubtreesAreStoredOnce) {
  std::mt19937_64 rng(9);
  std::vector<Prefix<uint32_t>> v4;
  for (int i = 0; i < 2000; ++i) {
    const int len = 8 + static_cast<int>(rng() % 25);
    v4.push_back({prefix_mask(static_cast<uint32_t>(rng()), len), len,
                  static_cast<uint32_t>(1 + rng() % 4)});
  }
  // Native IPv6 networks around them, so that all three tables have the same large root.
  std::vector<Prefix<u128>> background;
  for (int i = 0; i < 6000; ++i) {
    const u128 a = (u128{0x24} << 120) | (random_key<u128>(rng) >> 8);
    background.push_back({prefix_mask(a, 32), 32, static_cast<uint32_t>(1 + rng() % 4)});
  }
  auto place = [&](u128 prefix, int depth, std::vector<Prefix<u128>>* out) {
    for (const auto& p : v4) {
      out->push_back(
          {prefix | (static_cast<u128>(p.addr) << (96 - depth)), depth + p.len, p.value});
    }
  };
  std::vector<Prefix<u128>> once = background, thrice = background;
  place(0, 96, &once);
  place(0, 96, &thrice);
  place(u128{0xFFFF} << 32, 96, &thrice);
  place(u128{0x2002} << 112, 16, &thrice);
  View6 base, a, b;
  build(background, 5, &base);
  build(once, 5, &a);
  build(thrice, 5, &b);
  const size_t copy = a.image.size() - base.image.size();
  EXPECT_LT(b.image.size(), a.image.size() + copy / 2)
      << "background " << base.image.size() << " bytes, one copy " << copy << ", three copies "
      << b.image.size() - base.image.size();
  const Reference<u128> ref(thrice);
  for (int i = 0; i < 2000; ++i) {
    const auto& p = thrice[rng() % thrice.size()];
    const u128 addr = p.addr | (random_key<u128>(rng) & ~prefix_mask(~u128{0}, p.len));
    check_address(ref, b, addr);
  }
}

TEST(Lpm, EmptyAndDefaultViewsMapEverythingToNoClass) {
  gtm::geo::Lpm4View v4;
  gtm::geo::Lpm6View v6;
  EXPECT_EQ(v4.lookup(0x01020304).value, gtm::geo::kNoClass);
  EXPECT_EQ(v4.lookup(0x01020304).prefix_len, 0);
  const uint8_t addr[16] = {0x20, 0x01};
  EXPECT_EQ(v6.lookup(addr).value, gtm::geo::kNoClass);
  std::string error;
  EXPECT_TRUE(v4.validate(nullptr, 0, 1, &error));
  EXPECT_TRUE(v6.validate(nullptr, 0, 1, &error));
  EXPECT_EQ(v6.lookup(addr).prefix_len, 0);
}

// A small image with nodes and buckets of several widths, for the corruption tests.
template <class Key>
std::vector<uint8_t> small_image(LpmLayout layout = LpmLayout::kCompact) {
  std::mt19937_64 rng(12);
  LpmBuilder<Key> b;
  constexpr int kBits = static_cast<int>(sizeof(Key) * 8);
  for (int i = 0; i < 40; ++i) {
    const int len = static_cast<int>(rng() % (kBits + 1));
    b.add(random_key<Key>(rng) >> (i % 3 == 0 ? 4 : 0), len, static_cast<uint32_t>(1 + rng() % 3));
  }
  for (int i = 0; i < 40; ++i) b.add(static_cast<Key>(i) << (kBits - 24), 24, 1 + i % 2);
  return gtm::control::geo::encode_lpm(b.ranges(), layout);
}

template <class View, class Key>
void exercise(const View& v, std::mt19937_64& rng, uint32_t limit) {
  for (int i = 0; i < 64; ++i) {
    LpmMatch m;
    if constexpr (sizeof(Key) == 4) {
      m = v.lookup(static_cast<uint32_t>(rng()));
    } else {
      uint8_t a[16];
      key6_to_bytes(random_key<u128>(rng), a);
      m = v.lookup(a);
    }
    ASSERT_LT(m.value, limit);
    ASSERT_LE(m.prefix_len, sizeof(Key) * 8);
  }
}

template <class View, class Key>
void corruption_is_refused(LpmLayout layout = LpmLayout::kCompact) {
  const std::vector<uint8_t> good = small_image<Key>(layout);
  ASSERT_GT(good.size(), 200u);
  std::mt19937_64 rng(3);
  std::string error;
  View v;
  ASSERT_TRUE(v.validate(good.data(), good.size(), 4, &error)) << error;
  // Every truncation and every byte is tried in a small image; in a direct one (over 256 KB)
  // its header, its first and last 1 KB and a random sample in between, to stay within seconds.
  std::vector<size_t> positions;
  for (size_t i = 0; i < good.size(); ++i) {
    if (good.size() < 8192 || i < 1024 || i + 1024 >= good.size() || rng() % 1024 == 0) {
      positions.push_back(i);
    }
  }
  for (size_t len : positions) {
    if (len == 0) continue;
    std::vector<uint64_t> buf(len / 8 + 1);
    std::memcpy(buf.data(), good.data(), len);
    EXPECT_FALSE(v.validate(reinterpret_cast<const uint8_t*>(buf.data()), len, 4, &error)) << len;
  }
  // A value limit below the values in use is refused.
  EXPECT_FALSE(v.validate(good.data(), good.size(), 2, &error));
  EXPECT_NE(error.find("out of range"), std::string::npos) << error;
  // Flipping any byte either is refused with a reason or leaves a table whose lookups stay in
  // bounds (a changed value or key can be valid).
  size_t refused = 0;
  std::vector<uint64_t> storage(good.size() / 8 + 1);
  uint8_t* image = reinterpret_cast<uint8_t*>(storage.data());
  for (size_t i : positions) {
    for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
      std::memcpy(image, good.data(), good.size());
      image[i] ^= flip;
      error.clear();
      if (!v.validate(image, good.size(), 4, &error)) {
        EXPECT_FALSE(error.empty());
        ++refused;
        continue;
      }
      exercise<View, Key>(v, rng, 4);
    }
  }
  EXPECT_GT(refused, positions.size()) << "most corruptions must be caught";
  // Misaligned images are refused rather than read unaligned.
  std::memcpy(image + 1, good.data(), good.size() - 1);
  EXPECT_FALSE(v.validate(image + 1, good.size() - 1, 4, &error));
}

TEST(Lpm4, CorruptImagesAreRefused) {
  corruption_is_refused<gtm::geo::Lpm4View, uint32_t>();
}
TEST(Lpm4, CorruptDirectImagesAreRefused) {
  corruption_is_refused<gtm::geo::Lpm4View, uint32_t>(LpmLayout::kDirect);
}
TEST(Lpm6, CorruptImagesAreRefused) {
  corruption_is_refused<gtm::geo::Lpm6View, u128>();
}
TEST(Lpm6, CorruptDirectImagesAreRefused) {
  corruption_is_refused<gtm::geo::Lpm6View, u128>(LpmLayout::kDirect);
}

TEST(Lpm, WrongFamilyIsRefused) {
  const auto img4 = small_image<uint32_t>();
  const auto img6 = small_image<u128>();
  gtm::geo::Lpm4View v4;
  gtm::geo::Lpm6View v6;
  std::string error;
  EXPECT_FALSE(v4.validate(img6.data(), img6.size(), 4, &error));
  EXPECT_NE(error.find("IPv4"), std::string::npos) << error;
  EXPECT_FALSE(v6.validate(img4.data(), img4.size(), 4, &error));
}

}  // namespace
