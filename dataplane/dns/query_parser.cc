// Strict query parsing. Every read is checked against the message length before it happens; the
// parser keeps no state outside the caller's ParsedQuery.
#include "dataplane/dns/query_parser.h"

#include <cstring>

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
size_t parse_question_name(const uint8_t* pkt, size_t len, ParsedQuery* out) {
  // First the label structure (one step per label), then one lowercasing copy of the whole name.
  // The root octet must lie inside the message and at most 254 octets after the name's start
  // (255 with it); checking that once at the end bounds every label too. Labels take at least 2
  // octets each, so at most 128 offsets are stored before `pos` passes `stop`.
  const size_t stop = len < kHeaderSize + kMaxNameLen ? len : kHeaderSize + kMaxNameLen;
  size_t pos = kHeaderSize;
  uint32_t labels = 0;
  for (;;) {
    if (pos >= stop) return 0;
    const size_t label_len = pkt[pos];
    if (label_len == 0) break;
    // Compression pointers and the reserved label types (>= 0x40) are both invalid here.
    if (label_len > kMaxLabelLen) return 0;
    out->label_offsets[labels++] = static_cast<uint8_t>(pos - kHeaderSize);
    pos += 1 + label_len;
  }
  const size_t name_len = pos + 1 - kHeaderSize;  // with the root label
  // One pass lowercases and hashes the name a word at a time.
  const uint8_t* src = pkt + kHeaderSize;
  uint64_t h = name_hash_seed(name_len);
  size_t i = 0;
  for (; i + 8 <= name_len; i += 8) {
    uint64_t w;
    std::memcpy(&w, src + i, 8);
    w = lower8(w);
    std::memcpy(out->qname_lower + i, &w, 8);
    h = name_hash_word(h, w);
  }
  uint64_t tail = 0;
  if (const size_t rest = name_len - i; rest != 0) {
    // The 8 bytes ending with the name's last byte are inside the packet (the 12-byte header
    // precedes a name shorter than 8); shifting drops the ones before the tail. Little-endian.
    uint64_t w;
    std::memcpy(&w, src + name_len - 8, 8);
    tail = lower8(w >> (64 - 8 * rest));
    std::memcpy(out->qname_lower + i, &tail, 8);  // the buffer has 8 spare bytes
  }
  out->qname_hash = name_hash_finish(h, tail);
  out->qname_len = static_cast<uint16_t>(name_len);
  out->label_count = static_cast<uint8_t>(labels);
  return pos + 1;
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
Result parse_opt(const uint8_t* fixed, const uint8_t* rdata, size_t rdlen, ParsedQuery* out) {
  out->has_edns = true;
  const uint16_t payload = load16(fixed + 2);
  out->udp_payload = payload < kMinUdpPayload ? kMinUdpPayload : payload;
  // fixed[4] is the extended rcode: meaningless in a query, ignored.
  out->edns_version = fixed[5];
  out->edns_flags = load16(fixed + 6);

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
  return parse_opt(rr + 1, rr + 11, rdlen, out) == Result::kOk;
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
