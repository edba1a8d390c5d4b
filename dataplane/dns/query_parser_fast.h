// The one-pass parse of the common query shape (dataplane/dns/query_parser.h, parse_query), inline
// so that the engine's per-query path has no call into the parser (its frame and the caller's
// initialisation of ParsedQuery were ~30 instructions per query; bench/RESULTS.md). The strict
// walk, which decides everything else, stays in query_parser.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif

#include "dataplane/dns/query_parser.h"
#include "dataplane/dns/wire.h"

namespace gtm::dns {
namespace parse_detail {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "word-at-a-time name code assumes LE");

// ASCII-lowercases 8 bytes at once: a byte gets 0x20 added iff it is in 'A'..'Z'. Length octets of
// a wire name (0..63) are never in that range, so a whole name can be lowercased without walking
// its labels.
inline uint64_t lower8(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  const uint64_t low7 = w & ~kHigh;
  const uint64_t ge_a = low7 + (0x80 - 'A') * kOnes;      // high bit set where byte >= 'A'
  const uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * kOnes;  // high bit set where byte > 'Z'
  const uint64_t upper = ge_a & ~gt_z & ~w & kHigh;       // and the byte itself is < 0x80
  return w | (upper >> 2);
}

// Parses the (uncompressed) question name at pkt[12], filling the qname fields of `out`.
// Returns the offset just past the name, or 0 if the name is not a valid uncompressed name.
// Inlined into both parsers: its call frame cost ~13 of its ~130 instructions.
GTM_ALWAYS_INLINE size_t parse_question_name(const uint8_t* pkt, size_t len, ParsedQuery* out) {
  // First the label structure (one step per label), then one lowercasing copy of the whole name.
  // The root octet must lie inside the message and at most 254 octets after the name's start
  // (255 with it); checking that once at the end bounds every label too. Labels take at least 2
  // octets each, so at most 128 offsets are stored before `off` passes `avail`.
  const uint8_t* src = pkt + kHeaderSize;
  const size_t avail = len - kHeaderSize < kMaxNameLen ? len - kHeaderSize : kMaxNameLen;
  size_t off = 0;
  uint32_t labels = 0;
  for (;;) {
    if (GTM_UNLIKELY(off >= avail)) return 0;
    const size_t label_len = src[off];
    // One test per ordinary label: 1..63 is a label; 0 (wrapping) and >= 64 are the rare cases.
    // Compression pointers and the reserved label types (>= 0x40) are both invalid here.
    if (GTM_UNLIKELY(label_len - 1 >= kMaxLabelLen)) {
      if (label_len == 0) break;
      return 0;
    }
    out->label_offsets[labels++] = static_cast<uint8_t>(off);
    off += 1 + label_len;
  }
  const size_t name_len = off + 1;  // with the root label
  uint64_t h = name_hash_seed(name_len);
  uint64_t tail = 0;
#if defined(__SSSE3__)
  // 16 octets per step (SSE2 compares, one SSSE3 shuffle for the last partial step): a name of
  // 17-32 octets costs ~30 instructions against ~75 for the word-at-a-time loop below. The last
  // step reads the 16 octets ending with the name, which are inside the message once the name has
  // 4 octets (the header precedes it); shorter names (the root, one-letter labels) take the loop.
  if (GTM_LIKELY(name_len >= 4)) {
    const __m128i bias = _mm_set1_epi8(static_cast<char>(0x80 - 'A'));  // 'A'..'Z' -> -128..-103
    const __m128i limit = _mm_set1_epi8(static_cast<char>(-128 + 26));
    const __m128i case_bit = _mm_set1_epi8(0x20);
    auto lower16 = [&](__m128i v) {
      const __m128i upper = _mm_cmplt_epi8(_mm_add_epi8(v, bias), limit);
      return _mm_or_si128(v, _mm_and_si128(upper, case_bit));
    };
    size_t i = 0;
    __m128i v;
    for (; i + 16 <= name_len; i += 16) {
      v = lower16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out->qname_lower + i), v);
      h = name_hash_word(h, static_cast<uint64_t>(_mm_cvtsi128_si64(v)));
      h = name_hash_word(h, static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v))));
    }
    if (const size_t rest = name_len - i; rest != 0) {
      // Shuffle the last `rest` octets down to the bottom, zeros above them (index 0x80).
      alignas(16) static constexpr uint8_t kWindow[32] = {
          0,    1,    2,    3,    4,    5,    6,    7,    8,    9,    10,
          11,   12,   13,   14,   15,   0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
          0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
      const __m128i last = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + name_len - 16));
      const __m128i window = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kWindow + 16 - rest));
      v = lower16(_mm_shuffle_epi8(last, window));
      // The buffer's 8 spare octets take the part of the store past the name's end.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out->qname_lower + i), v);
      const uint64_t lo = static_cast<uint64_t>(_mm_cvtsi128_si64(v));
      if (rest >= 8) {
        h = name_hash_word(h, lo);
        tail = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v)));
      } else {
        tail = lo;
      }
    }
  } else
#endif
  {
    // One pass lowercases and hashes the name a word at a time.
    size_t i = 0;
    for (; i + 8 <= name_len; i += 8) {
      uint64_t w;
      std::memcpy(&w, src + i, 8);
      w = lower8(w);
      std::memcpy(out->qname_lower + i, &w, 8);
      h = name_hash_word(h, w);
    }
    if (const size_t rest = name_len - i; rest != 0) {
      // The 8 bytes ending with the name's last byte are inside the packet (the 12-byte header
      // precedes a name shorter than 8); shifting drops the ones before the tail. Little-endian.
      uint64_t w;
      std::memcpy(&w, src + name_len - 8, 8);
      tail = lower8(w >> (64 - 8 * rest));
      std::memcpy(out->qname_lower + i, &tail, 8);  // the buffer has 8 spare bytes
    }
  }
  out->qname_hash = name_hash_finish(h, tail);
  out->qname_len = static_cast<uint16_t>(name_len);
  out->label_count = static_cast<uint8_t>(labels);
  return kHeaderSize + name_len;
}

inline void clear_edns(ParsedQuery* out) {
  out->has_edns = false;
  out->edns_version = 0;
  out->edns_flags = 0;
  out->udp_payload = 0;
  out->ecs = EcsOption{};
  out->has_cookie = false;
}

// The OPT RR's fixed fields (TYPE, CLASS = payload, TTL) at `fixed`.
inline void parse_opt_header(const uint8_t* fixed, ParsedQuery* out) {
  out->has_edns = true;
  const uint16_t payload = load16(fixed + 2);
  out->udp_payload = payload < kMinUdpPayload ? kMinUdpPayload : payload;
  // fixed[4] is the extended rcode: meaningless in a query, ignored.
  out->edns_version = fixed[5];
  out->edns_flags = load16(fixed + 6);
}

// parse_ecs() for an option that is the message's last: its address ends at `end`, so the
// address is read as the 16 octets before `end` (the message is longer than that) and shifted,
// instead of zeroed and copied by length. The same rules and fields as parse_ecs(), which the
// fuzzer checks (tests/fuzz/fuzz_query_parser.cc); `ecs` is still clear.
inline bool parse_trailing_ecs(const uint8_t* opt, size_t opt_len, const uint8_t* end,
                               EcsOption* ecs) {
  // FAMILY (network order) and SOURCE PREFIX-LENGTH as one little-endian load: octets 00 01 18 is
  // family 1 /24, 00 02 30 and 00 02 38 family 2 /48 and /56, the prefixes resolvers send. They
  // are whole octets within their family's bound, so of the rules below only the length is left,
  // and the address (at most 7 octets) is one 8-octet load shifted: ~15 instructions fewer.
  uint32_t head;
  std::memcpy(&head, opt, 4);
  const uint32_t family_source = head & 0xFFFFFF;
  if (GTM_LIKELY(family_source == 0x180100 || (family_source & ~0x080000u) == 0x300200)) {
    const size_t octets = family_source >> 19;  // SOURCE / 8: 3, 6 or 7
    if (opt_len - 4 != octets) return false;
    uint64_t w;
    std::memcpy(&w, end - 8, 8);
    const uint64_t a = w >> (64 - 8 * octets);  // the top `octets` of the 8, moved to the bottom
    std::memcpy(ecs->address, &a, 8);           // the other 8 octets are still clear
    ecs->present = true;
    ecs->family = static_cast<uint16_t>((family_source >> 8) & 0xFF);
    ecs->source_prefix = static_cast<uint8_t>(family_source >> 16);
    ecs->scope_prefix = static_cast<uint8_t>(head >> 24);
    return true;
  }
  const uint32_t family = load16(opt);
  const uint32_t source = opt[2];
  // Family 1 (IPv4) allows 32 prefix bits, 2 (IPv6) 128: 32 << (family & 2).
  if (family - 1 > 1 || source > (32u << (family & 2))) return false;
  const size_t addr_len = (source + 7) / 8;
  if (opt_len - 4 != addr_len) return false;
  // The address's last octet is the message's: no bits may be set past SOURCE PREFIX-LENGTH.
  if ((source & 7) != 0 && (end[-1] & (0xFF >> (source & 7))) != 0) return false;
  if (addr_len != 0) {
    uint64_t lo, hi;
    std::memcpy(&lo, end - 16, 8);
    std::memcpy(&hi, end - 8, 8);
    // Little-endian: the address is the top addr_len octets of the 16; moving them to the bottom
    // zero-fills the rest.
    const unsigned __int128 v = (static_cast<unsigned __int128>(hi) << 64) | lo;
    const unsigned __int128 a = v >> (128 - 8 * addr_len);
    std::memcpy(ecs->address, &a, 16);
  }
  ecs->present = true;
  ecs->family = static_cast<uint16_t>(family);
  ecs->source_prefix = static_cast<uint8_t>(source);
  ecs->scope_prefix = opt[3];
  return true;
}

// The OPT RR at `fixed` (its TYPE) with RDATA rdata[0, rdlen): header fields and every option;
// false for a malformed option (query_parser.cc).
bool parse_opt(const uint8_t* fixed, const uint8_t* rdata, size_t rdlen, ParsedQuery* out);

// The shape of nearly every query: opcode QUERY, QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, and ARCOUNT 0
// or 1 with that one record an OPT whose owner is the root octet. For this shape the strict
// rules reduce to: a valid question name, 4 more octets, then either the end of the message or
// the OPT RR ending exactly at the end of the message with well-formed options. Returns true with
// `out` filled exactly as parse_query_strict() would fill it for kOk; false for any other shape
// or anything wrong, leaving `out` to the strict parser, which decides (it re-initialises every
// field). Costs ~100 instructions for a 20-octet name without EDNS, against ~260 for the strict
// walk (callgrind, bench/RESULTS.md); tests/fuzz/fuzz_query_parser.cc checks the equality.
GTM_ALWAYS_INLINE bool parse_common_query(const uint8_t* pkt, size_t len, ParsedQuery* out) {
  // Header + root name + QTYPE/QCLASS is the shortest such query; > 65535 octets is a drop.
  if (len < kHeaderSize + 5 || len > 0xFFFF) return false;
  const uint16_t flags = load16(pkt + 2);
  if ((flags & (kFlagQR | 0x7800)) != 0) return false;  // a response, or opcode not QUERY
  // The four counts as one little-endian load: network-order QDCOUNT 1 is the octet pair 00 01.
  uint64_t counts;
  std::memcpy(&counts, pkt + 4, 8);
  constexpr uint64_t kQuestionOnly = 0x0000000000000100ull;
  constexpr uint64_t kQuestionAndOpt = 0x0100000000000100ull;
  const bool with_opt = counts == kQuestionAndOpt;
  if (!with_opt && counts != kQuestionOnly) return false;
  const size_t name_end = parse_question_name(pkt, len, out);
  if (name_end == 0 || len - name_end < 4) return false;
  out->qtype = load16(pkt + name_end);
  if (out->qtype == kTypeOPT) return false;
  out->qclass = load16(pkt + name_end + 2);
  const size_t question_end = name_end + 4;
  out->question_end = static_cast<uint16_t>(question_end);
  out->id = load16(pkt);
  out->flags = flags;
  out->opcode = kOpcodeQuery;
  clear_edns(out);
  if (!with_opt) return len == question_end;
  // The OPT RR: root owner (1), TYPE (2), CLASS = payload (2), TTL (4), RDLENGTH (2), RDATA.
  const uint8_t* rr = pkt + question_end;
  const size_t rest = len - question_end;
  if (rest < 11 || rr[0] != 0 || load16(rr + 1) != kTypeOPT) return false;
  const size_t rdlen = load16(rr + 9);
  if (rdlen != rest - 11) return false;
  const uint8_t* rdata = rr + 11;
  // A resolver that sends ECS sends it alone: one option filling the RDATA, hence ending with the
  // message. Parsed here without the option loop; any other options take parse_opt().
  if (rdlen >= 8 && load16(rdata) == kOptEcs && load16(rdata + 2) == rdlen - 4) {
    parse_opt_header(rr + 1, out);
    return parse_trailing_ecs(rdata + 4, rdlen - 4, pkt + len, &out->ecs);
  }
  return parse_opt(rr + 1, rdata, rdlen, out);
}

}  // namespace parse_detail

// parse_query(), inline.
GTM_ALWAYS_INLINE ParseStatus parse_query_inline(const uint8_t* pkt, size_t len, ParsedQuery* out) {
  if (GTM_LIKELY(parse_detail::parse_common_query(pkt, len, out))) return ParseStatus::kOk;
  return parse_query_strict(pkt, len, out);
}

}  // namespace gtm::dns
