// Response writing with suffix compression. Every add_* either completes or restores the exact
// previous state (position, counts, dictionary), so truncation decisions stay with the caller.
#include "dataplane/dns/response_writer.h"

#include <cassert>
#include <cstring>

#include "dataplane/dns/name.h"

namespace gtm::dns {
namespace {

constexpr uint16_t kQuestionNameOffset = kHeaderSize;
constexpr uint16_t kMaxPointerTarget = 0x3FFF;
constexpr size_t kRRFixedSize = 10;  // TYPE, CLASS, TTL, RDLENGTH
constexpr size_t kCountOffset[3] = {6, 8, 10};
constexpr int kMaxFollowHops = 2 * kMaxLabels;

// Compares name[0, len) (uncompressed) with the name at packet offset `at`, following pointers.
bool name_equals_at(const uint8_t* buf, size_t written, uint16_t at, const uint8_t* name,
                    size_t len) {
  size_t p = at;
  size_t n = 0;
  int hops = 0;
  for (;;) {
    if (p >= written || n >= len) return false;
    const uint8_t b = buf[p];
    if ((b & 0xC0) == 0xC0) {
      if (p + 2 > written || ++hops > kMaxFollowHops) return false;
      p = load16(buf + p) & kMaxPointerTarget;
      continue;
    }
    if (b != name[n]) return false;
    if (b == 0) return true;
    if (p + 1 + b > written || n + 1 + b > len) return false;
    for (size_t i = 1; i <= b; ++i) {
      if (ascii_lower(buf[p + i]) != ascii_lower(name[n + i])) return false;
    }
    p += 1 + b;
    n += 1 + b;
  }
}

void assert_section_order(const uint16_t* counts, Section s) {
  // Sections are emitted in order, so nothing may have been written to a later section yet.
  for (int later = static_cast<int>(s) + 1; later < 3; ++later) assert(counts[later] == 0);
  (void)counts;
  (void)s;
}

}  // namespace

bool ResponseWriter::begin(uint8_t* buf, size_t limit, const uint8_t* query_pkt,
                           const ParsedQuery& q, bool with_question) {
  buf_ = buf;
  limit_ = limit;
  pos_ = 0;
  question_end_ = 0;
  counts_[0] = counts_[1] = counts_[2] = 0;
  dict_size_ = 0;
  dict_size_at_question_ = 0;
  dict_ready_ = false;
  question_labels_ = q.label_offsets;
  question_label_count_ = with_question ? q.label_count : 0;

  const size_t end = with_question ? q.question_end : kHeaderSize;
  if ((with_question && q.question_end <= kHeaderSize) || end > limit) {
    // Leave the writer unusable rather than half-started: every later add_* fails.
    buf_ = nullptr;
    limit_ = 0;
    return false;
  }

  if (with_question && buf != query_pkt) {
    std::memmove(buf + kHeaderSize, query_pkt + kHeaderSize, end - kHeaderSize);
  }
  // The header is built from `q`, not from query_pkt, because query_pkt may be this very buffer.
  store16(buf, q.id);
  store16(buf + 2, response_flags(q));
  store16(buf + 4, with_question ? 1 : 0);
  store16(buf + 6, 0);
  store16(buf + 8, 0);
  store16(buf + 10, 0);
  pos_ = end;
  question_end_ = end;
  return true;
}

void ResponseWriter::ensure_dict() {
  if (dict_ready_) return;
  // Nothing but the question can be in the dictionary yet: every name that enters it goes
  // through write_name, which calls this first.
  dict_size_ = 0;
  for (int i = 0; i < question_label_count_; ++i) {
    remember(static_cast<uint16_t>(kQuestionNameOffset + question_labels_[i]));
  }
  dict_size_at_question_ = dict_size_;
  dict_ready_ = true;
}

void ResponseWriter::remember(uint16_t offset) {
  if (offset > kMaxPointerTarget || dict_size_ >= kMaxDict) return;
  dict_[dict_size_++] = offset;
}

bool ResponseWriter::find_suffix(const uint8_t* name, size_t len, uint16_t* ptr) const {
  for (int i = 0; i < dict_size_; ++i) {
    if (name_equals_at(buf_, pos_, dict_[i], name, len)) {
      *ptr = dict_[i];
      return true;
    }
  }
  return false;
}

bool ResponseWriter::write_name(const uint8_t* name, size_t len, bool compress) {
  if (len == 0 || wire_name_length(name, len) != len) return false;
  if (compress) ensure_dict();
  // Find the longest suffix already in the packet; labels before it are written literally.
  size_t literal = len;
  uint16_t ptr = 0;
  bool use_pointer = false;
  if (compress) {
    for (size_t off = 0; name[off] != 0; off += 1 + name[off]) {
      if (find_suffix(name + off, len - off, &ptr)) {
        literal = off;
        use_pointer = true;
        break;
      }
    }
  }
  const size_t needed = use_pointer ? literal + 2 : len;
  if (needed > limit_ - pos_) return false;

  const size_t start = pos_;
  std::memcpy(buf_ + pos_, name, use_pointer ? literal : len);
  pos_ += use_pointer ? literal : len;
  if (use_pointer) {
    store16(buf_ + pos_, static_cast<uint16_t>(0xC000 | ptr));
    pos_ += 2;
  }
  if (compress) {
    for (size_t off = 0; off < literal && name[off] != 0; off += 1 + name[off]) {
      if (start + off > kMaxPointerTarget) break;
      remember(static_cast<uint16_t>(start + off));
    }
  }
  return true;
}

bool ResponseWriter::add_rr(Section s, const uint8_t* owner, size_t owner_len, uint16_t type,
                            uint16_t rclass, uint32_t ttl, const uint8_t* rdata, size_t rdata_len,
                            uint16_t name1_off, uint16_t name2_off) {
  assert_section_order(counts_, s);
  if (buf_ == nullptr) return false;
  ensure_dict();  // before saving its size: a failed add must not drop the question's labels
  const size_t saved_pos = pos_;
  const int saved_dict = dict_size_;
  if (!write_name(owner, owner_len, true) ||
      !write_rr_tail(s, type, rclass, ttl, rdata, rdata_len, name1_off, name2_off)) {
    pos_ = saved_pos;
    dict_size_ = saved_dict;
    return false;
  }
  return true;
}

bool ResponseWriter::add_rr_qname(Section s, uint16_t type, uint16_t rclass, uint32_t ttl,
                                  const uint8_t* rdata, size_t rdata_len, uint16_t name1_off,
                                  uint16_t name2_off) {
  assert_section_order(counts_, s);
  if (buf_ == nullptr || question_end_ <= kHeaderSize) return false;  // no question to point at
  if (name1_off != 0xFFFF || name2_off != 0xFFFF) ensure_dict();      // as in add_rr
  const size_t saved_pos = pos_;
  const int saved_dict = dict_size_;
  // The question name sits at offset 12, so the owner is the pointer 0xC00C, written directly: the
  // common answer needs no dictionary search. A root question name is its single root octet,
  // which is shorter than a pointer.
  const bool root = question_end_ - kHeaderSize - 4 == 1;
  const size_t owner_len = root ? 1 : 2;
  if (owner_len > limit_ - pos_) return false;
  if (root) {
    buf_[pos_] = 0;
  } else {
    store16(buf_ + pos_, static_cast<uint16_t>(0xC000 | kQuestionNameOffset));
  }
  pos_ += owner_len;
  if (!write_rr_tail(s, type, rclass, ttl, rdata, rdata_len, name1_off, name2_off)) {
    pos_ = saved_pos;
    dict_size_ = saved_dict;
    return false;
  }
  return true;
}

bool ResponseWriter::write_rr_tail(Section s, uint16_t type, uint16_t rclass, uint32_t ttl,
                                   const uint8_t* rdata, size_t rdata_len, uint16_t name1_off,
                                   uint16_t name2_off) {
  const int idx = static_cast<int>(s);
  if (name1_off == 0xFFFF && name2_off == 0xFFFF) {
    // No name inside: one bounds check and straight copies (A and AAAA get fixed-size ones).
    if (rdata_len > 0xFFFF || kRRFixedSize + rdata_len > limit_ - pos_) return false;
    uint8_t* p = buf_ + pos_;
    store16(p, type);
    store16(p + 2, rclass);
    store32(p + 4, ttl);
    store16(p + 8, static_cast<uint16_t>(rdata_len));
    if (rdata_len == 4) {
      std::memcpy(p + kRRFixedSize, rdata, 4);
    } else if (rdata_len == 16) {
      std::memcpy(p + kRRFixedSize, rdata, 16);
    } else if (rdata_len > 0) {
      std::memcpy(p + kRRFixedSize, rdata, rdata_len);
    }
    pos_ += kRRFixedSize + rdata_len;
    ++counts_[idx];
    store16(buf_ + kCountOffset[idx], counts_[idx]);
    return true;
  }
  if (kRRFixedSize > limit_ - pos_) return false;
  const size_t fixed = pos_;
  store16(buf_ + fixed, type);
  store16(buf_ + fixed + 2, rclass);
  store32(buf_ + fixed + 4, ttl);
  pos_ += kRRFixedSize;

  // Copy RDATA in pieces around the embedded names, compressing each name.
  uint16_t name_offs[2] = {name1_off, name2_off};
  if (name_offs[1] < name_offs[0]) {
    name_offs[0] = name2_off;
    name_offs[1] = name1_off;
  }
  size_t src = 0;
  for (uint16_t off : name_offs) {
    if (off == 0xFFFF) continue;
    if (off < src || off >= rdata_len) return false;
    const size_t literal = off - src;
    if (literal > limit_ - pos_) return false;
    std::memcpy(buf_ + pos_, rdata + src, literal);
    pos_ += literal;
    const size_t name_len = wire_name_length(rdata + off, rdata_len - off);
    if (name_len == 0 || !write_name(rdata + off, name_len, true)) return false;
    src = off + name_len;
  }
  const size_t tail = rdata_len - src;
  if (tail > limit_ - pos_) return false;
  if (tail > 0) std::memcpy(buf_ + pos_, rdata + src, tail);
  pos_ += tail;

  const size_t rdlength = pos_ - (fixed + kRRFixedSize);
  if (rdlength > 0xFFFF) return false;
  store16(buf_ + fixed + 8, static_cast<uint16_t>(rdlength));
  ++counts_[idx];
  store16(buf_ + kCountOffset[idx], counts_[idx]);
  return true;
}

bool ResponseWriter::add_opt(uint16_t payload, uint16_t ext_rcode, bool do_bit,
                             const EcsOption* ecs, uint8_t scope_prefix) {
  if (buf_ == nullptr) return false;
  const size_t needed = opt_rr_size(ecs);
  if (needed > limit_ - pos_) return false;
  write_opt_rr(buf_ + pos_, payload, ext_rcode, do_bit, ecs, scope_prefix);
  pos_ += needed;
  ++counts_[2];
  store16(buf_ + kCountOffset[2], counts_[2]);
  return true;
}

void ResponseWriter::set_rcode(uint16_t rcode) {
  if (buf_ == nullptr) return;
  buf_[3] = static_cast<uint8_t>((buf_[3] & 0xF0) | (rcode & 0x0F));
}

void ResponseWriter::set_flag(uint16_t flag) {
  if (buf_ == nullptr) return;
  store16(buf_ + 2, load16(buf_ + 2) | flag);
}

void ResponseWriter::clear_flag(uint16_t flag) {
  if (buf_ == nullptr) return;
  store16(buf_ + 2, static_cast<uint16_t>(load16(buf_ + 2) & ~flag));
}

void ResponseWriter::reset_to_question() {
  if (buf_ == nullptr) return;
  pos_ = question_end_;
  dict_size_ = dict_ready_ ? dict_size_at_question_ : 0;
  for (int i = 0; i < 3; ++i) {
    counts_[i] = 0;
    store16(buf_ + kCountOffset[i], 0);
  }
}

}  // namespace gtm::dns
