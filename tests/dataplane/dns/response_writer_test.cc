// ResponseWriter tests. Every produced message is also decoded by ldns, an independent parser, so
// the compression pointers and RDLENGTHs are proven valid, not just self-consistent.
#include "dataplane/dns/response_writer.h"

#include <gtest/gtest.h>
#include <ldns/ldns.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/dns/query_parser.h"

namespace gtm::dns {
namespace {

using Bytes = std::vector<uint8_t>;

// Canonical wire form of a dotted name ("" or "." is the root).
Bytes wire(const std::string& dotted) {
  Bytes out;
  size_t start = dotted == "." ? 1 : 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    out.push_back(static_cast<uint8_t>(dot - start));
    out.insert(out.end(), dotted.begin() + start, dotted.begin() + dot);
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

Bytes make_query(const std::string& qname, uint16_t qtype, uint16_t id = 0x5151,
                 uint16_t flags = kFlagRD) {
  Bytes q = {static_cast<uint8_t>(id >> 8),
             static_cast<uint8_t>(id),
             static_cast<uint8_t>(flags >> 8),
             static_cast<uint8_t>(flags),
             0,
             1,
             0,
             0,
             0,
             0,
             0,
             0};
  const Bytes n = wire(qname);
  q.insert(q.end(), n.begin(), n.end());
  q.push_back(static_cast<uint8_t>(qtype >> 8));
  q.push_back(static_cast<uint8_t>(qtype));
  q.push_back(0);
  q.push_back(1);
  return q;
}

ParsedQuery parsed(const Bytes& query) {
  ParsedQuery q;
  const ParseStatus st = parse_query(query.data(), query.size(), &q);
  EXPECT_TRUE(st == ParseStatus::kOk || st == ParseStatus::kNotImp) << static_cast<int>(st);
  return q;
}

// Owns an ldns packet decoded from our output.
class Decoded {
 public:
  Decoded(const uint8_t* data, size_t len) { status_ = ldns_wire2pkt(&pkt_, data, len); }
  ~Decoded() {
    if (pkt_ != nullptr) ldns_pkt_free(pkt_);
  }
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;

  bool ok() const { return status_ == LDNS_STATUS_OK && pkt_ != nullptr; }
  ldns_pkt* pkt() const { return pkt_; }
  ldns_rr* rr(ldns_pkt_section s, size_t i) const {
    ldns_rr_list* list = nullptr;
    switch (s) {
      case LDNS_SECTION_ANSWER:
        list = ldns_pkt_answer(pkt_);
        break;
      case LDNS_SECTION_AUTHORITY:
        list = ldns_pkt_authority(pkt_);
        break;
      default:
        list = ldns_pkt_additional(pkt_);
        break;
    }
    return ldns_rr_list_rr(list, i);
  }

 private:
  ldns_pkt* pkt_ = nullptr;
  ldns_status status_ = LDNS_STATUS_ERR;
};

std::string str(const ldns_rdf* rdf) {
  char* s = ldns_rdf2str(rdf);
  std::string out = s != nullptr ? s : "<null>";
  free(s);
  return out;
}

std::string owner(const Decoded& d, ldns_pkt_section s, size_t i) {
  return str(ldns_rr_owner(d.rr(s, i)));
}

// Our own strict parser as a second check: it rejects forward pointers, overruns and trailing
// bytes. It only accepts queries, so QR is cleared on a copy first.
bool reparses_strictly(const uint8_t* data, size_t len) {
  Bytes copy(data, data + len);
  copy[2] &= 0x7F;
  ParsedQuery q;
  return parse_query(copy.data(), copy.size(), &q) == ParseStatus::kOk;
}

// prefix + i + suffix, built without operator+ chains (GCC 12 -O3 reports a bogus -Wrestrict).
std::string numbered(const std::string& prefix, int i, const std::string& suffix) {
  std::string s = prefix;
  s.append(std::to_string(i));
  s.append(suffix);
  return s;
}

const uint8_t kAddr1[] = {192, 0, 2, 1};
const uint8_t kAddr2[] = {192, 0, 2, 2};

class ResponseWriterTest : public ::testing::Test {
 protected:
  void start(const std::string& qname = "www.Example.com", uint16_t qtype = kTypeA,
             size_t limit = 512) {
    query_ = make_query(qname, qtype);
    q_ = parsed(query_);
    buf_.assign(65536, 0xEE);
    ASSERT_TRUE(w_.begin(buf_.data(), limit, query_.data(), q_, true));
  }
  bool add(Section s, const std::string& name, uint16_t type, const Bytes& rdata,
           uint16_t n1 = 0xFFFF, uint16_t n2 = 0xFFFF) {
    const Bytes o = wire(name);
    return w_.add_rr(s, o.data(), o.size(), type, kClassIN, 300, rdata.data(), rdata.size(), n1,
                     n2);
  }
  Bytes out() const { return Bytes(buf_.begin(), buf_.begin() + w_.size()); }

  Bytes query_;
  ParsedQuery q_;
  Bytes buf_;
  ResponseWriter w_;
};

// --- begin -----------------------------------------------------------------------------------

TEST_F(ResponseWriterTest, BeginWritesHeaderAndQuestion) {
  // Every query flag set, including ones that must not be echoed (TC, RA, AD, Z, rcode).
  query_ = make_query("WwW.Example.COM", kTypeAAAA, 0xCAFE, 0x7FFF & ~kFlagQR & ~0x7800);
  q_ = parsed(query_);
  buf_.assign(512, 0);
  ASSERT_TRUE(w_.begin(buf_.data(), buf_.size(), query_.data(), q_, true));
  EXPECT_EQ(w_.size(), query_.size());
  EXPECT_EQ(load16(buf_.data()), 0xCAFE);
  EXPECT_EQ(load16(buf_.data() + 2), kFlagQR | kFlagAA | kFlagRD | kFlagCD);
  EXPECT_EQ(load16(buf_.data() + 4), 1);
  EXPECT_EQ(load16(buf_.data() + 6), 0);
  EXPECT_EQ(load16(buf_.data() + 8), 0);
  EXPECT_EQ(load16(buf_.data() + 10), 0);
  // The question is copied byte for byte: the client's case survives.
  EXPECT_EQ(std::memcmp(buf_.data() + 12, query_.data() + 12, query_.size() - 12), 0);

  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ldns_pkt_id(d.pkt()), 0xCAFE);
  EXPECT_TRUE(ldns_pkt_qr(d.pkt()));
  EXPECT_TRUE(ldns_pkt_aa(d.pkt()));
  EXPECT_FALSE(ldns_pkt_tc(d.pkt()));
  EXPECT_FALSE(ldns_pkt_ra(d.pkt()));
  EXPECT_FALSE(ldns_pkt_ad(d.pkt()));
  EXPECT_EQ(ldns_pkt_get_rcode(d.pkt()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(d.pkt()), 0))), "WwW.Example.COM.");
}

TEST_F(ResponseWriterTest, BeginWithoutRdOrCdLeavesThemClear) {
  query_ = make_query("a.example", kTypeA, 1, 0);
  q_ = parsed(query_);
  buf_.assign(512, 0xFF);
  ASSERT_TRUE(w_.begin(buf_.data(), buf_.size(), query_.data(), q_, true));
  EXPECT_EQ(load16(buf_.data() + 2), kFlagQR | kFlagAA);
}

TEST_F(ResponseWriterTest, BeginCopiesOpcode) {
  query_ = make_query("a.example", kTypeSOA, 1, static_cast<uint16_t>(4 << 11));
  q_ = parsed(query_);
  ASSERT_EQ(q_.opcode, 4);
  buf_.assign(512, 0);
  ASSERT_TRUE(w_.begin(buf_.data(), buf_.size(), query_.data(), q_, true));
  EXPECT_EQ((load16(buf_.data() + 2) >> 11) & 0xF, 4);
}

TEST_F(ResponseWriterTest, BeginInPlaceKeepsQuestion) {
  Bytes packet = make_query("In.Place.Example", kTypeA, 0x0102, kFlagRD | kFlagAD);
  const Bytes original = packet;
  q_ = parsed(packet);
  packet.resize(512, 0);
  ASSERT_TRUE(w_.begin(packet.data(), packet.size(), packet.data(), q_, true));
  EXPECT_EQ(w_.size(), original.size());
  EXPECT_EQ(load16(packet.data()), 0x0102);
  EXPECT_EQ(load16(packet.data() + 2), kFlagQR | kFlagAA | kFlagRD);
  EXPECT_EQ(std::memcmp(packet.data() + 12, original.data() + 12, original.size() - 12), 0);
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 60, kAddr1, 4));
  Decoded d(packet.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 0), "In.Place.Example.");
}

TEST_F(ResponseWriterTest, BeginWithoutQuestion) {
  query_ = make_query("a.example", kTypeA);
  q_ = parsed(query_);
  buf_.assign(512, 0xEE);
  ASSERT_TRUE(w_.begin(buf_.data(), buf_.size(), query_.data(), q_, false));
  EXPECT_EQ(w_.size(), kHeaderSize);
  EXPECT_EQ(load16(buf_.data() + 4), 0);
  w_.set_rcode(kRcodeFormErr);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ldns_pkt_qdcount(d.pkt()), 0);
  EXPECT_EQ(ldns_pkt_get_rcode(d.pkt()), LDNS_RCODE_FORMERR);
  // With no question there is nothing to point at.
  EXPECT_FALSE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 60, kAddr1, 4));
  EXPECT_EQ(w_.size(), kHeaderSize);
}

TEST_F(ResponseWriterTest, BeginFailsWhenQuestionDoesNotFit) {
  query_ = make_query("www.example.com", kTypeA);
  q_ = parsed(query_);
  buf_.assign(512, 0);
  EXPECT_FALSE(w_.begin(buf_.data(), query_.size() - 1, query_.data(), q_, true));
  EXPECT_FALSE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 60, kAddr1, 4));
  EXPECT_FALSE(w_.begin(buf_.data(), 11, query_.data(), q_, false));
  EXPECT_TRUE(w_.begin(buf_.data(), 12, query_.data(), q_, false));
  EXPECT_TRUE(w_.begin(buf_.data(), query_.size(), query_.data(), q_, true));
  // Asking for the question when the parser found none.
  ParsedQuery no_question = q_;
  no_question.question_end = 0;
  EXPECT_FALSE(w_.begin(buf_.data(), 512, query_.data(), no_question, true));
}

// --- compression -----------------------------------------------------------------------------

TEST_F(ResponseWriterTest, QnameOwnerIsPointerToQuestion) {
  start();
  const size_t before = w_.size();
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 60, kAddr1, 4));
  EXPECT_EQ(buf_[before], 0xC0);
  EXPECT_EQ(buf_[before + 1], 0x0C);
  EXPECT_EQ(w_.size(), before + 2 + 10 + 4);
  EXPECT_EQ(w_.count(Section::kAnswer), 1);
  EXPECT_EQ(load16(buf_.data() + 6), 1);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 0), "www.Example.com.");
  EXPECT_EQ(ldns_rr_ttl(d.rr(LDNS_SECTION_ANSWER, 0)), 60u);
  EXPECT_EQ(str(ldns_rr_rdf(d.rr(LDNS_SECTION_ANSWER, 0), 0)), "192.0.2.1");
}

TEST_F(ResponseWriterTest, OwnerMatchingQuestionCaseInsensitivelyBecomesPointer) {
  start("www.Example.com");
  const size_t before = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "www.example.com", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_EQ(load16(buf_.data() + before), 0xC00C);
  EXPECT_EQ(w_.size(), before + 16);
}

TEST_F(ResponseWriterTest, SuffixesAreCompressed) {
  start("www.Example.com");
  size_t at = w_.size();
  // "mail.example.com": literal "mail" then a pointer to "Example.com" at 12 + 4.
  ASSERT_TRUE(add(Section::kAnswer, "mail.example.com", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_EQ(buf_[at], 4);
  EXPECT_EQ(load16(buf_.data() + at + 5), 0xC000 | 16);
  const size_t mail = at;
  at = w_.size();
  // "com" alone: pointer to offset 12 + 12.
  ASSERT_TRUE(add(Section::kAnswer, "COM", kTypeA, Bytes(kAddr2, kAddr2 + 4)));
  EXPECT_EQ(load16(buf_.data() + at), 0xC000 | 24);
  at = w_.size();
  // "x.mail.example.com": literal "x" then a pointer to the earlier owner.
  ASSERT_TRUE(add(Section::kAnswer, "x.mail.example.com", kTypeA, Bytes(kAddr2, kAddr2 + 4)));
  EXPECT_EQ(load16(buf_.data() + at + 2), 0xC000 | mail);
  at = w_.size();
  // An unrelated name is written in full and then becomes a compression target itself.
  ASSERT_TRUE(add(Section::kAnswer, "other.net", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_EQ(buf_[at], 5);
  EXPECT_EQ(buf_[at + 10], 0);
  const size_t other = at;
  at = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "a.b.Other.NET", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_EQ(load16(buf_.data() + at + 4), 0xC000 | other);

  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(ldns_pkt_ancount(d.pkt()), 5);
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 0), "mail.Example.com.");
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 1), "com.");
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 2), "x.mail.Example.com.");
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 3), "other.net.");
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 4), "a.b.other.net.");
  EXPECT_TRUE(reparses_strictly(buf_.data(), w_.size()));
}

TEST_F(ResponseWriterTest, RootQuestionNameOwner) {
  start(".", kTypeNS);
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeNS, kClassIN, 60, wire("ns.example").data(),
                              wire("ns.example").size(), 0));
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 0), ".");
  EXPECT_EQ(str(ldns_rr_rdf(d.rr(LDNS_SECTION_ANSWER, 0), 0)), "ns.example.");
}

TEST_F(ResponseWriterTest, CnameRdataIsCompressedAndRdlengthMatches) {
  start("www.example.com");
  const Bytes target = wire("edge.example.com");
  const size_t at = w_.size();
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeCNAME, kClassIN, 300, target.data(),
                              target.size(), 0));
  // RDATA: "edge" (5 octets) + pointer (2) instead of 18 octets.
  EXPECT_EQ(load16(buf_.data() + at + 2 + 8), 7);
  EXPECT_EQ(load16(buf_.data() + at + 12 + 5), 0xC000 | 16);
  // The CNAME target now serves as a compression target for the next owner.
  const size_t edge = at + 12;
  const size_t next = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "edge.example.com", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_EQ(load16(buf_.data() + next), 0xC000 | edge);

  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(str(ldns_rr_rdf(d.rr(LDNS_SECTION_ANSWER, 0), 0)), "edge.example.com.");
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 1), "edge.example.com.");
  EXPECT_TRUE(reparses_strictly(buf_.data(), w_.size()));
}

TEST_F(ResponseWriterTest, MxAndSoaRdataNamesCompressed) {
  start("example.com", kTypeSOA);
  Bytes mx = {0, 10};
  const Bytes exchange = wire("mx1.example.com");
  mx.insert(mx.end(), exchange.begin(), exchange.end());
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeMX, kClassIN, 300, mx.data(), mx.size(), 2));

  Bytes soa = wire("ns1.example.com");
  const uint16_t rname_off = static_cast<uint16_t>(soa.size());
  const Bytes rname = wire("hostmaster.example.com");
  soa.insert(soa.end(), rname.begin(), rname.end());
  const uint32_t fields[5] = {2024010101, 3600, 600, 86400, 60};
  for (uint32_t f : fields) {
    uint8_t b[4];
    store32(b, f);
    soa.insert(soa.end(), b, b + 4);
  }
  const size_t soa_at = w_.size();
  // Name offsets given in reverse order must work too.
  ASSERT_TRUE(w_.add_rr_qname(Section::kAuthority, kTypeSOA, kClassIN, 60, soa.data(), soa.size(),
                              rname_off, 0));
  // 4+2 ("ns1" + ptr) + 11+2 ("hostmaster" + ptr) + 20.
  EXPECT_EQ(load16(buf_.data() + soa_at + 10), 6 + 13 + 20);

  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  ldns_rr* mx_rr = d.rr(LDNS_SECTION_ANSWER, 0);
  EXPECT_EQ(str(ldns_rr_rdf(mx_rr, 0)), "10");
  EXPECT_EQ(str(ldns_rr_rdf(mx_rr, 1)), "mx1.example.com.");
  ldns_rr* soa_rr = d.rr(LDNS_SECTION_AUTHORITY, 0);
  ASSERT_NE(soa_rr, nullptr);
  EXPECT_EQ(ldns_rr_get_type(soa_rr), LDNS_RR_TYPE_SOA);
  EXPECT_EQ(str(ldns_rr_rdf(soa_rr, 0)), "ns1.example.com.");
  EXPECT_EQ(str(ldns_rr_rdf(soa_rr, 1)), "hostmaster.example.com.");
  EXPECT_EQ(str(ldns_rr_rdf(soa_rr, 2)), "2024010101");
  EXPECT_EQ(str(ldns_rr_rdf(soa_rr, 6)), "60");
  EXPECT_EQ(w_.count(Section::kAnswer), 1);
  EXPECT_EQ(w_.count(Section::kAuthority), 1);
  EXPECT_EQ(load16(buf_.data() + 8), 1);
  EXPECT_TRUE(reparses_strictly(buf_.data(), w_.size()));
}

TEST_F(ResponseWriterTest, RdataWithoutNamesCopiedVerbatim) {
  start("example.com", kTypeTXT);
  const Bytes txt = {5, 'h', 'e', 'l', 'l', 'o', 3, 'c', 'o', 'm'};  // looks like a name: not one
  const size_t at = w_.size();
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeTXT, kClassIN, 1, txt.data(), txt.size()));
  EXPECT_EQ(load16(buf_.data() + at + 10), txt.size());
  EXPECT_EQ(std::memcmp(buf_.data() + at + 12, txt.data(), txt.size()), 0);
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 1, nullptr, 0));
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ldns_pkt_ancount(d.pkt()), 2);
}

TEST_F(ResponseWriterTest, ManyNamesOverflowTheDictionaryGracefully) {
  start("q.example.org", kTypeA, 65535);
  for (int i = 0; i < 200; ++i) {
    const std::string name =
        "host" + std::to_string(i) + ".zone" + std::to_string(i % 7) + ".example.org";
    ASSERT_TRUE(add(Section::kAnswer, name, kTypeA, Bytes(kAddr1, kAddr1 + 4))) << i;
  }
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(ldns_pkt_ancount(d.pkt()), 200);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, i),
              "host" + std::to_string(i) + ".zone" + std::to_string(i % 7) + ".example.org.");
  }
  EXPECT_TRUE(reparses_strictly(buf_.data(), w_.size()));
}

// Names written past offset 0x3FFF cannot be pointer targets; the result must still be valid.
TEST_F(ResponseWriterTest, NamesBeyondPointerRangeAreNotTargets) {
  start("big.example", kTypeTXT, 65535);
  const Bytes filler(1000, 'x');
  Bytes txt;
  for (int i = 0; i < 4; ++i) {
    txt.push_back(250);
    txt.insert(txt.end(), filler.begin(), filler.begin() + 250);
  }
  while (w_.size() < 0x4100) {
    ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeTXT, kClassIN, 1, txt.data(), txt.size()));
  }
  const size_t far = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "far.away.test", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  const size_t again = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "far.away.test", kTypeA, Bytes(kAddr2, kAddr2 + 4)));
  // The second copy cannot point at the first (offset > 0x3FFF): written in full again.
  EXPECT_EQ(again - far, w_.size() - again);
  EXPECT_EQ(buf_[again], 3);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  const size_t n = ldns_pkt_ancount(d.pkt());
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, n - 1), "far.away.test.");
  EXPECT_TRUE(reparses_strictly(buf_.data(), w_.size()));
}

// --- limits and rollback ---------------------------------------------------------------------

TEST_F(ResponseWriterTest, RRThatDoesNotFitLeavesStateUntouched) {
  start("www.example.com", kTypeA, 100);
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 60, kAddr1, 4));
  const Bytes before = out();
  const Bytes target = wire("a-rather-long-target-name.somewhere-else.example.net");
  // The owner fits but the RDATA does not: the half-written owner must be undone.
  EXPECT_FALSE(add(Section::kAnswer, "fresh.name.test", kTypeCNAME, target, 0));
  EXPECT_EQ(out(), before);
  EXPECT_EQ(w_.count(Section::kAnswer), 1);
  EXPECT_EQ(load16(buf_.data() + 6), 1);
  // The dictionary must have forgotten "fresh.name.test": a later RR writes it in full.
  const size_t at = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "fresh.name.test", kTypeA, Bytes(kAddr2, kAddr2 + 4)));
  EXPECT_EQ(buf_[at], 5);
  EXPECT_EQ(std::memcmp(buf_.data() + at, wire("fresh.name.test").data(), 17), 0);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 1), "fresh.name.test.");
}

// Failed adds must not consume dictionary slots: after many failures, new names still compress.
TEST_F(ResponseWriterTest, FailedAddsDoNotFillTheDictionary) {
  start("q.example", kTypeA, 120);
  const Bytes big(100, 0xAB);
  for (int i = 0; i < 100; ++i) {
    // Owner fits (written and remembered) but the RDATA does not.
    ASSERT_FALSE(add(Section::kAnswer, numbered("n", i, ".fail.test"), kTypeTXT, big));
  }
  ASSERT_TRUE(add(Section::kAnswer, "zone.ok", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  const size_t zone = w_.size() - (9 + 10 + 4);
  const size_t at = w_.size();
  // "ok" (zone + 5) is only reachable through a dictionary entry made after the failures; stale
  // entries from them would sit at other offsets (and could point into non-name bytes).
  ASSERT_TRUE(add(Section::kAnswer, "b.ok", kTypeA, Bytes(kAddr2, kAddr2 + 4)));
  EXPECT_EQ(load16(buf_.data() + at + 2), 0xC000 | (zone + 5));
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 1), "b.ok.");
}

TEST_F(ResponseWriterTest, AddOptThatDoesNotFitFails) {
  start("www.example.com", kTypeA, 33 + 10);  // header+question = 33; OPT needs 11
  const size_t before = w_.size();
  EXPECT_FALSE(w_.add_opt(1232, 0, false, nullptr, 0));
  EXPECT_EQ(w_.size(), before);
  EXPECT_EQ(w_.count(Section::kAdditional), 0);
  EXPECT_EQ(load16(buf_.data() + 10), 0);
}

// For every possible limit, writing the same RR sequence until the first failure must produce a
// prefix of the unlimited output, never exceed the limit, and always decode.
TEST_F(ResponseWriterTest, EveryLimitYieldsAValidPrefix) {
  EcsOption ecs;
  ecs.present = true;
  ecs.family = 1;
  ecs.source_prefix = 24;
  ecs.address[0] = 203;
  ecs.address[1] = 0;
  ecs.address[2] = 113;
  const Bytes cname = wire("pool.gslb.example.com");
  auto write_all = [&](size_t limit, int* added) {
    start("www.example.com", kTypeA, limit);
    *added = 0;
    if (!w_.add_rr_qname(Section::kAnswer, kTypeCNAME, kClassIN, 30, cname.data(), cname.size(),
                         0)) {
      return;
    }
    ++*added;
    for (int i = 0; i < 4; ++i) {
      const uint8_t a[4] = {198, 51, 100, static_cast<uint8_t>(i)};
      if (!add(Section::kAnswer, "pool.gslb.example.com", kTypeA, Bytes(a, a + 4))) return;
      ++*added;
    }
    if (!add(Section::kAuthority, "gslb.example.com", kTypeNS, wire("ns1.gslb.example.com"), 0)) {
      return;
    }
    ++*added;
    if (!w_.add_opt(1232, 0, true, &ecs, 24)) return;
    ++*added;
  };
  int full_added = 0;
  write_all(65535, &full_added);
  ASSERT_EQ(full_added, 7);
  const Bytes full = out();
  for (size_t limit = query_.size(); limit <= full.size(); ++limit) {
    int added = 0;
    write_all(limit, &added);
    ASSERT_LE(w_.size(), limit);
    // The header counts differ from the full output; the RR bytes are a prefix.
    ASSERT_EQ(std::memcmp(buf_.data() + 12, full.data() + 12, w_.size() - 12), 0) << limit;
    ASSERT_EQ(
        w_.count(Section::kAnswer) + w_.count(Section::kAuthority) + w_.count(Section::kAdditional),
        added);
    Decoded d(buf_.data(), w_.size());
    ASSERT_TRUE(d.ok()) << limit;
    ASSERT_EQ(ldns_pkt_ancount(d.pkt()), w_.count(Section::kAnswer));
    ASSERT_EQ(ldns_pkt_nscount(d.pkt()), w_.count(Section::kAuthority));
    if (added < 7) {
      // One more octet of budget would not always help, but the full size always does.
      ASSERT_LT(w_.size(), full.size());
    }
  }
}

TEST_F(ResponseWriterTest, InvalidNamesAreRejectedCleanly) {
  start();
  const size_t before = w_.size();
  const Bytes no_root = {3, 'a', 'b', 'c'};
  EXPECT_FALSE(
      w_.add_rr(Section::kAnswer, no_root.data(), no_root.size(), kTypeA, 1, 1, kAddr1, 4));
  Bytes long_label = {64};
  long_label.insert(long_label.end(), 64, 'a');
  long_label.push_back(0);
  EXPECT_FALSE(
      w_.add_rr(Section::kAnswer, long_label.data(), long_label.size(), kTypeA, 1, 1, kAddr1, 4));
  // Name offset outside the RDATA, and an RDATA name without its root label.
  const Bytes o = wire("x.example");
  const Bytes target = wire("t.example");
  EXPECT_FALSE(w_.add_rr(Section::kAnswer, o.data(), o.size(), kTypeCNAME, 1, 1, target.data(),
                         target.size(), static_cast<uint16_t>(target.size())));
  EXPECT_FALSE(w_.add_rr(Section::kAnswer, o.data(), o.size(), kTypeCNAME, 1, 1, target.data(),
                         target.size() - 1, 0));
  EXPECT_EQ(w_.size(), before);
  EXPECT_EQ(w_.count(Section::kAnswer), 0);
  EXPECT_EQ(load16(buf_.data() + 6), 0);
}

// --- OPT ---------------------------------------------------------------------------------------

TEST_F(ResponseWriterTest, OptWithoutEcs) {
  start();
  const size_t at = w_.size();
  ASSERT_TRUE(w_.add_opt(1232, kRcodeNoError, false, nullptr, 0));
  EXPECT_EQ(w_.size(), at + 11);
  EXPECT_EQ(buf_[at], 0);
  EXPECT_EQ(load16(buf_.data() + at + 1), kTypeOPT);
  EXPECT_EQ(load16(buf_.data() + at + 3), 1232);
  EXPECT_EQ(load32(buf_.data() + at + 5), 0u);
  EXPECT_EQ(load16(buf_.data() + at + 9), 0);
  EXPECT_EQ(w_.count(Section::kAdditional), 1);
  EXPECT_EQ(load16(buf_.data() + 10), 1);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ldns_pkt_edns_udp_size(d.pkt()), 1232);
  EXPECT_FALSE(ldns_pkt_edns_do(d.pkt()));
  EXPECT_EQ(ldns_pkt_edns_version(d.pkt()), 0);
}

TEST_F(ResponseWriterTest, OptCarriesExtendedRcodeAndDo) {
  start();
  w_.set_rcode(kRcodeBadVers);
  const size_t at = w_.size();
  ASSERT_TRUE(w_.add_opt(4096, kRcodeBadVers, true, nullptr, 0));
  EXPECT_EQ(buf_[at + 5], 1);  // 16 >> 4
  EXPECT_EQ(buf_[at + 6], 0);  // version
  EXPECT_EQ(load16(buf_.data() + at + 7), kEdnsFlagDO);
  EXPECT_EQ(buf_[3] & 0x0F, 0);  // BADVERS low bits are 0
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ldns_pkt_edns_extended_rcode(d.pkt()), 1);
  EXPECT_TRUE(ldns_pkt_edns_do(d.pkt()));
  EXPECT_EQ(ldns_pkt_edns_udp_size(d.pkt()), 4096);
}

TEST_F(ResponseWriterTest, OptWithEcsIpv4) {
  start();
  EcsOption ecs;
  ecs.present = true;
  ecs.family = 1;
  ecs.source_prefix = 22;
  ecs.address[0] = 10;
  ecs.address[1] = 20;
  ecs.address[2] = 28;  // /22: the low two bits of the third octet are zero
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 60, kAddr1, 4));
  const size_t at = w_.size();
  ASSERT_TRUE(w_.add_opt(1232, 0, false, &ecs, 16));
  const uint8_t expected_rdata[] = {0, 8, 0, 7, 0, 1, 22, 16, 10, 20, 28};
  EXPECT_EQ(load16(buf_.data() + at + 9), sizeof(expected_rdata));
  EXPECT_EQ(std::memcmp(buf_.data() + at + 11, expected_rdata, sizeof(expected_rdata)), 0);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  ldns_rdf* data = ldns_pkt_edns_data(d.pkt());
  ASSERT_NE(data, nullptr);
  ASSERT_EQ(ldns_rdf_size(data), sizeof(expected_rdata));
  EXPECT_EQ(std::memcmp(ldns_rdf_data(data), expected_rdata, sizeof(expected_rdata)), 0);
  // Our own parser accepts it back (scope is ignored in queries) with the same subnet.
  Bytes copy = out();
  copy[2] &= 0x7F;
  ParsedQuery back;
  ASSERT_EQ(parse_query(copy.data(), copy.size(), &back), ParseStatus::kOk);
  EXPECT_TRUE(back.ecs.present);
  EXPECT_EQ(back.ecs.source_prefix, 22);
  EXPECT_EQ(back.ecs.scope_prefix, 16);
  EXPECT_EQ(std::memcmp(back.ecs.address, ecs.address, 16), 0);
}

TEST_F(ResponseWriterTest, OptWithEcsIpv6AndZeroPrefix) {
  start();
  EcsOption ecs;
  ecs.present = true;
  ecs.family = 2;
  ecs.source_prefix = 56;
  const uint8_t addr[7] = {0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc};
  std::memcpy(ecs.address, addr, 7);
  size_t at = w_.size();
  ASSERT_TRUE(w_.add_opt(1232, 0, false, &ecs, 48));
  EXPECT_EQ(load16(buf_.data() + at + 9), 4 + 4 + 7);
  EXPECT_EQ(load16(buf_.data() + at + 13), 4 + 7);
  EXPECT_EQ(load16(buf_.data() + at + 15), 2);
  EXPECT_EQ(buf_[at + 17], 56);
  EXPECT_EQ(buf_[at + 18], 48);
  EXPECT_EQ(std::memcmp(buf_.data() + at + 19, addr, 7), 0);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());

  start();
  EcsOption zero;
  zero.present = true;
  zero.family = 1;
  at = w_.size();
  ASSERT_TRUE(w_.add_opt(1232, 0, false, &zero, 0));
  EXPECT_EQ(load16(buf_.data() + at + 9), 8);
  EXPECT_EQ(load16(buf_.data() + at + 13), 4);
}

// --- header edits and reset ------------------------------------------------------------------

TEST_F(ResponseWriterTest, RcodeAndFlagEdits) {
  start();
  w_.set_rcode(kRcodeNXDomain);
  EXPECT_EQ(load16(buf_.data() + 2) & 0xF, kRcodeNXDomain);
  w_.set_rcode(kRcodeRefused);
  EXPECT_EQ(load16(buf_.data() + 2) & 0xF, kRcodeRefused);
  w_.set_flag(kFlagTC);
  w_.clear_flag(kFlagAA);
  const uint16_t flags = load16(buf_.data() + 2);
  EXPECT_EQ(flags, kFlagQR | kFlagTC | kFlagRD | kRcodeRefused);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(ldns_pkt_tc(d.pkt()));
  EXPECT_FALSE(ldns_pkt_aa(d.pkt()));
  EXPECT_EQ(ldns_pkt_get_rcode(d.pkt()), LDNS_RCODE_REFUSED);
}

TEST_F(ResponseWriterTest, ResetToQuestionDropsRRsAndTheirDictionaryEntries) {
  start("www.example.com");
  const size_t question_end = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "zone.test", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  ASSERT_TRUE(add(Section::kAuthority, "ns.zone.test", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  ASSERT_TRUE(w_.add_opt(1232, 0, false, nullptr, 0));
  w_.reset_to_question();
  EXPECT_EQ(w_.size(), question_end);
  for (Section s : {Section::kAnswer, Section::kAuthority, Section::kAdditional}) {
    EXPECT_EQ(w_.count(s), 0);
  }
  EXPECT_EQ(load16(buf_.data() + 6), 0);
  EXPECT_EQ(load16(buf_.data() + 8), 0);
  EXPECT_EQ(load16(buf_.data() + 10), 0);
  // "zone.test" is gone, so "a.zone.test" is written in full; question suffixes still compress.
  const size_t at = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "a.zone.test", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_EQ(w_.size() - at, 13 + 10 + 4);
  const size_t at2 = w_.size();
  ASSERT_TRUE(add(Section::kAnswer, "example.com", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_EQ(load16(buf_.data() + at2), 0xC000 | 16);
  w_.set_flag(kFlagTC);
  ASSERT_TRUE(w_.add_opt(1232, 0, false, nullptr, 0));
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ldns_pkt_ancount(d.pkt()), 2);
  EXPECT_EQ(owner(d, LDNS_SECTION_ANSWER, 0), "a.zone.test.");
  EXPECT_TRUE(reparses_strictly(buf_.data(), w_.size()));
}

// reset_to_question must also free the dictionary slots of the dropped RRs.
TEST_F(ResponseWriterTest, ResetFreesDictionarySlots) {
  start("q.example", kTypeA, 65535);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(add(Section::kAnswer, numbered("n", i, numbered(".t", i, "")), kTypeA,
                    Bytes(kAddr1, kAddr1 + 4)));
  }
  w_.reset_to_question();
  ASSERT_TRUE(add(Section::kAnswer, "zone.ok", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  const size_t zone = w_.size() - (9 + 10 + 4);
  const size_t at = w_.size();
  // "ok" (zone + 5) is only reachable through a dictionary entry made after the failures; stale
  // entries from them would sit at other offsets (and could point into non-name bytes).
  ASSERT_TRUE(add(Section::kAnswer, "b.ok", kTypeA, Bytes(kAddr2, kAddr2 + 4)));
  EXPECT_EQ(load16(buf_.data() + at + 2), 0xC000 | (zone + 5));
}

TEST_F(ResponseWriterTest, SectionCountsTrackEachSection) {
  start();
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 1, kAddr1, 4));
  ASSERT_TRUE(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 1, kAddr2, 4));
  ASSERT_TRUE(add(Section::kAuthority, "example.com", kTypeNS, wire("ns.example.com"), 0));
  ASSERT_TRUE(add(Section::kAdditional, "ns.example.com", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  ASSERT_TRUE(w_.add_opt(1232, 0, false, nullptr, 0));
  EXPECT_EQ(load16(buf_.data() + 6), 2);
  EXPECT_EQ(load16(buf_.data() + 8), 1);
  EXPECT_EQ(load16(buf_.data() + 10), 2);
  Decoded d(buf_.data(), w_.size());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ldns_pkt_ancount(d.pkt()), 2);
  EXPECT_EQ(ldns_pkt_nscount(d.pkt()), 1);
  EXPECT_EQ(str(ldns_rr_rdf(d.rr(LDNS_SECTION_AUTHORITY, 0), 0)), "ns.Example.com.");
  EXPECT_EQ(owner(d, LDNS_SECTION_ADDITIONAL, 0), "ns.Example.com.");
  EXPECT_TRUE(reparses_strictly(buf_.data(), w_.size()));
}

#ifndef NDEBUG
TEST_F(ResponseWriterTest, OutOfOrderSectionsAssertInDebug) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  start();
  ASSERT_TRUE(add(Section::kAdditional, "ns.example.com", kTypeA, Bytes(kAddr1, kAddr1 + 4)));
  EXPECT_DEATH(w_.add_rr_qname(Section::kAnswer, kTypeA, kClassIN, 1, kAddr1, 4), "");
}
#endif

}  // namespace
}  // namespace gtm::dns
