// DNS wire constants and byte helpers. No DPDK, no allocation: usable from tests and fuzzers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__)
#define GTM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GTM_UNLIKELY(x) __builtin_expect(!!(x), 0)
// For the per-query steps whose call frames cost more than their work (callgrind).
#define GTM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define GTM_LIKELY(x) (x)
#define GTM_UNLIKELY(x) (x)
#define GTM_ALWAYS_INLINE inline
#endif

namespace gtm::dns {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the byte helpers assume a little-endian host");

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameLen = 255;  // wire octets including the root label
inline constexpr size_t kMaxLabelLen = 63;
inline constexpr size_t kMaxLabels = 128;
inline constexpr uint16_t kOurUdpPayload = 1232;  // advertised in our OPT and our UDP ceiling
inline constexpr uint16_t kMinUdpPayload = 512;

enum RRType : uint16_t {
  kTypeA = 1,
  kTypeNS = 2,
  kTypeCNAME = 5,
  kTypeSOA = 6,
  kTypePTR = 12,
  kTypeMX = 15,
  kTypeTXT = 16,
  kTypeAAAA = 28,
  kTypeSRV = 33,
  kTypeOPT = 41,
  kTypeIXFR = 251,
  kTypeAXFR = 252,
  kTypeANY = 255,
  kTypeCAA = 257,
};

enum RRClass : uint16_t { kClassIN = 1, kClassCH = 3, kClassANY = 255 };

enum Opcode : uint8_t { kOpcodeQuery = 0 };

// Full 12-bit rcodes; values > 15 are carried partly in the OPT record.
enum Rcode : uint16_t {
  kRcodeNoError = 0,
  kRcodeFormErr = 1,
  kRcodeServFail = 2,
  kRcodeNXDomain = 3,
  kRcodeNotImp = 4,
  kRcodeRefused = 5,
  kRcodeBadVers = 16,
};

enum EdnsOption : uint16_t { kOptEcs = 8, kOptCookie = 10 };

// Header flag bits (in the 16-bit flags word).
inline constexpr uint16_t kFlagQR = 0x8000;
inline constexpr uint16_t kFlagAA = 0x0400;
inline constexpr uint16_t kFlagTC = 0x0200;
inline constexpr uint16_t kFlagRD = 0x0100;
inline constexpr uint16_t kFlagRA = 0x0080;
inline constexpr uint16_t kFlagAD = 0x0020;
inline constexpr uint16_t kFlagCD = 0x0010;
inline constexpr uint16_t kEdnsFlagDO = 0x8000;

// Big-endian loads and stores as one unaligned access plus a byte swap: the byte-by-byte forms
// cost the writer ~50 instructions per response. memcpy keeps them free of alignment and aliasing
// assumptions; compilers turn it into a single mov.
inline uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return __builtin_bswap16(v);
}
inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline void store16(uint8_t* p, uint16_t v) {
  v = __builtin_bswap16(v);
  std::memcpy(p, &v, 2);
}
inline void store32(uint8_t* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}
inline uint8_t ascii_lower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

}  // namespace gtm::dns
