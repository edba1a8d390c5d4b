// Fuzz target: LPM tables (dataplane/geo/lpm.h). The first byte picks a mode:
//   0, 1: the rest is an IPv4 / IPv6 image. validate() must never crash or read out of bounds,
//         and an image it accepts must answer lookups in bounds (value < limit, prefix_len <= W).
//   2, 3: the rest is a list of IPv4 / IPv6 prefixes with values. The builder's image must
//         validate, and lookups must agree with a naive longest-prefix match. Bits 2-3 of the
//         first byte pick the direct layout's budget (none, one or three 8-bit nodes, or the
//         default), so that the blocks it covers and those past it both occur.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "control/geo/lpm_builder.h"
#include "dataplane/geo/lpm.h"

namespace {

using gtm::control::geo::u128;

constexpr uint32_t kLimit = 7;

template <class Key>
Key read_key(const uint8_t* p) {
  Key k = 0;
  for (size_t i = 0; i < sizeof(Key); ++i) k = static_cast<Key>((k << 8) | p[i]);
  return k;
}

gtm::geo::LpmMatch lookup(const gtm::geo::Lpm4View& v, uint32_t a) {
  return v.lookup(a);
}
gtm::geo::LpmMatch lookup(const gtm::geo::Lpm6View& v, u128 a) {
  uint8_t b[16];
  gtm::control::geo::key6_to_bytes(a, b);
  return v.lookup(b);
}

template <class Key, class View>
void check_lookups(const View& v, const uint8_t* data, size_t size) {
  constexpr size_t kBits = sizeof(Key) * 8;
  for (size_t off = 0; off + sizeof(Key) <= size && off < 64 * sizeof(Key); off += sizeof(Key)) {
    const gtm::geo::LpmMatch m = lookup(v, read_key<Key>(data + off));
    if (m.value >= kLimit || m.prefix_len > kBits) __builtin_trap();
  }
  for (Key a : {Key{0}, ~Key{0}, static_cast<Key>(Key{1} << (kBits - 1))}) {
    const gtm::geo::LpmMatch m = lookup(v, a);
    if (m.value >= kLimit || m.prefix_len > kBits) __builtin_trap();
  }
}

template <class Key, class View>
void image_mode(const uint8_t* data, size_t size) {
  // Images live in 8-byte aligned memory.
  std::vector<uint64_t> storage(size / 8 + 1);
  uint8_t* image = reinterpret_cast<uint8_t*>(storage.data());
  if (size != 0) std::memcpy(image, data, size);
  View v;
  std::string error;
  if (!v.validate(image, size, kLimit, &error)) {
    if (error.empty()) __builtin_trap();
    return;
  }
  check_lookups<Key>(v, data, size);
}

// Records of sizeof(Key) + 2 bytes: address, prefix length, value.
// `direct`: the layout the geo compiler uses (lpm_builder.h); its 256 KB root makes an input ~50x
// dearer than the compact layout, so it gets one input in 32 (by size: the seeds all start 0-3).
template <class Key, class View>
void build_mode(const uint8_t* data, size_t size, bool direct, uint64_t direct_budget) {
  constexpr int kBits = static_cast<int>(sizeof(Key) * 8);
  constexpr size_t kRecord = sizeof(Key) + 2;
  gtm::control::geo::LpmBuilder<Key> b;
  struct P {
    Key addr;
    int len;
    uint32_t value;
  };
  std::vector<P> ps;
  for (size_t off = 0; off + kRecord <= size && ps.size() < 64; off += kRecord) {
    const int len = data[off + sizeof(Key)] % (kBits + 1);
    const uint32_t value = data[off + sizeof(Key) + 1] % kLimit;
    const Key addr = gtm::control::geo::prefix_mask(read_key<Key>(data + off), len);
    b.add(addr, len, value);
    ps.push_back({addr, len, value});
  }
  const std::vector<uint8_t> image = gtm::control::geo::encode_lpm(
      b.ranges(),
      direct ? gtm::control::geo::LpmLayout::kDirect : gtm::control::geo::LpmLayout::kCompact,
      direct_budget);
  View v;
  std::string error;
  if (!v.validate(image.data(), image.size(), kLimit, &error)) __builtin_trap();  // disagree
  auto naive = [&ps](Key a) {
    int best = -1;
    uint32_t value = 0;
    for (const P& p : ps) {
      if (p.len >= best && a >= p.addr && a <= gtm::control::geo::prefix_last(p.addr, p.len)) {
        best = p.len;
        value = p.value;
      }
    }
    return value;
  };
  for (const P& p : ps) {
    const Key last = gtm::control::geo::prefix_last(p.addr, p.len);
    for (Key a : {p.addr, last, static_cast<Key>(p.addr - 1), static_cast<Key>(last + 1)}) {
      const gtm::geo::LpmMatch m = lookup(v, a);
      if (m.value != naive(a) || m.prefix_len > kBits) __builtin_trap();
      // Both ends of the reported block have the same value.
      const Key lo = gtm::control::geo::prefix_mask(a, m.prefix_len);
      if (naive(lo) != m.value ||
          naive(gtm::control::geo::prefix_last(lo, m.prefix_len)) != m.value) {
        __builtin_trap();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 1 << 16) return 0;
  constexpr uint64_t kNode8 = sizeof(gtm::geo::LpmObject) + 256 * 4;
  const uint64_t budgets[4] = {0, kNode8, 3 * kNode8, gtm::control::geo::kLpmDirectBudget};
  const uint64_t budget = budgets[(data[0] >> 2) & 3];
  switch (data[0] % 4) {
    case 0:
      image_mode<uint32_t, gtm::geo::Lpm4View>(data + 1, size - 1);
      break;
    case 1:
      image_mode<u128, gtm::geo::Lpm6View>(data + 1, size - 1);
      break;
    case 2:
      build_mode<uint32_t, gtm::geo::Lpm4View>(data + 1, size - 1, size % 32 == 0, budget);
      break;
    default:
      build_mode<u128, gtm::geo::Lpm6View>(data + 1, size - 1, size % 32 == 0, budget);
      break;
  }
  return 0;
}
