// Strict, bounds-checked parsing of one DNS query message. This is where a query is parsed.
//
// The parser never allocates and never reads outside [pkt, pkt + len). Everything the answer engine
// needs is copied into ParsedQuery, so the response may be written over the query buffer in place.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/dns/name.h"
#include "dataplane/dns/wire.h"

namespace gtm::dns {

struct EcsOption {
  bool present = false;
  uint16_t family = 0;        // 1 = IPv4, 2 = IPv6
  uint8_t source_prefix = 0;
  uint8_t scope_prefix = 0;   // as received (must be 0 in queries; ignored)
  uint8_t address[16] = {};   // network order, zero-padded past source_prefix
};

struct ParsedQuery {
  uint16_t id = 0;
  uint16_t flags = 0;        // the query's 16-bit flags word as received
  uint8_t opcode = 0;

  // The question. qname_lower is the canonical (lowercase) uncompressed wire form; the original
  // bytes (case preserved) stay in the packet at offset 12 (a question name is never compressed:
  // pointers must point backwards and only the header precedes it).
  // Not zeroed (~400 bytes per query); valid up to qname_len. 8 spare bytes let the parser store
  // the name's last partial word whole.
  uint8_t qname_lower[kMaxNameLen + 8];
  uint16_t qname_len = 0;          // wire length including the root label
  uint32_t qname_hash = 0;         // dns::name_hash(qname_lower, qname_len), for the first lookup
  uint8_t label_count = 0;         // labels excluding the root
  uint8_t label_offsets[kMaxLabels];  // valid up to label_count; offset of each label's length byte within qname
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  uint16_t question_end = 0;       // packet offset just past the question (12 + qname_len + 4)

  // EDNS (RFC 6891).
  bool has_edns = false;
  uint8_t edns_version = 0;
  uint16_t edns_flags = 0;         // 16-bit flags word of the OPT TTL (DO is 0x8000)
  uint16_t udp_payload = 0;        // as advertised by the client (values < 512 read as 512)
  EcsOption ecs;                   // RFC 7871
  bool has_cookie = false;         // RFC 7873: a well-formed COOKIE option was present
};

enum class ParseStatus : uint8_t {
  kOk = 0,
  kDrop,      // not worth answering: shorter than a header, or QR = 1 (a response)
  kFormErr,   // answer FORMERR; ParsedQuery.id/flags/opcode are valid, question valid iff
              // question_end != 0
  kNotImp,    // opcode is not QUERY: answer NOTIMP; same validity rules as kFormErr
};

// Parses a query. On kOk every field of `out` is valid. Rules (each one a FORMERR unless noted):
//  - QDCOUNT must be 1; labels <= 63 octets, names <= 255 octets, <= 127 labels;
//  - compression pointers point strictly backwards, never loop (bounded hops), never out of the
//    message; the question name itself must not be compressed;
//  - every RR in answer/authority/additional sections must be well formed (name, fixed fields, RDLENGTH
//    within the message); the message must end exactly after the last RR (trailing garbage: FORMERR);
//  - at most one OPT RR, in the additional section, with owner name root;
//  - ECS: family 1 or 2, SOURCE PREFIX <= 32 / 128, address length == ceil(SOURCE PREFIX / 8), no
//    bits set past SOURCE PREFIX;
//  - COOKIE: client cookie of 8 octets, optionally followed by a server cookie of 8 to 32 octets;
//  - an option's length must fit inside the OPT RDATA.
// The EDNS version is reported, not judged: the engine answers BADVERS for versions > 0.
// The common shape (one question, optionally one OPT with the root owner) is parsed in one pass;
// anything else goes through the strict walk over every section, with the same verdicts.
ParseStatus parse_query(const uint8_t* pkt, size_t len, ParsedQuery* out);

// The strict walk alone, for every shape: the reference parse_query() must agree with (tests and
// fuzzers compare them).
ParseStatus parse_query_strict(const uint8_t* pkt, size_t len, ParsedQuery* out);

}  // namespace gtm::dns
