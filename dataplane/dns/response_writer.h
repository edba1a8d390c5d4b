// Writes a DNS response into a caller buffer, with name compression and a hard size limit.
//
// The writer never allocates. When an RR does not fit within `limit`, the add_* call returns false
// and leaves the buffer as it was before that call; the engine then truncates (TC) explicitly.
//
// In-place use: the response may be written into the query's own buffer because the header and
// question are identical in shape; begin() rewrites the header and keeps the question bytes that
// are already at offset 12 (it copies them only if `pkt` does not already hold them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/dns/query_parser.h"
#include "dataplane/dns/wire.h"

namespace gtm::dns {

enum class Section : uint8_t { kAnswer = 0, kAuthority = 1, kAdditional = 2 };

// The pieces of a response that do not depend on what else is in it, shared by the writer and by
// code that writes a whole response directly (the engine's fast path, dataplane/engine/answer.cc).

// Header flags of a response to `q`: QR, the query's opcode, AA, and its RD and CD; rcode 0.
inline uint16_t response_flags(const ParsedQuery& q) {
  return static_cast<uint16_t>(kFlagQR | ((q.opcode & 0xF) << 11) | kFlagAA |
                               (q.flags & (kFlagRD | kFlagCD)));
}

// Octets of the ECS address echoed for `ecs`: ceil(SOURCE PREFIX-LENGTH / 8), as received.
inline size_t ecs_address_length(const EcsOption& ecs) {
  const size_t len = (static_cast<size_t>(ecs.source_prefix) + 7) / 8;
  return len < sizeof(ecs.address) ? len : sizeof(ecs.address);
}

// Size of our OPT RR, with the ECS option when `ecs` is non-null; `addr_len` is its
// ecs_address_length().
inline size_t opt_rr_size(const EcsOption* ecs, size_t addr_len) {
  return 11 + (ecs != nullptr ? 8 + addr_len : 0);
}
inline size_t opt_rr_size(const EcsOption* ecs) {
  return opt_rr_size(ecs, ecs != nullptr ? ecs_address_length(*ecs) : 0);
}

// The largest OPT RR we write: with an ECS option of a 16-octet address.
inline constexpr size_t kOptRrMaxSize = 11 + 8 + 16;

// write_opt_rr() with the ECS address length already known (ecs_address_length(*ecs), or 0 without
// ECS), for a caller that has sized the RR with it. The fields are composed into two words: a
// byte at a time the stores and the reloads between them (each store may alias `ecs`) cost ~10
// more instructions per answer.
inline void write_opt_rr_sized(uint8_t* p, uint16_t payload, uint16_t ext_rcode, bool do_bit,
                               const EcsOption* ecs, size_t addr_len, uint8_t scope_prefix,
                               bool room_past_end) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the words are composed little-endian");
  static_assert(kTypeOPT == 41 && kOptEcs == 8, "composed into the words below");
  // Octets 0-7: root owner, TYPE 41, CLASS = payload, TTL's extended rcode, version 0 and the
  // flags' upper octet (DO).
  const uint64_t w0 = (uint64_t{kTypeOPT} << 16) |
                      (uint64_t{static_cast<uint8_t>(payload >> 8)} << 24) |
                      (uint64_t{static_cast<uint8_t>(payload)} << 32) |
                      (uint64_t{static_cast<uint8_t>(ext_rcode >> 4)} << 40) |
                      (uint64_t{do_bit ? uint8_t{kEdnsFlagDO >> 8} : uint8_t{0}} << 56);
  std::memcpy(p, &w0, 8);
  if (ecs == nullptr) {
    p[8] = 0;  // the flags' lower octet
    store16(p + 9, 0);
    return;
  }
  const uint16_t family = ecs->family;
  const uint8_t source = ecs->source_prefix;
  // Octets 8-15: flags' lower octet, RDLENGTH, OPTION-CODE 8, OPTION-LENGTH, FAMILY's upper octet.
  // The lengths are at most 8 + 16 and 4 + 16: their upper octets are 0.
  const uint64_t w1 = (uint64_t{8 + addr_len} << 16) | (uint64_t{kOptEcs} << 32) |
                      (uint64_t{4 + addr_len} << 48) |
                      (uint64_t{static_cast<uint8_t>(family >> 8)} << 56);
  std::memcpy(p + 8, &w1, 8);
  uint8_t* o = p + 11;  // the option
  o[5] = static_cast<uint8_t>(family);
  o[6] = source;
  o[7] = scope_prefix;
  if (room_past_end) {
    std::memcpy(o + 8, ecs->address, sizeof(ecs->address));
  } else {
    std::memcpy(o + 8, ecs->address, addr_len);
  }
}

// Writes our OPT RR at p[0, opt_rr_size(ecs)): root owner, our payload size, the upper 8 bits of
// the 12-bit `ext_rcode`, version 0, DO when `do_bit`, and the ECS option with the query's family,
// source prefix and address and the given scope prefix. With `room_past_end` the caller owns the
// octets up to p + kOptRrMaxSize: the address is then copied as its whole 16-octet field (zero
// past the prefix, see EcsOption) instead of by length.
inline void write_opt_rr(uint8_t* p, uint16_t payload, uint16_t ext_rcode, bool do_bit,
                         const EcsOption* ecs, uint8_t scope_prefix, bool room_past_end = false) {
  write_opt_rr_sized(p, payload, ext_rcode, do_bit, ecs,
                     ecs != nullptr ? ecs_address_length(*ecs) : 0, scope_prefix, room_past_end);
}

class ResponseWriter {
 public:
  // Starts a response in buf[0, limit). `query_pkt` is the query as received (may equal buf);
  // with_question = false writes QDCOUNT 0 and no question (FORMERR on an unparsable question).
  // Header: ID copied, QR=1, opcode copied, AA set, RD and CD copied, all else clear, rcode 0.
  // Returns false if even header + question do not fit.
  bool begin(uint8_t* buf, size_t limit, const uint8_t* query_pkt, const ParsedQuery& q,
             bool with_question);

  // Adds an RR whose owner name is a canonical wire name (`owner`, `owner_len`); it is compressed
  // against the question and every name written before. RDATA is copied; the optional names inside
  // it at offsets name1_off / name2_off (0xFFFF = none) are compressed too (RFC 3597: NS, CNAME,
  // PTR, MX, SOA only; the caller passes 0xFFFF for other types).
  bool add_rr(Section s, const uint8_t* owner, size_t owner_len, uint16_t type, uint16_t rclass,
              uint32_t ttl, const uint8_t* rdata, size_t rdata_len, uint16_t name1_off = 0xFFFF,
              uint16_t name2_off = 0xFFFF);

  // Same, with the owner being the question name (written as a pointer to offset 12, so the
  // client's case is preserved).
  bool add_rr_qname(Section s, uint16_t type, uint16_t rclass, uint32_t ttl, const uint8_t* rdata,
                    size_t rdata_len, uint16_t name1_off = 0xFFFF, uint16_t name2_off = 0xFFFF);

  // Adds the OPT RR (always last in additional). `ext_rcode` is the full 12-bit rcode (the upper 8
  // bits go into the OPT TTL). Echoes DO when `do_bit`. Writes ECS when `ecs` is non-null, with the
  // family/source/address of the query and the given scope prefix (address truncated to
  // ceil(source/8) octets, as received).
  bool add_opt(uint16_t payload, uint16_t ext_rcode, bool do_bit, const EcsOption* ecs,
               uint8_t scope_prefix);

  // Sets the low 4 bits of the rcode in the header.
  void set_rcode(uint16_t rcode);
  void set_flag(uint16_t flag);    // e.g. kFlagTC
  void clear_flag(uint16_t flag);  // e.g. kFlagAA for REFUSED

  // Drops every RR written so far (all sections), keeping header and question; used to truncate.
  void reset_to_question();

  // Bytes written so far; the response length when finished.
  size_t size() const { return pos_; }
  uint16_t count(Section s) const { return counts_[static_cast<int>(s)]; }
  size_t limit() const { return limit_; }

 private:
  // Compression dictionary: every suffix (label boundary) of every name written, as a packet
  // offset < 0x4000. Names are compared case-insensitively by following the packet bytes.
  static constexpr int kMaxDict = 64;
  // The question's labels enter the dictionary only when a name is first compressed: the common
  // answer (owner = pointer to the question, address RDATA) never needs them.
  void ensure_dict();
  bool write_name(const uint8_t* name, size_t len, bool compress);
  // Fixed fields, RDATA (with its compressible names) and the section count, after the owner.
  // On failure the caller restores pos_ and the dictionary.
  bool write_rr_tail(Section s, uint16_t type, uint16_t rclass, uint32_t ttl, const uint8_t* rdata,
                     size_t rdata_len, uint16_t name1_off, uint16_t name2_off);
  bool find_suffix(const uint8_t* name, size_t len, uint16_t* ptr) const;
  void remember(uint16_t offset);

  uint8_t* buf_ = nullptr;
  size_t limit_ = 0;
  size_t pos_ = 0;
  size_t question_end_ = 0;
  uint16_t counts_[3] = {0, 0, 0};
  uint16_t dict_[kMaxDict];
  int dict_size_ = 0;
  int dict_size_at_question_ = 0;
  bool dict_ready_ = false;                   // the question's labels are in dict_
  const uint8_t* question_labels_ = nullptr;  // ParsedQuery::label_offsets of the question
  int question_label_count_ = 0;
};

}  // namespace gtm::dns
