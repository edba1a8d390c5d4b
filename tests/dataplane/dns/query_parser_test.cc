#include "dataplane/dns/query_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "dataplane/dns/name.h"

// The portable build (tests/CMakeLists.txt) exists to run the parser's non-SSSE3 name pass.
#if defined(GTM_EXPECT_NO_SSSE3) && defined(__SSSE3__)
#error "query_parser_portable_test must be compiled without SSSE3"
#endif

namespace gtm::dns {
namespace {

using Bytes = std::vector<uint8_t>;

// Builds DNS messages byte by byte, so malformed shapes are as easy to write as good ones.
class Packet {
 public:
  Packet& u8(uint8_t v) {
    bytes_.push_back(v);
    return *this;
  }
  Packet& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  Packet& u32(uint32_t v) {
    return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v));
  }
  Packet& raw(const Bytes& b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
    return *this;
  }
  Packet& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // "www.Example.com" (a trailing dot is optional; "" or "." is the root).
  Packet& name(const std::string& dotted) {
    size_t start = dotted == "." ? 1 : 0;
    while (start < dotted.size()) {
      size_t dot = dotted.find('.', start);
      if (dot == std::string::npos) dot = dotted.size();
      u8(static_cast<uint8_t>(dot - start));
      for (size_t i = start; i < dot; ++i) u8(static_cast<uint8_t>(dotted[i]));
      start = dot + 1;
    }
    return u8(0);
  }
  Packet& pointer(uint16_t target) { return u16(static_cast<uint16_t>(0xC000 | target)); }
  Packet& question(const std::string& qname, uint16_t qtype, uint16_t qclass = kClassIN) {
    return name(qname).u16(qtype).u16(qclass);
  }
  // Fixed fields + RDATA of an RR whose owner has already been written.
  Packet& rr_body(uint16_t type, uint16_t rclass, uint32_t ttl, const Bytes& rdata) {
    return u16(type).u16(rclass).u32(ttl).u16(static_cast<uint16_t>(rdata.size())).raw(rdata);
  }
  Packet& opt(uint16_t payload, const Bytes& rdata, uint8_t version = 0, uint16_t flags = 0,
              uint8_t ext_rcode = 0) {
    u8(0).u16(kTypeOPT).u16(payload);
    return u8(ext_rcode).u8(version).u16(flags).u16(static_cast<uint16_t>(rdata.size())).raw(rdata);
  }
  size_t size() const { return bytes_.size(); }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

Bytes option(uint16_t code, const Bytes& data) {
  // Appended one by one: GCC 12 at -O3 misreports insert-after-init-list (-Warray-bounds).
  Bytes o;
  o.reserve(4 + data.size());
  o.push_back(static_cast<uint8_t>(code >> 8));
  o.push_back(static_cast<uint8_t>(code));
  o.push_back(static_cast<uint8_t>(data.size() >> 8));
  o.push_back(static_cast<uint8_t>(data.size()));
  for (uint8_t b : data) o.push_back(b);
  return o;
}

Bytes ecs(uint16_t family, uint8_t source, uint8_t scope, const Bytes& addr) {
  Bytes d = {static_cast<uint8_t>(family >> 8), static_cast<uint8_t>(family), source, scope};
  d.insert(d.end(), addr.begin(), addr.end());
  return option(kOptEcs, d);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Parses a copy sized exactly to the input, so a one-byte over-read is caught by ASan.
ParseStatus parse(const Bytes& b, ParsedQuery* q) {
  Bytes exact(b.begin(), b.end());
  return parse_query(exact.data(), exact.size(), q);
}

ParseStatus parse(const Packet& p, ParsedQuery* q) {
  return parse(p.bytes(), q);
}

Packet simple_query(const std::string& qname = "www.example.com", uint16_t qtype = kTypeA) {
  Packet p;
  p.header(0x1234, kFlagRD, 1, 0, 0, 0).question(qname, qtype);
  return p;
}

Packet edns_query(const Bytes& opt_rdata, uint16_t payload = 1232) {
  Packet p;
  p.header(0xBEEF, kFlagRD, 1, 0, 0, 1).question("example.com", kTypeA).opt(payload, opt_rdata);
  return p;
}

std::string repeat(char c, size_t n) {
  return std::string(n, c);
}

// --- Well-formed queries ---------------------------------------------------------------------

TEST(QueryParser, SimpleQueryFillsEveryField) {
  Packet p;
  p.header(0xABCD, kFlagRD | kFlagCD, 1, 0, 0, 0).question("WWW.Example.COM", kTypeAAAA);
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
  EXPECT_EQ(q.id, 0xABCD);
  EXPECT_EQ(q.flags, kFlagRD | kFlagCD);
  EXPECT_EQ(q.opcode, 0);
  const uint8_t expected[] = {3,   'w', 'w', 'w', 7,   'e', 'x', 'a', 'm',
                              'p', 'l', 'e', 3,   'c', 'o', 'm', 0};
  ASSERT_EQ(q.qname_len, sizeof(expected));
  EXPECT_EQ(std::memcmp(q.qname_lower, expected, sizeof(expected)), 0);
  EXPECT_EQ(q.label_count, 3);
  EXPECT_EQ(q.label_offsets[0], 0);
  EXPECT_EQ(q.label_offsets[1], 4);
  EXPECT_EQ(q.label_offsets[2], 12);
  EXPECT_EQ(q.qtype, kTypeAAAA);
  EXPECT_EQ(q.qclass, kClassIN);
  EXPECT_EQ(q.question_end, 12 + sizeof(expected) + 4);
  EXPECT_FALSE(q.has_edns);
  EXPECT_FALSE(q.ecs.present);
  EXPECT_FALSE(q.has_cookie);
}

TEST(QueryParser, OnlyAsciiLettersAreLowercased) {
  // Label bytes outside A-Z must pass through untouched (binary labels are legal).
  Packet q2;
  q2.header(1, 0, 1, 0, 0, 0).u8(4).u8('A').u8(0xC1).u8('[').u8('Z').u8(0).u16(kTypeA).u16(1);
  ParsedQuery q;
  ASSERT_EQ(parse(q2, &q), ParseStatus::kOk);
  const uint8_t expected[] = {4, 'a', 0xC1, '[', 'z', 0};
  ASSERT_EQ(q.qname_len, sizeof(expected));
  EXPECT_EQ(std::memcmp(q.qname_lower, expected, sizeof(expected)), 0);
}

TEST(QueryParser, EveryByteValueLowercasedExactlyAtEveryPosition) {
  // The parser lowercases 8 bytes at a time; check every byte value at every offset of a word, with
  // each neighbour value, against the byte-at-a-time rule.
  for (int value = 0; value < 256; ++value) {
    for (int at = 0; at < 8; ++at) {
      for (int neighbour : {0x00, 0x40, 0x41, 0x5A, 0x5B, 0x7F, 0x80, 0xC1, 0xDA, 0xFF}) {
        Bytes label(40, static_cast<uint8_t>(neighbour));
        label[at] = static_cast<uint8_t>(value);
        label[at + 17] = static_cast<uint8_t>(value);
        Packet p;
        p.header(1, 0, 1, 0, 0, 0).u8(static_cast<uint8_t>(label.size())).raw(label).u8(0);
        p.u16(kTypeA).u16(kClassIN);
        ParsedQuery q;
        ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
        ASSERT_EQ(q.qname_len, label.size() + 2);
        for (size_t i = 0; i < label.size(); ++i) {
          ASSERT_EQ(q.qname_lower[1 + i], ascii_lower(label[i]))
              << "value " << value << " at " << i << " neighbour " << neighbour;
        }
      }
    }
  }
}

TEST(QueryParser, RootQuestion) {
  Packet p = simple_query(".", kTypeNS);
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
  EXPECT_EQ(q.qname_len, 1);
  EXPECT_EQ(q.qname_lower[0], 0);
  EXPECT_EQ(q.label_count, 0);
  EXPECT_EQ(q.question_end, 12 + 1 + 4);
  EXPECT_EQ(q.qtype, kTypeNS);
}

TEST(QueryParser, AnyAndChaosClassAreParsedNotJudged) {
  Packet chaos;
  chaos.header(7, 0, 1, 0, 0, 0).question("version.bind", kTypeTXT, kClassCH);
  ParsedQuery q;
  ASSERT_EQ(parse(chaos, &q), ParseStatus::kOk);
  EXPECT_EQ(q.qclass, kClassCH);
  ASSERT_EQ(parse(simple_query("example.com", kTypeANY), &q), ParseStatus::kOk);
  EXPECT_EQ(q.qtype, kTypeANY);
}

TEST(QueryParser, MaximumLabelAndNameLengthsAccepted) {
  ParsedQuery q;
  // One 63-octet label.
  ASSERT_EQ(parse(simple_query(repeat('a', 63) + ".com"), &q), ParseStatus::kOk);
  EXPECT_EQ(q.qname_len, 1 + 63 + 1 + 3 + 1);
  // 255 octets exactly: three 63-octet labels + one 61-octet label + root = 64*3 + 62 + 1.
  const std::string l63 = repeat('b', 63);
  const std::string name255 = l63 + "." + l63 + "." + l63 + "." + repeat('c', 61);
  ASSERT_EQ(parse(simple_query(name255), &q), ParseStatus::kOk);
  EXPECT_EQ(q.qname_len, 255);
  EXPECT_EQ(q.label_count, 4);
  EXPECT_EQ(q.label_offsets[3], 192);
}

TEST(QueryParser, OneHundredTwentySevenLabelsAccepted) {
  std::string name;
  for (int i = 0; i < 127; ++i) name += i == 0 ? "x" : ".x";
  ParsedQuery q;
  ASSERT_EQ(parse(simple_query(name), &q), ParseStatus::kOk);
  EXPECT_EQ(q.label_count, 127);
  EXPECT_EQ(q.qname_len, 255);
  for (int i = 0; i < 127; ++i) EXPECT_EQ(q.label_offsets[i], 2 * i);
}

// --- Header-level rules ----------------------------------------------------------------------

TEST(QueryParser, ShorterThanHeaderIsDropped) {
  const Bytes full = simple_query().bytes();
  for (size_t len = 0; len < kHeaderSize; ++len) {
    ParsedQuery q;
    EXPECT_EQ(parse(Bytes(full.begin(), full.begin() + len), &q), ParseStatus::kDrop) << len;
  }
}

TEST(QueryParser, ResponsesAreDropped) {
  Packet p;
  p.header(1, kFlagQR | kFlagAA, 1, 0, 0, 0).question("example.com", kTypeA);
  ParsedQuery q;
  EXPECT_EQ(parse(p, &q), ParseStatus::kDrop);
  // Even a bare header with QR set.
  Packet bare;
  bare.header(1, kFlagQR, 0, 0, 0, 0);
  EXPECT_EQ(parse(bare, &q), ParseStatus::kDrop);
}

TEST(QueryParser, NonQueryOpcodeIsNotImpWithQuestionEchoable) {
  Packet p;
  const uint16_t notify = 4 << 11;
  p.header(0x4242, notify | kFlagAA, 1, 0, 0, 0).question("Example.com", kTypeSOA);
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kNotImp);
  EXPECT_EQ(q.id, 0x4242);
  EXPECT_EQ(q.opcode, 4);
  EXPECT_EQ(q.flags, notify | kFlagAA);
  EXPECT_EQ(q.question_end, p.size());
  EXPECT_EQ(q.qtype, kTypeSOA);
  EXPECT_EQ(q.qname_lower[1], 'e');
}

TEST(QueryParser, NonQueryOpcodeWithoutUsableQuestion) {
  ParsedQuery q;
  Packet no_question;
  no_question.header(9, 2 << 11, 0, 0, 0, 0);  // STATUS, QDCOUNT 0
  ASSERT_EQ(parse(no_question, &q), ParseStatus::kNotImp);
  EXPECT_EQ(q.id, 9);
  EXPECT_EQ(q.opcode, 2);
  EXPECT_EQ(q.question_end, 0);

  Packet broken;
  broken.header(9, 5 << 11, 1, 0, 0, 0).u8(70).u8('a');  // UPDATE, bad label
  ASSERT_EQ(parse(broken, &q), ParseStatus::kNotImp);
  EXPECT_EQ(q.opcode, 5);
  EXPECT_EQ(q.question_end, 0);
}

TEST(QueryParser, NonQueryOpcodeKeepsEdnsOnlyWhenValid) {
  ParsedQuery q;
  Packet good;
  good.header(1, 4 << 11, 1, 0, 0, 1).question("a.example", kTypeSOA).opt(4096, {});
  ASSERT_EQ(parse(good, &q), ParseStatus::kNotImp);
  EXPECT_TRUE(q.has_edns);
  EXPECT_EQ(q.udp_payload, 4096);

  Packet bad;
  bad.header(1, 4 << 11, 1, 0, 0, 1).question("a.example", kTypeSOA).opt(4096, ecs(7, 0, 0, {}));
  ASSERT_EQ(parse(bad, &q), ParseStatus::kNotImp);
  EXPECT_FALSE(q.has_edns);
  EXPECT_FALSE(q.ecs.present);
  EXPECT_NE(q.question_end, 0);
}

TEST(QueryParser, QdcountMustBeOne) {
  ParsedQuery q;
  Packet zero;
  zero.header(0x1111, kFlagRD, 0, 0, 0, 0);
  ASSERT_EQ(parse(zero, &q), ParseStatus::kFormErr);
  EXPECT_EQ(q.id, 0x1111);
  EXPECT_EQ(q.flags, kFlagRD);
  EXPECT_EQ(q.question_end, 0);

  Packet two;
  two.header(0x2222, 0, 2, 0, 0, 0).question("a.example", kTypeA).question("b.example", kTypeA);
  ASSERT_EQ(parse(two, &q), ParseStatus::kFormErr);
  EXPECT_EQ(q.id, 0x2222);
  EXPECT_EQ(q.question_end, 0);
}

// --- Question rules --------------------------------------------------------------------------

TEST(QueryParser, EveryTruncatedQuestionIsFormErr) {
  const Bytes full = simple_query().bytes();
  for (size_t len = kHeaderSize; len < full.size(); ++len) {
    ParsedQuery q;
    ASSERT_EQ(parse(Bytes(full.begin(), full.begin() + len), &q), ParseStatus::kFormErr) << len;
    EXPECT_EQ(q.id, 0x1234);
    EXPECT_EQ(q.question_end, 0) << len;
  }
}

TEST(QueryParser, LabelOf64OctetsIsFormErr) {
  ParsedQuery q;
  // 64 as a length byte is the reserved 0x40 label type.
  EXPECT_EQ(parse(simple_query(repeat('a', 64) + ".com"), &q), ParseStatus::kFormErr);
  EXPECT_EQ(q.question_end, 0);
}

TEST(QueryParser, ReservedLabelTypesAreFormErr) {
  for (uint8_t type : {0x40, 0x80, 0xBF}) {
    Packet p;
    p.header(1, 0, 1, 0, 0, 0).u8(type).raw(Bytes(80, 'a')).u8(0).u16(kTypeA).u16(1);
    ParsedQuery q;
    EXPECT_EQ(parse(p, &q), ParseStatus::kFormErr) << int(type);
  }
}

TEST(QueryParser, NameOf256OctetsIsFormErr) {
  const std::string l63 = repeat('b', 63);
  const std::string name256 = l63 + "." + l63 + "." + l63 + "." + repeat('c', 62);
  ParsedQuery q;
  EXPECT_EQ(parse(simple_query(name256), &q), ParseStatus::kFormErr);
  EXPECT_EQ(q.question_end, 0);
  // 128 one-octet labels: 257 octets.
  std::string many;
  for (int i = 0; i < 128; ++i) many += i == 0 ? "x" : ".x";
  EXPECT_EQ(parse(simple_query(many), &q), ParseStatus::kFormErr);
}

TEST(QueryParser, PointerInQuestionIsFormErr) {
  ParsedQuery q;
  Packet to_header;
  to_header.header(1, 0, 1, 0, 0, 0).pointer(0).u16(kTypeA).u16(1);
  EXPECT_EQ(parse(to_header, &q), ParseStatus::kFormErr);
  Packet after_label;
  after_label.header(1, 0, 1, 0, 0, 0).u8(3).raw({'w', 'w', 'w'}).pointer(12).u16(kTypeA).u16(1);
  EXPECT_EQ(parse(after_label, &q), ParseStatus::kFormErr);
  EXPECT_EQ(q.question_end, 0);
}

TEST(QueryParser, QtypeOptIsFormErrButQuestionEchoable) {
  ParsedQuery q;
  Packet p = simple_query("example.com", kTypeOPT);
  ASSERT_EQ(parse(p, &q), ParseStatus::kFormErr);
  EXPECT_EQ(q.question_end, p.size());
  EXPECT_EQ(q.qtype, kTypeOPT);
}

// --- Other sections --------------------------------------------------------------------------

TEST(QueryParser, CompressedNamesInOtherSectionsAccepted) {
  Packet p;
  p.header(1, 0, 1, 1, 1, 1).question("www.example.com", kTypeA);
  p.pointer(12).rr_body(kTypeA, kClassIN, 60, {192, 0, 2, 1});              // answer
  p.u8(2).raw({'n', 's'}).pointer(16).rr_body(kTypeNS, kClassIN, 60, {0});  // authority
  const uint16_t ns_owner = static_cast<uint16_t>(12 + 17 + 4 + 2 + 14);
  p.pointer(ns_owner).rr_body(kTypeA, kClassIN, 60, {192, 0, 2, 2});  // additional
  ParsedQuery q;
  EXPECT_EQ(parse(p, &q), ParseStatus::kOk);
  EXPECT_FALSE(q.has_edns);
}

TEST(QueryParser, PointerChainsBackwardsAccepted) {
  Packet p;
  p.header(1, 0, 1, 2, 0, 0).question("example.com", kTypeA);
  const uint16_t first = static_cast<uint16_t>(p.size());
  p.u8(1).u8('a').pointer(12).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  p.u8(1).u8('b').pointer(first).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  ParsedQuery q;
  EXPECT_EQ(parse(p, &q), ParseStatus::kOk);
}

TEST(QueryParser, ForwardPointerIsFormErr) {
  Packet p;
  p.header(1, 0, 1, 2, 0, 0).question("example.com", kTypeA);
  const uint16_t here = static_cast<uint16_t>(p.size());
  // Points at the owner of the next RR: forward, even though in bounds and well formed.
  p.pointer(static_cast<uint16_t>(here + 2 + 14)).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  p.u8(1).u8('z').u8(0).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  ParsedQuery q;
  EXPECT_EQ(parse(p, &q), ParseStatus::kFormErr);
  EXPECT_NE(q.question_end, 0);
}

TEST(QueryParser, SelfPointerAndLoopsAreFormErr) {
  ParsedQuery q;
  Packet self;
  self.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA);
  self.pointer(static_cast<uint16_t>(self.size())).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  EXPECT_EQ(parse(self, &q), ParseStatus::kFormErr);

  // A two-pointer loop: the RR name at X is "a" + ptr(Y), Y holds ptr(X).
  Packet loop;
  loop.header(1, 0, 1, 1, 0, 1).question("example.com", kTypeA);
  const uint16_t x = static_cast<uint16_t>(loop.size());
  const uint16_t y = static_cast<uint16_t>(x + 2 + 2 + 10 + 4);
  loop.u8(1).u8('a').pointer(y).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  loop.pointer(x).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  EXPECT_EQ(parse(loop, &q), ParseStatus::kFormErr);
}

TEST(QueryParser, PointerOutOfBoundsOrIntoHeaderIsFormErr) {
  ParsedQuery q;
  Packet out;
  out.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA);
  out.pointer(0x3FFF).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  EXPECT_EQ(parse(out, &q), ParseStatus::kFormErr);

  Packet header;
  header.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA);
  header.pointer(4).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  EXPECT_EQ(parse(header, &q), ParseStatus::kFormErr);

  // A pointer whose second octet is missing.
  Packet cut;
  cut.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA).u8(0xC0);
  EXPECT_EQ(parse(cut, &q), ParseStatus::kFormErr);
}

TEST(QueryParser, CompressedNameLongerThan255IsFormErr) {
  // Build a long name in the answer section, then a second RR that prepends labels to it.
  const std::string l63 = repeat('q', 63);
  Packet p;
  p.header(1, 0, 1, 2, 0, 0).question("e", kTypeA);
  const uint16_t long_name = static_cast<uint16_t>(p.size());
  p.name(l63 + "." + l63 + "." + l63).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});  // 193 octets
  p.raw({63}).raw(Bytes(63, 'r')).pointer(long_name).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  ParsedQuery q;
  EXPECT_EQ(parse(p, &q), ParseStatus::kFormErr);
}

TEST(QueryParser, MalformedRRsAreFormErr) {
  ParsedQuery q;
  Packet missing;
  missing.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA);  // ANCOUNT 1, no RR
  EXPECT_EQ(parse(missing, &q), ParseStatus::kFormErr);
  EXPECT_NE(q.question_end, 0);

  Packet short_fixed;
  short_fixed.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA).pointer(12).u16(1).u16(1);
  EXPECT_EQ(parse(short_fixed, &q), ParseStatus::kFormErr);

  Packet rdlen_overrun;
  rdlen_overrun.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA).pointer(12);
  rdlen_overrun.u16(kTypeA).u16(1).u32(1).u16(5).raw({1, 2, 3, 4});
  EXPECT_EQ(parse(rdlen_overrun, &q), ParseStatus::kFormErr);

  Packet huge_counts;
  huge_counts.header(1, 0, 1, 0xFFFF, 0xFFFF, 0xFFFF).question("example.com", kTypeA);
  EXPECT_EQ(parse(huge_counts, &q), ParseStatus::kFormErr);
}

TEST(QueryParser, TrailingBytesAreFormErr) {
  ParsedQuery q;
  Bytes b = simple_query().bytes();
  b.push_back(0);
  EXPECT_EQ(parse(b, &q), ParseStatus::kFormErr);
  EXPECT_NE(q.question_end, 0);
  Bytes e = edns_query({}).bytes();
  e.push_back(0xFF);
  EXPECT_EQ(parse(e, &q), ParseStatus::kFormErr);
}

TEST(QueryParser, EveryTruncationOfAComplexQueryIsFormErr) {
  Packet p;
  p.header(77, 0, 1, 1, 0, 2).question("www.example.com", kTypeA);
  p.pointer(12).rr_body(kTypeA, 1, 1, {1, 2, 3, 4});
  p.u8(1).u8('x').pointer(16).rr_body(kTypeTXT, 1, 1, {3, 'a', 'b', 'c'});
  p.opt(1400, concat({ecs(1, 24, 0, {10, 1, 2}), option(kOptCookie, Bytes(8, 7))}));
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
  const Bytes& full = p.bytes();
  for (size_t len = kHeaderSize; len < full.size(); ++len) {
    EXPECT_EQ(parse(Bytes(full.begin(), full.begin() + len), &q), ParseStatus::kFormErr) << len;
    EXPECT_EQ(q.id, 77);
  }
}

// --- EDNS ------------------------------------------------------------------------------------

TEST(QueryParser, OptFieldsParsed) {
  Packet p;
  p.header(1, 0, 1, 0, 0, 1).question("example.com", kTypeA);
  p.opt(4096, {}, /*version=*/0, /*flags=*/kEdnsFlagDO, /*ext_rcode=*/0x5A);
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
  EXPECT_TRUE(q.has_edns);
  EXPECT_EQ(q.udp_payload, 4096);
  EXPECT_EQ(q.edns_version, 0);
  EXPECT_EQ(q.edns_flags, kEdnsFlagDO);
  EXPECT_FALSE(q.ecs.present);
  EXPECT_FALSE(q.has_cookie);
}

TEST(QueryParser, SmallPayloadReadsAs512) {
  ParsedQuery q;
  ASSERT_EQ(parse(edns_query({}, 0), &q), ParseStatus::kOk);
  EXPECT_EQ(q.udp_payload, 512);
  ASSERT_EQ(parse(edns_query({}, 511), &q), ParseStatus::kOk);
  EXPECT_EQ(q.udp_payload, 512);
  ASSERT_EQ(parse(edns_query({}, 513), &q), ParseStatus::kOk);
  EXPECT_EQ(q.udp_payload, 513);
}

TEST(QueryParser, EdnsVersionIsReportedNotJudged) {
  Packet p;
  p.header(1, 0, 1, 0, 0, 1).question("example.com", kTypeA).opt(1232, {}, /*version=*/1, 0x1234);
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
  EXPECT_EQ(q.edns_version, 1);
  EXPECT_EQ(q.edns_flags, 0x1234);
}

TEST(QueryParser, OptAfterOtherAdditionalRecords) {
  Packet p;
  p.header(1, 0, 1, 0, 0, 2).question("example.com", kTypeA);
  p.pointer(12).rr_body(kTypeA, 1, 1, {1, 2, 3, 4}).opt(2048, {});
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
  EXPECT_EQ(q.udp_payload, 2048);
}

TEST(QueryParser, TwoOptRecordsAreFormErr) {
  Packet p;
  p.header(1, 0, 1, 0, 0, 2).question("example.com", kTypeA).opt(1232, {}).opt(1232, {});
  ParsedQuery q;
  ASSERT_EQ(parse(p, &q), ParseStatus::kFormErr);
  // The first OPT was fine: a FORMERR answer may still carry EDNS.
  EXPECT_TRUE(q.has_edns);
  EXPECT_NE(q.question_end, 0);
}

TEST(QueryParser, OptOutsideAdditionalIsFormErr) {
  ParsedQuery q;
  Packet answer;
  answer.header(1, 0, 1, 1, 0, 0).question("example.com", kTypeA).opt(1232, {});
  EXPECT_EQ(parse(answer, &q), ParseStatus::kFormErr);
  Packet authority;
  authority.header(1, 0, 1, 0, 1, 0).question("example.com", kTypeA).opt(1232, {});
  EXPECT_EQ(parse(authority, &q), ParseStatus::kFormErr);
}

TEST(QueryParser, OptWithNonRootOwnerIsFormErr) {
  ParsedQuery q;
  Packet literal;
  literal.header(1, 0, 1, 0, 0, 1).question("example.com", kTypeA);
  literal.name("example.com").rr_body(kTypeOPT, 1232, 0, {});
  EXPECT_EQ(parse(literal, &q), ParseStatus::kFormErr);
  Packet compressed;
  compressed.header(1, 0, 1, 0, 0, 1).question("example.com", kTypeA);
  compressed.pointer(12).rr_body(kTypeOPT, 1232, 0, {});
  EXPECT_EQ(parse(compressed, &q), ParseStatus::kFormErr);
}

TEST(QueryParser, UnknownOptionsSkipped) {
  ParsedQuery q;
  const Bytes rdata = concat({option(3, {'n', 's', 'i', 'd'}), option(12, Bytes(100, 0)),
                              option(0xFDE9, {}), option(kOptCookie, Bytes(8, 1))});
  ASSERT_EQ(parse(edns_query(rdata), &q), ParseStatus::kOk);
  EXPECT_TRUE(q.has_cookie);
}

TEST(QueryParser, OptionOverrunningRdataIsFormErr) {
  ParsedQuery q;
  Bytes overrun = option(3, {1, 2, 3});
  overrun[3] = 4;  // claims one more octet than the RDATA holds
  EXPECT_EQ(parse(edns_query(overrun), &q), ParseStatus::kFormErr);
  // A truncated option header (2 of 4 octets).
  EXPECT_EQ(parse(edns_query({0, 3}), &q), ParseStatus::kFormErr);
  // ECS whose length runs past the RDATA end, even though the packet continues (another RR).
  Packet p;
  Bytes ecs_long = ecs(1, 24, 0, {10, 0, 0});
  ecs_long[3] = 20;
  p.header(1, 0, 1, 0, 0, 2).question("example.com", kTypeA).opt(1232, ecs_long);
  p.pointer(12).rr_body(kTypeA, 1, 1, Bytes(12, 0));
  EXPECT_EQ(parse(p, &q), ParseStatus::kFormErr);
}

// --- ECS (RFC 7871) --------------------------------------------------------------------------

TEST(QueryParser, EcsIpv4Parsed) {
  ParsedQuery q;
  ASSERT_EQ(parse(edns_query(ecs(1, 24, 0, {198, 51, 100})), &q), ParseStatus::kOk);
  ASSERT_TRUE(q.ecs.present);
  EXPECT_EQ(q.ecs.family, 1);
  EXPECT_EQ(q.ecs.source_prefix, 24);
  EXPECT_EQ(q.ecs.scope_prefix, 0);
  const uint8_t expected[16] = {198, 51, 100};
  EXPECT_EQ(std::memcmp(q.ecs.address, expected, 16), 0);
}

TEST(QueryParser, EcsIpv6Parsed) {
  ParsedQuery q;
  const Bytes addr = {0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x80};  // /49: bit 48 set, rest clear
  ASSERT_EQ(parse(edns_query(ecs(2, 49, 0, addr)), &q), ParseStatus::kOk);
  ASSERT_TRUE(q.ecs.present);
  EXPECT_EQ(q.ecs.family, 2);
  EXPECT_EQ(q.ecs.source_prefix, 49);
  EXPECT_EQ(std::memcmp(q.ecs.address, addr.data(), addr.size()), 0);
  for (size_t i = addr.size(); i < 16; ++i) EXPECT_EQ(q.ecs.address[i], 0);
  ASSERT_EQ(parse(edns_query(ecs(2, 128, 0, Bytes(16, 0xFF))), &q), ParseStatus::kOk);
  EXPECT_EQ(q.ecs.address[15], 0xFF);
}

TEST(QueryParser, EcsZeroPrefixAndScopeAccepted) {
  ParsedQuery q;
  ASSERT_EQ(parse(edns_query(ecs(1, 0, 0, {})), &q), ParseStatus::kOk);
  EXPECT_TRUE(q.ecs.present);
  EXPECT_EQ(q.ecs.source_prefix, 0);
  // A non-zero scope in a query is ignored, not rejected.
  ASSERT_EQ(parse(edns_query(ecs(1, 32, 16, {1, 2, 3, 4})), &q), ParseStatus::kOk);
  EXPECT_EQ(q.ecs.scope_prefix, 16);
  EXPECT_EQ(q.ecs.address[3], 4);
}

TEST(QueryParser, EcsBadFamilyIsFormErr) {
  ParsedQuery q;
  for (uint16_t family : {0, 3, 0x100}) {
    ASSERT_EQ(parse(edns_query(ecs(family, 0, 0, {})), &q), ParseStatus::kFormErr) << family;
    EXPECT_FALSE(q.ecs.present);
    EXPECT_TRUE(q.has_edns);
  }
}

TEST(QueryParser, EcsSourcePrefixTooLongIsFormErr) {
  ParsedQuery q;
  EXPECT_EQ(parse(edns_query(ecs(1, 33, 0, {1, 2, 3, 4, 0})), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(ecs(2, 129, 0, Bytes(17, 0))), &q), ParseStatus::kFormErr);
}

TEST(QueryParser, EcsAddressLengthMustMatchPrefix) {
  ParsedQuery q;
  EXPECT_EQ(parse(edns_query(ecs(1, 24, 0, {10, 0, 0, 0})), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(ecs(1, 24, 0, {10, 0})), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(ecs(1, 0, 0, {10})), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(ecs(2, 56, 0, Bytes(8, 0))), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(ecs(1, 25, 0, {10, 0, 0, 0})), &q), ParseStatus::kOk);
}

TEST(QueryParser, EcsBitsPastSourcePrefixAreFormErr) {
  ParsedQuery q;
  EXPECT_EQ(parse(edns_query(ecs(1, 23, 0, {10, 0, 1})), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(ecs(1, 23, 0, {10, 0, 2})), &q), ParseStatus::kOk);
  EXPECT_EQ(parse(edns_query(ecs(1, 1, 0, {0x40})), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(ecs(1, 1, 0, {0x80})), &q), ParseStatus::kOk);
  EXPECT_EQ(parse(edns_query(ecs(2, 127, 0, Bytes(16, 0xFF))), &q), ParseStatus::kFormErr);
}

TEST(QueryParser, EcsOptionShorterThanFixedPartIsFormErr) {
  ParsedQuery q;
  EXPECT_EQ(parse(edns_query(option(kOptEcs, {0, 1, 0})), &q), ParseStatus::kFormErr);
  EXPECT_EQ(parse(edns_query(option(kOptEcs, {})), &q), ParseStatus::kFormErr);
}

TEST(QueryParser, DuplicateEcsIsFormErr) {
  ParsedQuery q;
  const Bytes two = concat({ecs(1, 8, 0, {10}), ecs(1, 8, 0, {11})});
  EXPECT_EQ(parse(edns_query(two), &q), ParseStatus::kFormErr);
}

// --- COOKIE (RFC 7873) -----------------------------------------------------------------------

TEST(QueryParser, CookieValidLengths) {
  for (size_t len : {8, 16, 24, 40}) {
    ParsedQuery q;
    ASSERT_EQ(parse(edns_query(option(kOptCookie, Bytes(len, 0xAB))), &q), ParseStatus::kOk) << len;
    EXPECT_TRUE(q.has_cookie);
  }
}

TEST(QueryParser, CookieBadLengthsAreFormErr) {
  for (size_t len : {0, 1, 7, 9, 15, 41, 64}) {
    ParsedQuery q;
    EXPECT_EQ(parse(edns_query(option(kOptCookie, Bytes(len, 0xAB))), &q), ParseStatus::kFormErr)
        << len;
    EXPECT_FALSE(q.has_cookie);
  }
}

TEST(QueryParser, CookieAndEcsTogether) {
  ParsedQuery q;
  const Bytes rdata =
      concat({option(kOptCookie, Bytes(8, 1)), ecs(2, 32, 0, {0x20, 1, 0xd, 0xb8})});
  ASSERT_EQ(parse(edns_query(rdata), &q), ParseStatus::kOk);
  EXPECT_TRUE(q.has_cookie);
  EXPECT_TRUE(q.ecs.present);
  EXPECT_EQ(q.ecs.address[3], 0xb8);
}

// --- Robustness ------------------------------------------------------------------------------

// The output must be fully reset between calls: reusing one ParsedQuery must not leak state.
TEST(QueryParser, OutputIsResetBetweenCalls) {
  ParsedQuery q;
  ASSERT_EQ(
      parse(edns_query(concat({ecs(1, 24, 0, {1, 2, 3}), option(kOptCookie, Bytes(8, 1))})), &q),
      ParseStatus::kOk);
  ASSERT_EQ(parse(simple_query(), &q), ParseStatus::kOk);
  EXPECT_FALSE(q.has_edns);
  EXPECT_FALSE(q.ecs.present);
  EXPECT_FALSE(q.has_cookie);
  EXPECT_EQ(q.udp_payload, 0);
}

// Random mutations of a valid query: never crashes (ASan build), and whatever is accepted obeys
// the output invariants.
TEST(QueryParser, MutatedInputsKeepInvariants) {
  Packet seed;
  seed.header(5, kFlagRD, 1, 1, 0, 1).question("www.example.com", kTypeA);
  seed.pointer(12).rr_body(kTypeCNAME, 1, 1, {1, 'x', 0xC0, 12});
  seed.opt(1232, concat({ecs(1, 24, 0, {10, 0, 0}), option(kOptCookie, Bytes(8, 3))}));
  std::mt19937 rng(12345);
  int ok = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes b = seed.bytes();
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 3) {
        case 0:
          b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          b[rng() % b.size()] = static_cast<uint8_t>(rng());
          break;
        default:
          b.resize(rng() % (b.size() + 1));
          break;
      }
      if (b.empty()) break;
    }
    ParsedQuery q;
    const ParseStatus st = parse(b, &q);
    if (st == ParseStatus::kOk) {
      ++ok;
      ASSERT_GE(b.size(), q.question_end);
      ASSERT_EQ(q.question_end, kHeaderSize + q.qname_len + 4);
      ASSERT_LE(q.qname_len, kMaxNameLen);
      ASSERT_EQ(q.qname_lower[q.qname_len - 1], 0);
      for (int i = 0; i < q.label_count; ++i) {
        ASSERT_LT(q.label_offsets[i], q.qname_len);
        ASSERT_LE(q.qname_lower[q.label_offsets[i]], kMaxLabelLen);
      }
      if (q.has_edns) {
        ASSERT_GE(q.udp_payload, kMinUdpPayload);
      }
    }
    if (st == ParseStatus::kFormErr || st == ParseStatus::kNotImp) {
      ASSERT_EQ(q.id, load16(b.data()));
      if (q.question_end != 0) {
        ASSERT_LE(q.question_end, b.size());
      }
    }
  }
  EXPECT_GT(ok, 0);  // the mutator must not be so destructive that nothing is accepted
}

// --- The one-pass route agrees with the strict walk --------------------------------------------

namespace fast_path {

// parse_query() takes a one-pass route for the common shape (16 octets of the name per step, a
// lone ECS option read from the end of the message); parse_query_strict() is the reference.
void expect_same_as_strict(const Bytes& msg) {
  ParsedQuery f;
  ParsedQuery s;
  Bytes a(msg.begin(), msg.end());
  Bytes b(msg.begin(), msg.end());
  const ParseStatus fs = parse_query(a.data(), a.size(), &f);
  const ParseStatus ss = parse_query_strict(b.data(), b.size(), &s);
  ASSERT_EQ(fs, ss);
  if (fs != ParseStatus::kOk) return;
  EXPECT_EQ(f.id, s.id);
  EXPECT_EQ(f.flags, s.flags);
  ASSERT_EQ(f.qname_len, s.qname_len);
  EXPECT_EQ(0, std::memcmp(f.qname_lower, s.qname_lower, s.qname_len));
  EXPECT_EQ(f.qname_hash, s.qname_hash);
  EXPECT_EQ(f.qname_hash, name_hash(s.qname_lower, s.qname_len));
  ASSERT_EQ(f.label_count, s.label_count);
  EXPECT_EQ(0, std::memcmp(f.label_offsets, s.label_offsets, s.label_count));
  EXPECT_EQ(f.qtype, s.qtype);
  EXPECT_EQ(f.question_end, s.question_end);
  EXPECT_EQ(f.has_edns, s.has_edns);
  EXPECT_EQ(f.udp_payload, s.udp_payload);
  EXPECT_EQ(f.edns_flags, s.edns_flags);
  EXPECT_EQ(f.has_cookie, s.has_cookie);
  EXPECT_EQ(f.ecs.present, s.ecs.present);
  EXPECT_EQ(f.ecs.family, s.ecs.family);
  EXPECT_EQ(f.ecs.source_prefix, s.ecs.source_prefix);
  EXPECT_EQ(f.ecs.scope_prefix, s.ecs.scope_prefix);
  EXPECT_EQ(0, std::memcmp(f.ecs.address, s.ecs.address, sizeof(s.ecs.address)));
}

// A name of `len` wire octets (root included) in labels of at most `max_label` octets, with
// letters of both cases, digits and octets >= 0x80.
std::string name_of_length(size_t len, size_t max_label, uint32_t seed) {
  std::mt19937 rng(seed);
  static const char kChars[] = "aZbYcXdW09-_\x80\xC1\xFFQz";
  std::string dotted;
  size_t left = len - 1;  // octets before the root
  while (left > 0) {
    size_t label = std::min(max_label, left - 1);
    // Never leave a single octet: a label needs two (its length and one letter).
    if (left - 1 - label == 1) label = label > 1 ? label - 1 : label + 1;
    if (!dotted.empty()) dotted += '.';
    for (size_t i = 0; i < label; ++i) dotted += kChars[rng() % (sizeof(kChars) - 1)];
    left -= label + 1;
  }
  return dotted;
}

TEST(QueryParserFastPath, NamesOfEveryLengthAgree) {
  for (size_t len = 1; len <= kMaxNameLen; ++len) {
    if (len == 2) continue;  // no wire name has 2 octets
    for (size_t max_label : {1, 3, 7, 15, 16, 63}) {
      const std::string dotted = name_of_length(len, max_label, static_cast<uint32_t>(len));
      Packet p;
      p.header(0x4242, kFlagRD, 1, 0, 0, 0).question(dotted, kTypeA);
      ASSERT_EQ(p.size(), kHeaderSize + len + 4) << dotted;
      SCOPED_TRACE(len);
      expect_same_as_strict(p.bytes());
      // Both routes share the name pass: check it against a byte-at-a-time reference too.
      ParsedQuery q;
      ASSERT_EQ(parse(p, &q), ParseStatus::kOk);
      ASSERT_EQ(q.qname_len, len);
      for (size_t i = 0; i < len; ++i) {
        ASSERT_EQ(q.qname_lower[i], ascii_lower(p.bytes()[kHeaderSize + i])) << i;
      }
      Packet e;
      e.header(0x4242, kFlagRD, 1, 0, 0, 1).question(dotted, kTypeAAAA).opt(4096, {});
      expect_same_as_strict(e.bytes());
    }
  }
}

TEST(QueryParserFastPath, LoneEcsOptionOfEveryPrefixAgrees) {
  std::mt19937 rng(7);
  for (uint16_t family : {1, 2}) {
    const unsigned max = family == 1 ? 32 : 128;
    for (unsigned source = 0; source <= max; ++source) {
      Bytes addr((source + 7) / 8);
      for (uint8_t& b : addr) b = static_cast<uint8_t>(rng());
      if (source % 8 != 0) addr.back() &= static_cast<uint8_t>(0xFF << (8 - source % 8));
      SCOPED_TRACE(source);
      const Packet good = edns_query(ecs(family, static_cast<uint8_t>(source), 0, addr));
      expect_same_as_strict(good.bytes());
      ParsedQuery q;
      ASSERT_EQ(parse(good, &q), ParseStatus::kOk);
      EXPECT_TRUE(q.ecs.present);
      if (!addr.empty()) {
        EXPECT_EQ(0, std::memcmp(q.ecs.address, addr.data(), addr.size()));
      }
      for (size_t i = addr.size(); i < sizeof(q.ecs.address); ++i) EXPECT_EQ(q.ecs.address[i], 0);
      // A bit set past the prefix, a wrong address length, a scope: FORMERR or accepted, but
      // always as the strict walk says.
      if (source % 8 != 0) {
        Bytes bad = addr;
        bad.back() |= static_cast<uint8_t>(0x80 >> (source % 8));
        expect_same_as_strict(
            edns_query(ecs(family, static_cast<uint8_t>(source), 0, bad)).bytes());
      }
      Bytes longer = addr;
      longer.push_back(0);
      expect_same_as_strict(
          edns_query(ecs(family, static_cast<uint8_t>(source), 0, longer)).bytes());
      if (!addr.empty()) {
        Bytes shorter(addr.begin(), addr.end() - 1);
        expect_same_as_strict(
            edns_query(ecs(family, static_cast<uint8_t>(source), 0, shorter)).bytes());
      }
      expect_same_as_strict(
          edns_query(ecs(family, static_cast<uint8_t>(source), 24, addr)).bytes());
    }
    // Prefixes past the family's maximum.
    expect_same_as_strict(
        edns_query(ecs(family, static_cast<uint8_t>(max + 1), 0, Bytes((max + 8) / 8, 0))).bytes());
  }
  for (uint16_t family : {0, 3, 0x101}) {
    expect_same_as_strict(edns_query(ecs(family, 24, 0, {10, 0, 0})).bytes());
  }
  // The prefixes the fast parse recognises from FAMILY and SOURCE alone (/24, /48, /56) under a
  // family that only differs from 1 or 2 in its upper octet, or is the other one.
  for (uint16_t family : {1, 2, 0x102, 0x201, 0x202}) {
    for (uint8_t source : {24, 48, 56}) {
      SCOPED_TRACE(family * 1000 + source);
      expect_same_as_strict(edns_query(ecs(family, source, 0, Bytes(source / 8, 0x21))).bytes());
    }
  }
  // ECS with a cookie after or before it leaves the one-option route.
  const Bytes cookie = option(kOptCookie, Bytes(8, 0x5A));
  expect_same_as_strict(edns_query(concat({ecs(1, 24, 0, {10, 1, 2}), cookie})).bytes());
  expect_same_as_strict(edns_query(concat({cookie, ecs(1, 24, 0, {10, 1, 2})})).bytes());
}

// names_equal (dataplane/dns/name.h) compares 16 or 8 octets per step with an overlapping last
// step: every length, a difference at every position, and no read outside either range (the
// names sit at the end of exactly sized buffers, so ASan sees an over-read).
TEST(NameCompare, EveryLengthAndEveryDifferingOctet) {
  std::mt19937 rng(3);
  for (size_t len = 0; len <= kMaxNameLen; ++len) {
    Bytes a(len), b(len);
    for (uint8_t& x : a) x = static_cast<uint8_t>(rng());
    b = a;
    ASSERT_TRUE(names_equal(a.data(), b.data(), len)) << len;
    for (size_t i = 0; i < len; ++i) {
      b[i] ^= static_cast<uint8_t>(1 + rng() % 255);
      ASSERT_FALSE(names_equal(a.data(), b.data(), len)) << len << " " << i;
      b[i] = a[i];
    }
  }
}

}  // namespace fast_path

}  // namespace
}  // namespace gtm::dns
