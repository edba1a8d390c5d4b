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
#include <string>

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

}  // namespace gtm::geo
