// Small helpers on uncompressed wire names and type mnemonics, shared by the wire library, the
// engine, the snapshot reader and the builder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dataplane/dns/wire.h"

namespace gtm::dns {

// Length of the uncompressed wire name at p[0, avail), root label included; 0 if it is not one
// (a label over 63 octets, more than 255 octets, a compression pointer, or no root inside avail).
inline size_t wire_name_length(const uint8_t* p, size_t avail) {
  size_t pos = 0;
  while (pos < avail) {
    const uint8_t label = p[pos];
    if (label == 0) return pos + 1;
    if (label > kMaxLabelLen) return 0;
    pos += 1 + static_cast<size_t>(label);
    if (pos >= kMaxNameLen) return 0;  // even a root label after this would exceed 255
  }
  return 0;
}

// Hash of a canonical wire name, 8 bytes per step (a byte-at-a-time hash was ~30 ns of a ~150 ns
// query). Used by the snapshot's name index (dataplane/snapshot/format.h) and computed by the query
// parser while it lowercases the question, so the first lookup costs no extra pass over the name.
// The three pieces below are the whole function; changing them changes the snapshot image layout
// (bump snap::kFormatVersion).
inline uint64_t name_hash_seed(size_t len) {
  return 0x9E3779B97F4A7C15ull ^ len;
}
inline uint64_t name_hash_word(uint64_t h, uint64_t word) {
  h = (h ^ word) * 0xFF51AFD7ED558CCDull;
  return h ^ (h >> 32);
}
// `tail`: the last len % 8 bytes, little-endian, zero above them (0 when len % 8 == 0).
inline uint32_t name_hash_finish(uint64_t h, uint64_t tail) {
  h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 29;
  return static_cast<uint32_t>(h);
}

inline uint32_t name_hash(const uint8_t* name, size_t len) {
  uint64_t h = name_hash_seed(len);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, name + i, 8);
    h = name_hash_word(h, w);
  }
  uint64_t tail = 0;
  for (size_t k = 0; i + k < len; ++k) tail |= static_cast<uint64_t>(name[i + k]) << (8 * k);
  return name_hash_finish(h, tail);
}

// Whether a[0, len) == b[0, len), 16 (SSE2) or 8 bytes per step with one overlapping last step
// (the name index compares every looked-up name with its node's: a memcmp call cost ~18
// instructions of a ~20-byte name, the 8-byte loop ~23). Reads nothing outside either range.
inline bool names_equal(const uint8_t* a, const uint8_t* b, size_t len) {
  auto word = [](const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  auto half = [](const uint8_t* p) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
  };
#if defined(__SSE2__)
  if (len >= 16) {
    auto differ = [](const uint8_t* x, const uint8_t* y) {
      const __m128i vx = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
      const __m128i vy = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y));
      return _mm_movemask_epi8(_mm_cmpeq_epi8(vx, vy)) != 0xFFFF;
    };
    for (size_t i = 0; i + 16 < len; i += 16) {
      if (differ(a + i, b + i)) return false;
    }
    return !differ(a + len - 16, b + len - 16);
  }
  if (len >= 8) return word(a) == word(b) && word(a + len - 8) == word(b + len - 8);
#else
  if (len >= 8) {
    for (size_t i = 0; i + 8 < len; i += 8) {
      if (word(a + i) != word(b + i)) return false;
    }
    return word(a + len - 8) == word(b + len - 8);
  }
#endif
  if (len >= 4) return half(a) == half(b) && half(a + len - 4) == half(b + len - 4);
  for (size_t i = 0; i < len; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Mnemonic of the record types gtm serves, or nullptr for any other type.
inline const char* rr_type_name(uint16_t type) {
  switch (type) {
    case kTypeA:
      return "A";
    case kTypeNS:
      return "NS";
    case kTypeCNAME:
      return "CNAME";
    case kTypeSOA:
      return "SOA";
    case kTypePTR:
      return "PTR";
    case kTypeMX:
      return "MX";
    case kTypeTXT:
      return "TXT";
    case kTypeAAAA:
      return "AAAA";
    case kTypeSRV:
      return "SRV";
    case kTypeOPT:
      return "OPT";
    case kTypeANY:
      return "ANY";
    case kTypeCAA:
      return "CAA";
    default:
      return nullptr;
  }
}

}  // namespace gtm::dns
