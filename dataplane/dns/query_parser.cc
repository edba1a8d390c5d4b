// Strict query parsing. Every read is checked against the message length before it happens; the
// parser keeps no state outside the caller's ParsedQuery.
#include "dataplane/dns/query_parser.h"

#include <cstring>

#include "dataplane/dns/query_parser_fast.h"

namespace gtm::dns {

namespace {

using parse_detail::clear_edns;
using parse_detail::parse_opt;
using parse_detail::parse_opt_header;
using parse_detail::parse_question_name;

// A legitimate name reaches at most 127 labels; allowing a few more hops than that tolerates
// pointer-to-pointer chains while keeping the walk bounded even on hostile input.
constexpr int kMaxPointerHops = 2 * kMaxLabels;

constexpr uint8_t kLabelTypeMask = 0xC0;
constexpr uint8_t kPointerTag = 0xC0;

enum class Result : uint8_t { kOk, kFormErr };

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
}  // namespace

namespace parse_detail {

bool parse_opt(const uint8_t* fixed, const uint8_t* rdata, size_t rdlen, ParsedQuery* out) {
  parse_opt_header(fixed, out);

  size_t pos = 0;
  while (pos < rdlen) {
    if (rdlen - pos < 4) return false;
    const uint16_t code = load16(rdata + pos);
    const size_t opt_len = load16(rdata + pos + 2);
    pos += 4;
    if (opt_len > rdlen - pos) return false;
    const uint8_t* opt = rdata + pos;
    if (code == kOptEcs) {
      if (parse_ecs(opt, opt_len, &out->ecs) != Result::kOk) return false;
    } else if (code == kOptCookie) {
      if (opt_len != 8 && (opt_len < 16 || opt_len > 40)) return false;
      out->has_cookie = true;
    }
    pos += opt_len;
  }
  return true;
}

}  // namespace parse_detail

namespace {

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
        if (!parse_opt(pkt + fixed, pkt + rdata, rdlen, out)) return Result::kFormErr;
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
  return parse_query_inline(pkt, len, out);
}

}  // namespace gtm::dns
