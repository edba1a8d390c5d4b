// DNS wire constants and byte helpers. No DPDK, no allocation: usable from tests and fuzzers.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__GNUC__)
#define GTM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GTM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define GTM_LIKELY(x) (x)
#define GTM_UNLIKELY(x) (x)
#endif

namespace gtm::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameLen = 255;   // wire octets including the root label
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

inline uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t load32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}
inline void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline uint8_t ascii_lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

}  // namespace gtm::dns
