// Strict query parsing. Every read is checked against the message length before it happens; the
// parser keeps no state outside the caller's ParsedQuery.
#include "dataplane/dns/query_parser.h"

#include <cstring>

#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif

namespace gtm::dns {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "word-at-a-time name code assumes LE");

// A legitimate name reaches at most 127 labels; allowing a few more hops than that tolerates
// pointer-to-pointer chains while keeping the walk bounded even on hostile input.
constexpr int kMaxPointerHops = 2 * kMaxLabels;

constexpr uint8_t kLabelTypeMask = 0xC0;
constexpr uint8_t kPointerTag = 0xC0;

enum class Result : uint8_t { kOk, kFormErr };

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

// Validates a possibly compressed name starting at `start`. On success stores the offset just past
// the name's in-place bytes in *end and whether the name is the root in *is_root.
bool skip_name(const uint8_t* pkt, size_t len, size_t start, size_t* end, bool* is_root) {
  size_t pos = start;
  size_t name_len = 0;
  size_t resume = 0;  // offset after the first pointer; 0 while still reading in place
  int hops = 0;
  for (;;) {
    if (pos >= len) return false;
    const uint8_t b = pkt[pos];
    if ((b & kLabelTypeMask) == kPointerTag) {
      if (pos + 2 > len) return false;
      const size_t target = static_cast<size_t>(load16(pkt + pos) & 0x3FFF);
      // Strictly backwards makes loops impossible; names never start inside the header.
      if (target >= pos || target < kHeaderSize) return false;
      if (++hops > kMaxPointerHops) return false;
      if (resume == 0) resume = pos + 2;
      pos = target;
      continue;
    }
    if ((b & kLabelTypeMask) != 0) return false;  // 0x40 / 0x80 label types are not defined
    if (b == 0) break;
    if (name_len + 1 + b + 1 > kMaxNameLen) return false;
    if (pos + 1 + b > len) return false;
    name_len += 1 + b;
    pos += 1 + b;
  }
  *end = resume != 0 ? resume : pos + 1;
  *is_root = name_len == 0;
  return true;
}

void clear_edns(ParsedQuery* out) {
  out->has_edns = false;
  out->edns_version = 0;
  out->edns_flags = 0;
  out->udp_payload = 0;
  out->ecs = EcsOption{};
  out->has_cookie = false;
}

Result parse_ecs(const uint8_t* opt, size_t opt_len, EcsOption* ecs) {
  if (ecs->present) return Result::kFormErr;  // one client subnet per query
  if (opt_len < 4) return Result::kFormErr;
  const uint16_t family = load16(opt);
  const uint8_t source = opt[2];
  const uint8_t scope = opt[3];
  size_t max_prefix = 0;
  if (family == 1) {
    max_prefix = 32;
  } else if (family == 2) {
    max_prefix = 128;
  } else {
    return Result::kFormErr;
  }
  if (source > max_prefix) return Result::kFormErr;
  const size_t addr_len = (static_cast<size_t>(source) + 7) / 8;
  if (opt_len - 4 != addr_len) return Result::kFormErr;
  const uint8_t* addr = opt + 4;
  if (addr_len > 0 && source % 8 != 0) {
    const uint8_t host_bits = static_cast<uint8_t>(0xFF >> (source % 8));
    if ((addr[addr_len - 1] & host_bits) != 0) return Result::kFormErr;
  }
  ecs->present = true;
  ecs->family = family;
  ecs->source_prefix = source;
  ecs->scope_prefix = scope;
  std::memset(ecs->address, 0, sizeof(ecs->address));
  if (addr_len > 0) std::memcpy(ecs->address, addr, addr_len);
  return Result::kOk;
}

// Parses the OPT RR whose fixed fields start at `fixed` and whose RDATA is rdata[0, rdlen).
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
  const uint32_t family = load16(opt);
  const uint32_t source = opt[2];
  if (family - 1 > 1 || source > (family == 1 ? 32u : 128u)) return false;
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

Result parse_opt(const uint8_t* fixed, const uint8_t* rdata, size_t rdlen, ParsedQuery* out) {
  parse_opt_header(fixed, out);

  size_t pos = 0;
  while (pos < rdlen) {
    if (rdlen - pos < 4) return Result::kFormErr;
    const uint16_t code = load16(rdata + pos);
    const size_t opt_len = load16(rdata + pos + 2);
    pos += 4;
    if (opt_len > rdlen - pos) return Result::kFormErr;
    const uint8_t* opt = rdata + pos;
    if (code == kOptEcs) {
      if (parse_ecs(opt, opt_len, &out->ecs) != Result::kOk) return Result::kFormErr;
    } else if (code == kOptCookie) {
      if (opt_len != 8 && (opt_len < 16 || opt_len > 40)) return Result::kFormErr;
      out->has_cookie = true;
    }
    pos += opt_len;
  }
  return Result::kOk;
}

// Walks the answer, authority and additional sections starting at `pos`.
Result parse_records(const uint8_t* pkt, size_t len, size_t pos, ParsedQuery* out) {
  const uint32_t section_counts[3] = {load16(pkt + 6), load16(pkt + 8), load16(pkt + 10)};
  bool seen_opt = false;
  for (int section = 0; section < 3; ++section) {
    for (uint32_t i = 0; i < section_counts[section]; ++i) {
      size_t fixed = 0;
      bool owner_is_root = false;
      if (!skip_name(pkt, len, pos, &fixed, &owner_is_root)) return Result::kFormErr;
      if (len - fixed < 10) return Result::kFormErr;
      const uint16_t type = load16(pkt + fixed);
      const size_t rdlen = load16(pkt + fixed + 8);
      const size_t rdata = fixed + 10;
      if (rdlen > len - rdata) return Result::kFormErr;
      if (type == kTypeOPT) {
        if (section != 2 || seen_opt || !owner_is_root) return Result::kFormErr;
        seen_opt = true;
        if (parse_opt(pkt + fixed, pkt + rdata, rdlen, out) != Result::kOk) {
          return Result::kFormErr;
        }
      }
      pos = rdata + rdlen;
    }
  }
  return pos == len ? Result::kOk : Result::kFormErr;
}

// Parses everything after the header as for a standard query; opcode checks are the caller's.
ParseStatus parse_body(const uint8_t* pkt, size_t len, ParsedQuery* out) {
  if (load16(pkt + 4) != 1) return ParseStatus::kFormErr;
  const size_t name_end = parse_question_name(pkt, len, out);
  if (name_end == 0 || len - name_end < 4) {
    out->qname_len = 0;
    out->label_count = 0;
    return ParseStatus::kFormErr;
  }
  out->qtype = load16(pkt + name_end);
  out->qclass = load16(pkt + name_end + 2);
  out->question_end = static_cast<uint16_t>(name_end + 4);
  // OPT is a pseudo-RR: asking for it is meaningless.
  if (out->qtype == kTypeOPT) return ParseStatus::kFormErr;
  if (parse_records(pkt, len, out->question_end, out) != Result::kOk) {
    // Keep the OPT header fields so a FORMERR can still carry EDNS, but never half-parsed options.
    out->ecs = EcsOption{};
    out->has_cookie = false;
    return ParseStatus::kFormErr;
  }
  return ParseStatus::kOk;
}

// The shape of nearly every query: opcode QUERY, QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, and ARCOUNT 0
// or 1 with that one record an OPT whose owner is the root octet. For this shape the strict
// rules reduce to: a valid question name, 4 more octets, then either the end of the message or
// the OPT RR ending exactly at the end of the message with well-formed options. Returns true with
// `out` filled exactly as parse_query_strict() would fill it for kOk; false for any other shape
// or anything wrong, leaving `out` to the strict parser, which decides (it re-initialises every
// field). Costs ~100 instructions for a 20-octet name without EDNS, against ~260 for the strict
// walk (callgrind, bench/RESULTS.md); tests/fuzz/fuzz_query_parser.cc checks the equality.
bool parse_common_query(const uint8_t* pkt, size_t len, ParsedQuery* out) {
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
  return parse_opt(rr + 1, rdata, rdlen, out) == Result::kOk;
}

}  // namespace

ParseStatus parse_query_strict(const uint8_t* pkt, size_t len, ParsedQuery* out) {
  // Field by field: assigning ParsedQuery{} would zero its ~400 bytes of name buffers on every
  // query, which were a measurable share of the per-query cost; they are valid only up to
  // qname_len / label_count anyway.
  out->id = 0;
  out->flags = 0;
  out->opcode = 0;
  out->qname_len = 0;
  out->qname_hash = 0;
  out->label_count = 0;
  out->qtype = 0;
  out->qclass = 0;
  out->question_end = 0;
  clear_edns(out);
  if (len < kHeaderSize) return ParseStatus::kDrop;
  // A DNS message never exceeds 65535 octets; anything longer cannot be a query we answer.
  if (len > 0xFFFF) return ParseStatus::kDrop;
  out->id = load16(pkt);
  out->flags = load16(pkt + 2);
  out->opcode = static_cast<uint8_t>((out->flags >> 11) & 0xF);
  if (out->flags & kFlagQR) return ParseStatus::kDrop;

  const ParseStatus status = parse_body(pkt, len, out);
  if (out->opcode != kOpcodeQuery) {
    // The question (when parsable) is echoed in the NOTIMP answer; EDNS only when fully valid.
    if (status != ParseStatus::kOk) clear_edns(out);
    return ParseStatus::kNotImp;
  }
  return status;
}

ParseStatus parse_query(const uint8_t* pkt, size_t len, ParsedQuery* out) {
  if (GTM_LIKELY(parse_common_query(pkt, len, out))) return ParseStatus::kOk;
  return parse_query_strict(pkt, len, out);
}

}  // namespace gtm::dns
