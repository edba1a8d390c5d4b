// Fuzz target: the query parser on arbitrary bytes, then the response writer on whatever parsed.
// Beyond "no crash", it checks two oracles: a response written in place equals one written into a
// separate buffer, and every response re-parses cleanly (with QR cleared) under our strict rules.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/dns/query_parser.h"
#include "dataplane/dns/response_writer.h"

namespace {

using namespace gtm::dns;

constexpr size_t kLimit = 512;

// Writes a plausible answer: CNAME to a name under the query's parent, A records at that name, an
// NS in authority, glue in additional and OPT. Any step may fail on the size limit (then TC).
size_t write_response(uint8_t* buf, size_t limit, const uint8_t* query, const ParsedQuery& q,
                      ParseStatus status) {
  ResponseWriter w;
  const bool with_question = q.question_end != 0;
  if (!w.begin(buf, limit, query, q, with_question)) return 0;
  if (status != ParseStatus::kOk) {
    w.set_rcode(status == ParseStatus::kNotImp ? kRcodeNotImp : kRcodeFormErr);
    return w.size();
  }

  // "edge" + the query name's parent (or the root).
  uint8_t target[kMaxNameLen];
  const uint8_t* parent =
      q.label_count > 0 ? q.qname_lower + q.label_offsets[q.label_count > 1] : q.qname_lower;
  size_t parent_len = q.qname_len - static_cast<size_t>(parent - q.qname_lower);
  if (parent_len > kMaxNameLen - 5) {  // no room for "edge": fall back to the root
    parent = q.qname_lower + q.qname_len - 1;
    parent_len = 1;
  }
  static const uint8_t kEdge[] = {4, 'e', 'd', 'g', 'e'};
  std::memcpy(target, kEdge, sizeof(kEdge));
  std::memcpy(target + sizeof(kEdge), parent, parent_len);
  const size_t target_len = sizeof(kEdge) + parent_len;

  bool fits = w.add_rr_qname(Section::kAnswer, kTypeCNAME, kClassIN, 60, target, target_len, 0);
  for (uint8_t i = 0; fits && i < 3; ++i) {
    const uint8_t a[4] = {192, 0, 2, i};
    fits = w.add_rr(Section::kAnswer, target, target_len, kTypeA, kClassIN, 60, a, sizeof(a));
  }
  uint8_t ns[kMaxNameLen + 3];
  static const uint8_t kNs[] = {2, 'n', 's'};
  std::memcpy(ns, kNs, sizeof(kNs));
  std::memcpy(ns + sizeof(kNs), parent, parent_len);
  const size_t ns_len = parent_len + sizeof(kNs) <= kMaxNameLen ? parent_len + sizeof(kNs) : 0;
  if (fits && ns_len != 0) {
    fits = w.add_rr(Section::kAuthority, parent, parent_len, kTypeNS, kClassIN, 60, ns, ns_len, 0);
    const uint8_t glue[4] = {198, 51, 100, 53};
    if (fits) {
      fits = w.add_rr(Section::kAdditional, ns, ns_len, kTypeA, kClassIN, 60, glue, sizeof(glue));
    }
  }
  if (!fits) {
    w.reset_to_question();
    w.set_flag(kFlagTC);
  }
  if (q.has_edns) {
    const EcsOption* ecs = q.ecs.present ? &q.ecs : nullptr;
    // A question is at most 271 octets and OPT with ECS at most 35: OPT always fits after a reset.
    if (!w.add_opt(kOurUdpPayload, kRcodeNoError, (q.edns_flags & kEdnsFlagDO) != 0, ecs,
                   q.ecs.source_prefix)) {
      __builtin_trap();
    }
  }
  if (w.size() > limit) __builtin_trap();
  return w.size();
}

// parse_query() takes a one-pass route for the common shape: it must agree with the strict walk
// on the verdict and, for kOk, on every field the engine reads.
void check_against_strict(const uint8_t* data, size_t size, const ParsedQuery& q,
                          ParseStatus status) {
  ParsedQuery s;
  if (parse_query_strict(data, size, &s) != status) __builtin_trap();
  if (status != ParseStatus::kOk) return;
  const bool same =
      s.id == q.id && s.flags == q.flags && s.opcode == q.opcode && s.qname_len == q.qname_len &&
      std::memcmp(s.qname_lower, q.qname_lower, q.qname_len) == 0 && s.qname_hash == q.qname_hash &&
      s.label_count == q.label_count &&
      std::memcmp(s.label_offsets, q.label_offsets, q.label_count) == 0 && s.qtype == q.qtype &&
      s.qclass == q.qclass && s.question_end == q.question_end && s.has_edns == q.has_edns &&
      s.edns_version == q.edns_version && s.edns_flags == q.edns_flags &&
      s.udp_payload == q.udp_payload && s.has_cookie == q.has_cookie &&
      s.ecs.present == q.ecs.present && s.ecs.family == q.ecs.family &&
      s.ecs.source_prefix == q.ecs.source_prefix && s.ecs.scope_prefix == q.ecs.scope_prefix &&
      std::memcmp(s.ecs.address, q.ecs.address, sizeof(s.ecs.address)) == 0;
  if (!same) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ParsedQuery q;
  const ParseStatus status = parse_query(data, size, &q);
  check_against_strict(data, size, q, status);
  if (status == ParseStatus::kDrop) return 0;

  uint8_t out[kLimit];
  const size_t n = write_response(out, sizeof(out), data, q, status);
  // A parsed question never exceeds 271 octets, so a 512-octet response always starts.
  if (n == 0) __builtin_trap();

  // In place: the query's own buffer, with room up to the limit.
  uint8_t in_place[kLimit];
  if (size <= kLimit) {
    std::memcpy(in_place, data, size);
    const size_t m = write_response(in_place, sizeof(in_place), in_place, q, status);
    if (m != n || std::memcmp(in_place, out, n) != 0) __builtin_trap();
  }

  if (status == ParseStatus::kOk) {
    out[2] &= 0x7F;  // our parser only accepts queries
    ParsedQuery back;
    if (parse_query(out, n, &back) != ParseStatus::kOk) __builtin_trap();
    if (back.qname_len != q.qname_len ||
        std::memcmp(back.qname_lower, q.qname_lower, q.qname_len) != 0) {
      __builtin_trap();
    }
    if (back.has_edns != q.has_edns || back.ecs.present != q.ecs.present) __builtin_trap();
  }
  return 0;
}
