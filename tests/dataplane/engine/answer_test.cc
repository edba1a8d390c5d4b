// Answer engine tests: real snapshots (YAML -> model -> image -> validated view), real query
// packets built by ldns, responses parsed back by ldns.
#include "dataplane/engine/answer.h"

#include <gtest/gtest.h>
#include <ldns/ldns.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "dataplane/dns/wire.h"

namespace gtm::engine {
namespace {

using control::SnapshotModel;

// ---------------------------------------------------------------------------------------------
// Configuration used by most tests. Negative TTL = min(SOA TTL 3600, MINIMUM 60) = 60.

const char* kZoneYaml = R"(
zones:
  - name: example.com.
    default_ttl: 300
    soa:
      mname: ns1.example.com.
      rname: hostmaster.example.com.
      serial: 2024010101
      refresh: 3600
      retry: 600
      expire: 86400
      minimum: 60
      ttl: 3600
    ns: [ns1.example.com., ns2.example.com., ns.other.net.]
    ns_ttl: 7200
    records:
      - {name: ns1, type: A, ttl: 3600, data: 192.0.2.53}
      - {name: ns1, type: AAAA, ttl: 3600, data: "2001:db8::53"}
      - {name: ns2, type: A, ttl: 3600, data: 192.0.2.54}
      - {name: www, type: A, data: 192.0.2.1}
      - {name: www, type: A, data: 192.0.2.2}
      - {name: www, type: AAAA, data: "2001:db8::1"}
      - {name: "@", type: MX, data: "10 mail"}
      - {name: mail, type: A, data: 192.0.2.25}
      - {name: "@", type: TXT, data: '"hello world"'}
      - {name: _sip._udp, type: SRV, data: "10 60 5060 sip"}
      - {name: 1.2.0.192.rev, type: PTR, data: www}
      - {name: "@", type: CAA, data: '0 issue "letsencrypt.org"'}
      - {name: "*.apps", type: A, ttl: 120, data: 192.0.2.99}
      - {name: docs, type: CNAME, data: www}
      - {name: chain1, type: CNAME, data: chain2}
      - {name: chain2, type: CNAME, data: www}
      - {name: ext, type: CNAME, data: www.other.net.}
      - {name: dangling, type: CNAME, data: nothere}
      - {name: loop1, type: CNAME, data: loop2}
      - {name: loop2, type: CNAME, data: loop1}
      - {name: h1, type: CNAME, data: h2}
      - {name: h2, type: CNAME, data: h3}
      - {name: h3, type: CNAME, data: h4}
      - {name: h4, type: CNAME, data: h5}
      - {name: h5, type: CNAME, data: h6}
      - {name: h6, type: CNAME, data: h7}
      - {name: h7, type: CNAME, data: h8}
      - {name: h8, type: CNAME, data: h9}
      - {name: h9, type: CNAME, data: h10}
      - {name: h10, type: A, data: 192.0.2.10}
      - {name: a.b.deep, type: A, data: 192.0.2.7}
      - {name: big, type: TXT, data: '"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"'}
      - {name: big, type: TXT, data: '"1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"'}
      - {name: big, type: TXT, data: '"2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222"'}
      - {name: big, type: TXT, data: '"3333333333333333333333333333333333333333333333333333333333333333333333333333333333333333"'}
      - {name: big, type: TXT, data: '"4444444444444444444444444444444444444444444444444444444444444444444444444444444444444444"'}
      - {name: big, type: TXT, data: '"5555555555555555555555555555555555555555555555555555555555555555555555555555555555555555"'}
      - {name: big, type: TXT, data: '"6666666666666666666666666666666666666666666666666666666666666666666666666666666666666666"'}
      - {name: big, type: TXT, data: '"7777777777777777777777777777777777777777777777777777777777777777777777777777777777777777"'}
)";

// ---------------------------------------------------------------------------------------------
// Query construction (ldns) and response parsing (ldns).

struct QueryOpts {
  uint16_t id = 0x4242;
  bool rd = true;
  bool edns = false;
  uint16_t udp_size = 1232;
  uint8_t version = 0;
  bool do_bit = false;
  std::vector<uint8_t> options;  // raw EDNS option bytes (code, length, data)...
  ldns_pkt_opcode opcode = LDNS_PACKET_QUERY;
  ldns_rr_class qclass = LDNS_RR_CLASS_IN;
};

std::vector<uint8_t> make_query(const std::string& name, ldns_rr_type type,
                                const QueryOpts& o = {}) {
  ldns_rdf* owner = ldns_dname_new_frm_str(name.c_str());
  EXPECT_NE(owner, nullptr) << name;
  ldns_pkt* pkt = ldns_pkt_query_new(owner, type, o.qclass, o.rd ? LDNS_RD : 0);
  ldns_pkt_set_id(pkt, o.id);
  ldns_pkt_set_opcode(pkt, o.opcode);
  if (o.edns) {
    ldns_pkt_set_edns_udp_size(pkt, o.udp_size);
    ldns_pkt_set_edns_version(pkt, o.version);
    ldns_pkt_set_edns_do(pkt, o.do_bit);
    if (!o.options.empty()) {
      ldns_pkt_set_edns_data(
          pkt, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_UNKNOWN, o.options.size(), o.options.data()));
    }
  }
  uint8_t* wire = nullptr;
  size_t size = 0;
  EXPECT_EQ(ldns_pkt2wire(&wire, pkt, &size), LDNS_STATUS_OK);
  std::vector<uint8_t> out(wire, wire + size);
  free(wire);
  ldns_pkt_free(pkt);
  return out;
}

// ECS option for 198.51.100.0/24.
std::vector<uint8_t> ecs_option() {
  return {0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100};
}

std::string take_str(char* s) {
  std::string out = s != nullptr ? s : "";
  free(s);
  return out;
}

// "owner TTL TYPE rdata" for each RR of a section.
std::vector<std::string> rr_strings(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    std::string s = take_str(ldns_rdf2str(ldns_rr_owner(rr))) + " " +
                    std::to_string(ldns_rr_ttl(rr)) + " " +
                    take_str(ldns_rr_type2str(ldns_rr_get_type(rr)));
    for (size_t k = 0; k < ldns_rr_rd_count(rr); ++k) {
      s += " " + take_str(ldns_rdf2str(ldns_rr_rdf(rr, k)));
    }
    out.push_back(s);
  }
  return out;
}

// The rdata (as text) of each RR in a section.
std::vector<std::string> rdata_strings(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    std::string s;
    for (size_t k = 0; k < ldns_rr_rd_count(rr); ++k) {
      s += (k ? " " : "") + take_str(ldns_rdf2str(ldns_rr_rdf(rr, k)));
    }
    out.push_back(s);
  }
  return out;
}

struct PktFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;

Pkt parse_response(const std::vector<uint8_t>& wire) {
  ldns_pkt* p = nullptr;
  EXPECT_FALSE(wire.empty());
  if (wire.empty()) return nullptr;
  EXPECT_EQ(ldns_wire2pkt(&p, wire.data(), wire.size()), LDNS_STATUS_OK);
  return Pkt(p);
}

std::vector<std::string> answers(const Pkt& p) {
  return rr_strings(ldns_pkt_answer(p.get()));
}
std::vector<std::string> authority(const Pkt& p) {
  return rr_strings(ldns_pkt_authority(p.get()));
}
std::vector<std::string> additional(const Pkt& p) {
  return rr_strings(ldns_pkt_additional(p.get()));
}
std::vector<std::string> answer_rdata(const Pkt& p) {
  return rdata_strings(ldns_pkt_answer(p.get()));
}

const std::string kSoa =
    "example.com. 60 SOA ns1.example.com. hostmaster.example.com. 2024010101 3600 600 86400 60";

// ---------------------------------------------------------------------------------------------
// Fixture: one snapshot, one worker.

class AnswerTest : public ::testing::Test {
 protected:
  void load(const std::string& yaml, const std::function<void(SnapshotModel&)>& mutate = nullptr) {
    control::LoadedConfig cfg;
    control::ConfigError err;
    ASSERT_TRUE(control::load_config_string(yaml, "test.yaml", &cfg, &err)) << err.to_string();
    if (mutate) mutate(cfg.model);
    std::string error;
    ASSERT_TRUE(control::build_snapshot(cfg.model, &image_, &error)) << error;
    ASSERT_TRUE(view_.validate(image_.data(), image_.size(), &error)) << error;
    loaded_ = true;
  }
  void load_zone() { load(kZoneYaml); }
  void load_services(const std::string& services,
                     const std::function<void(SnapshotModel&)>& mutate = nullptr) {
    load(std::string(kZoneYaml) + services, mutate);
  }

  std::vector<uint8_t> answer_raw(const std::vector<uint8_t>& query, Transport t = Transport::kUdp,
                                  Explain* ex = nullptr, size_t cap = 65535) {
    std::vector<uint8_t> out(cap);
    const size_t n = answer_query(loaded_ ? &view_ : nullptr, query.data(), query.size(),
                                  out.data(), out.size(), ClientAddr{}, t, ws_, ex);
    out.resize(n);
    return out;
  }
  Pkt ask(const std::string& name, ldns_rr_type type, const QueryOpts& o = {},
          Transport t = Transport::kUdp, Explain* ex = nullptr) {
    return parse_response(answer_raw(make_query(name, type, o), t, ex));
  }

  std::vector<uint8_t> image_;
  snap::SnapshotView view_;
  bool loaded_ = false;
  WorkerState ws_;
};

void set_health(SnapshotModel& m, const std::string& member, snap::MemberHealth h) {
  int found = 0;
  for (auto& svc : m.services) {
    for (auto& pool : svc.pools) {
      for (auto& mem : pool.members) {
        if (mem.name == member) {
          mem.health = h;
          ++found;
        }
      }
    }
  }
  ASSERT_GT(found, 0) << member;
}

bool explain_has(const Explain& ex, const std::string& needle) {
  for (int i = 0; i < ex.count; ++i) {
    if (std::string(ex.lines[i]).find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string explain_dump(const Explain& ex) {
  std::string s;
  for (int i = 0; i < ex.count; ++i) s += std::string(ex.lines[i]) + "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Static data.

TEST_F(AnswerTest, StaticA) {
  load_zone();
  Pkt p = ask("www.example.com.", LDNS_RR_TYPE_A);
  ASSERT_TRUE(p);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(ldns_pkt_qr(p.get()));
  EXPECT_TRUE(ldns_pkt_aa(p.get()));
  EXPECT_TRUE(ldns_pkt_rd(p.get()));
  EXPECT_FALSE(ldns_pkt_ra(p.get()));
  EXPECT_FALSE(ldns_pkt_tc(p.get()));
  EXPECT_EQ(ldns_pkt_id(p.get()), 0x4242);
  EXPECT_EQ(ldns_pkt_qdcount(p.get()), 1);
  EXPECT_EQ(answers(p), (std::vector<std::string>{"www.example.com. 300 A 192.0.2.1",
                                                  "www.example.com. 300 A 192.0.2.2"}));
  EXPECT_TRUE(authority(p).empty());
  EXPECT_TRUE(additional(p).empty());
  EXPECT_EQ(ldns_pkt_edns_udp_size(p.get()), 0) << "no OPT without EDNS in the query";
}

TEST_F(AnswerTest, RdNotSetIsCopied) {
  load_zone();
  QueryOpts o;
  o.rd = false;
  Pkt p = ask("www.example.com.", LDNS_RR_TYPE_A, o);
  ASSERT_TRUE(p);
  EXPECT_FALSE(ldns_pkt_rd(p.get()));
  EXPECT_EQ(answers(p).size(), 2u);
}

TEST_F(AnswerTest, StaticTypes) {
  load_zone();
  Pkt aaaa = ask("www.example.com.", LDNS_RR_TYPE_AAAA);
  EXPECT_EQ(answers(aaaa), std::vector<std::string>{"www.example.com. 300 AAAA 2001:db8::1"});
  Pkt mx = ask("example.com.", LDNS_RR_TYPE_MX);
  EXPECT_EQ(answers(mx), std::vector<std::string>{"example.com. 300 MX 10 mail.example.com."});
  Pkt txt = ask("example.com.", LDNS_RR_TYPE_TXT);
  EXPECT_EQ(answers(txt), std::vector<std::string>{"example.com. 300 TXT \"hello world\""});
  Pkt srv = ask("_sip._udp.example.com.", LDNS_RR_TYPE_SRV);
  EXPECT_EQ(answers(srv),
            std::vector<std::string>{"_sip._udp.example.com. 300 SRV 10 60 5060 sip.example.com."});
  Pkt ptr = ask("1.2.0.192.rev.example.com.", LDNS_RR_TYPE_PTR);
  EXPECT_EQ(answers(ptr),
            std::vector<std::string>{"1.2.0.192.rev.example.com. 300 PTR www.example.com."});
  Pkt caa = ask("example.com.", LDNS_RR_TYPE_CAA);
  ASSERT_EQ(answers(caa).size(), 1u);
  EXPECT_NE(answers(caa)[0].find("issue"), std::string::npos) << answers(caa)[0];
  EXPECT_NE(answers(caa)[0].find("letsencrypt.org"), std::string::npos) << answers(caa)[0];
  Pkt soa = ask("example.com.", LDNS_RR_TYPE_SOA);
  EXPECT_EQ(answers(soa), std::vector<std::string>{"example.com. 3600 SOA ns1.example.com. "
                                                   "hostmaster.example.com. 2024010101 3600 600 "
                                                   "86400 60"});
}

TEST_F(AnswerTest, NsAtApexWithGlue) {
  load_zone();
  Pkt p = ask("example.com.", LDNS_RR_TYPE_NS);
  ASSERT_TRUE(p);
  std::vector<std::string> ans = answers(p);
  std::sort(ans.begin(), ans.end());
  EXPECT_EQ(ans, (std::vector<std::string>{"example.com. 7200 NS ns.other.net.",
                                           "example.com. 7200 NS ns1.example.com.",
                                           "example.com. 7200 NS ns2.example.com."}));
  std::vector<std::string> glue = additional(p);
  std::sort(glue.begin(), glue.end());
  EXPECT_EQ(glue, (std::vector<std::string>{"ns1.example.com. 3600 A 192.0.2.53",
                                            "ns1.example.com. 3600 AAAA 2001:db8::53",
                                            "ns2.example.com. 3600 A 192.0.2.54"}));
}

TEST_F(AnswerTest, CasePreservedInQuestionAndOwner) {
  load_zone();
  Pkt p = ask("WwW.ExAmPlE.cOm.", LDNS_RR_TYPE_A);
  ASSERT_TRUE(p);
  ASSERT_EQ(answers(p).size(), 2u);
  EXPECT_EQ(answers(p)[0], "WwW.ExAmPlE.cOm. 300 A 192.0.2.1");
  const ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(p.get()), 0);
  EXPECT_EQ(take_str(ldns_rdf2str(ldns_rr_owner(q))), "WwW.ExAmPlE.cOm.");
}

TEST_F(AnswerTest, Wildcard) {
  load_zone();
  Pkt p = ask("Foo.Apps.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(answers(p), std::vector<std::string>{"Foo.Apps.example.com. 120 A 192.0.2.99"});
  // Several labels below the closest encloser still match (RFC 4592).
  Pkt deep = ask("x.y.apps.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(answers(deep), std::vector<std::string>{"x.y.apps.example.com. 120 A 192.0.2.99"});
  // Wildcard of another type: NODATA.
  Pkt nodata = ask("foo.apps.example.com.", LDNS_RR_TYPE_AAAA);
  EXPECT_EQ(ldns_pkt_get_rcode(nodata.get()), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(answers(nodata).empty());
  EXPECT_EQ(authority(nodata), std::vector<std::string>{kSoa});
}

TEST_F(AnswerTest, CnameChainInsideZone) {
  load_zone();
  Pkt p = ask("chain1.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(answers(p),
            (std::vector<std::string>{"chain1.example.com. 300 CNAME chain2.example.com.",
                                      "chain2.example.com. 300 CNAME www.example.com.",
                                      "www.example.com. 300 A 192.0.2.1",
                                      "www.example.com. 300 A 192.0.2.2"}));
  // Asking for the CNAME itself does not follow it.
  Pkt c = ask("docs.example.com.", LDNS_RR_TYPE_CNAME);
  EXPECT_EQ(answers(c), std::vector<std::string>{"docs.example.com. 300 CNAME www.example.com."});
}

TEST_F(AnswerTest, CnameOutOfZoneStops) {
  load_zone();
  Pkt p = ask("ext.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(ldns_pkt_aa(p.get()));
  EXPECT_EQ(answers(p), std::vector<std::string>{"ext.example.com. 300 CNAME www.other.net."});
  EXPECT_TRUE(authority(p).empty());
}

TEST_F(AnswerTest, CnameToMissingNameIsNxdomainKeepingCname) {
  load_zone();
  Pkt p = ask("dangling.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(answers(p),
            std::vector<std::string>{"dangling.example.com. 300 CNAME nothere.example.com."});
  EXPECT_EQ(authority(p), std::vector<std::string>{kSoa});
}

TEST_F(AnswerTest, CnameLoopAndLongChainAreBounded) {
  load_zone();
  Explain ex;
  Pkt loop = ask("loop1.example.com.", LDNS_RR_TYPE_A, {}, Transport::kUdp, &ex);
  ASSERT_TRUE(loop);
  EXPECT_EQ(ldns_pkt_get_rcode(loop.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(answers(loop),
            (std::vector<std::string>{"loop1.example.com. 300 CNAME loop2.example.com.",
                                      "loop2.example.com. 300 CNAME loop1.example.com."}));
  EXPECT_TRUE(explain_has(ex, "loop")) << explain_dump(ex);

  // h1 -> ... -> h10 (A): nine CNAMEs needed, eight followed.
  Pkt chain = ask("h1.example.com.", LDNS_RR_TYPE_A);
  std::vector<std::string> ans = answers(chain);
  ASSERT_EQ(ans.size(), 8u);
  for (const std::string& a : ans) EXPECT_NE(a.find(" CNAME "), std::string::npos) << a;
  EXPECT_EQ(ans.back(), "h8.example.com. 300 CNAME h9.example.com.");
  // Eight hops from h3 reach the A record.
  Pkt shorter = ask("h2.example.com.", LDNS_RR_TYPE_A);
  ASSERT_EQ(answers(shorter).size(), 9u);
  EXPECT_EQ(answers(shorter).back(), "h10.example.com. 300 A 192.0.2.10");
}

TEST_F(AnswerTest, NxdomainWithSoaNegativeTtl) {
  load_zone();
  Pkt p = ask("nope.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NXDOMAIN);
  EXPECT_TRUE(ldns_pkt_aa(p.get()));
  EXPECT_TRUE(answers(p).empty());
  EXPECT_EQ(authority(p), std::vector<std::string>{kSoa});
  // Below an existing name, too.
  Pkt below = ask("x.www.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(below.get()), LDNS_RCODE_NXDOMAIN);
}

TEST_F(AnswerTest, NodataAndEmptyNonTerminal) {
  load_zone();
  Pkt p = ask("mail.example.com.", LDNS_RR_TYPE_AAAA);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(answers(p).empty());
  EXPECT_EQ(authority(p), std::vector<std::string>{kSoa});
  for (const char* ent : {"b.deep.example.com.", "deep.example.com."}) {
    Pkt e = ask(ent, LDNS_RR_TYPE_A);
    EXPECT_EQ(ldns_pkt_get_rcode(e.get()), LDNS_RCODE_NOERROR) << ent;
    EXPECT_TRUE(answers(e).empty()) << ent;
    EXPECT_EQ(authority(e), std::vector<std::string>{kSoa}) << ent;
  }
  Pkt leaf = ask("a.b.deep.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(answers(leaf), std::vector<std::string>{"a.b.deep.example.com. 300 A 192.0.2.7"});
}

TEST_F(AnswerTest, UnknownTypeIsNodata) {
  load_zone();
  Pkt p = ask("www.example.com.", static_cast<ldns_rr_type>(65000));
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(answers(p).empty());
  EXPECT_EQ(authority(p), std::vector<std::string>{kSoa});
}

TEST_F(AnswerTest, RefusedOutOfZoneWithoutAa) {
  load_zone();
  Pkt p = ask("www.other.net.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_REFUSED);
  EXPECT_FALSE(ldns_pkt_aa(p.get()));
  EXPECT_TRUE(answers(p).empty());
  EXPECT_TRUE(authority(p).empty());
  Pkt root = ask(".", LDNS_RR_TYPE_NS);
  EXPECT_EQ(ldns_pkt_get_rcode(root.get()), LDNS_RCODE_REFUSED);
}

TEST_F(AnswerTest, AnyIsMinimal) {
  load_zone();
  Pkt p = ask("www.example.com.", LDNS_RR_TYPE_ANY);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  std::vector<std::string> ans = answers(p);
  ASSERT_FALSE(ans.empty());
  for (const std::string& a : ans) EXPECT_NE(a.find(" A "), std::string::npos) << a;
  EXPECT_EQ(ans.size(), 2u) << "the A RRset (type 1 sorts first), not A + AAAA";
  EXPECT_EQ(ans[0], "www.example.com. 300 A 192.0.2.1");
  Pkt ent = ask("deep.example.com.", LDNS_RR_TYPE_ANY);
  EXPECT_TRUE(answers(ent).empty());
  EXPECT_EQ(authority(ent), std::vector<std::string>{kSoa});
}

TEST_F(AnswerTest, RefusedClassAndZoneTransferNotImpMeta) {
  load_zone();
  QueryOpts ch;
  ch.qclass = LDNS_RR_CLASS_CH;
  Pkt c = ask("www.example.com.", LDNS_RR_TYPE_A, ch);
  EXPECT_EQ(ldns_pkt_get_rcode(c.get()), LDNS_RCODE_REFUSED);
  Pkt axfr = ask("example.com.", LDNS_RR_TYPE_AXFR);
  EXPECT_EQ(ldns_pkt_get_rcode(axfr.get()), LDNS_RCODE_REFUSED);
  EXPECT_TRUE(answers(axfr).empty());
  Pkt ixfr = ask("example.com.", LDNS_RR_TYPE_IXFR);
  EXPECT_EQ(ldns_pkt_get_rcode(ixfr.get()), LDNS_RCODE_REFUSED);
  Pkt maila = ask("example.com.", LDNS_RR_TYPE_MAILA);  // 254
  EXPECT_EQ(ldns_pkt_get_rcode(maila.get()), LDNS_RCODE_NOTIMPL);
}

TEST_F(AnswerTest, NotImpOpcode) {
  load_zone();
  QueryOpts o;
  o.opcode = LDNS_PACKET_STATUS;
  Pkt p = ask("www.example.com.", LDNS_RR_TYPE_A, o);
  ASSERT_TRUE(p);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOTIMPL);
  EXPECT_EQ(ldns_pkt_get_opcode(p.get()), LDNS_PACKET_STATUS);
  EXPECT_EQ(ldns_pkt_qdcount(p.get()), 1);
  EXPECT_TRUE(answers(p).empty());
  EXPECT_EQ(ws_.counters.rcode_notimp, 1u);
  EXPECT_EQ(ws_.counters.queries, 1u);
}

TEST_F(AnswerTest, FormErr) {
  load_zone();
  // QDCOUNT 0: no question to echo.
  std::vector<uint8_t> q = make_query("www.example.com.", LDNS_RR_TYPE_A);
  std::vector<uint8_t> no_question(q.begin(), q.begin() + 12);
  no_question[5] = 0;
  Pkt p = parse_response(answer_raw(no_question));
  ASSERT_TRUE(p);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_FORMERR);
  EXPECT_EQ(ldns_pkt_qdcount(p.get()), 0);
  EXPECT_EQ(ldns_pkt_id(p.get()), 0x4242);
  // Trailing garbage after a valid question: FORMERR with the question echoed.
  std::vector<uint8_t> trailing = q;
  trailing.push_back(0xAB);
  Pkt t = parse_response(answer_raw(trailing));
  ASSERT_TRUE(t);
  EXPECT_EQ(ldns_pkt_get_rcode(t.get()), LDNS_RCODE_FORMERR);
  EXPECT_EQ(ldns_pkt_qdcount(t.get()), 1);
  EXPECT_EQ(ws_.counters.rcode_formerr, 2u);
  EXPECT_EQ(ws_.counters.responses, 2u);
}

TEST_F(AnswerTest, DroppedPackets) {
  load_zone();
  std::vector<uint8_t> q = make_query("www.example.com.", LDNS_RR_TYPE_A);
  std::vector<uint8_t> response = q;
  response[2] |= 0x80;  // QR
  EXPECT_TRUE(answer_raw(response).empty());
  EXPECT_TRUE(answer_raw(std::vector<uint8_t>(q.begin(), q.begin() + 11)).empty());
  EXPECT_EQ(ws_.counters.malformed_dropped, 2u);
  EXPECT_EQ(ws_.counters.responses, 0u);
}

TEST_F(AnswerTest, NoSnapshotDrops) {
  std::vector<uint8_t> q = make_query("www.example.com.", LDNS_RR_TYPE_A);
  EXPECT_TRUE(answer_raw(q).empty());
  EXPECT_EQ(ws_.counters.no_snapshot, 1u);
  EXPECT_EQ(ws_.counters.responses, 0u);
}

// ---------------------------------------------------------------------------------------------
// EDNS.

TEST_F(AnswerTest, EdnsOptEchoesDoNotOtherFlags) {
  load_zone();
  QueryOpts o;
  o.edns = true;
  o.udp_size = 4096;
  o.do_bit = true;
  Pkt p = ask("www.example.com.", LDNS_RR_TYPE_A, o);
  ASSERT_TRUE(p);
  EXPECT_EQ(ldns_pkt_edns_udp_size(p.get()), 1232);
  EXPECT_EQ(ldns_pkt_edns_version(p.get()), 0);
  EXPECT_TRUE(ldns_pkt_edns_do(p.get()));
  EXPECT_EQ(ldns_pkt_edns_extended_rcode(p.get()), 0);
  EXPECT_EQ(answers(p).size(), 2u);

  o.do_bit = false;
  Pkt nodo = ask("www.example.com.", LDNS_RR_TYPE_A, o);
  EXPECT_EQ(ldns_pkt_edns_udp_size(nodo.get()), 1232);
  EXPECT_FALSE(ldns_pkt_edns_do(nodo.get()));
}

TEST_F(AnswerTest, BadVers) {
  load_zone();
  QueryOpts o;
  o.edns = true;
  o.version = 1;
  Pkt p = ask("www.example.com.", LDNS_RR_TYPE_A, o);
  ASSERT_TRUE(p);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), 0);
  EXPECT_EQ(ldns_pkt_edns_extended_rcode(p.get()), 1) << "16 >> 4";
  EXPECT_EQ(ldns_pkt_edns_version(p.get()), 0);
  EXPECT_EQ(ldns_pkt_edns_udp_size(p.get()), 1232);
  EXPECT_TRUE(answers(p).empty());
  EXPECT_TRUE(authority(p).empty());
  EXPECT_EQ(ws_.counters.rcode_badvers, 1u);
}

TEST_F(AnswerTest, EcsEchoedWithScopeZeroUnknownOptionDropped) {
  load_zone();
  QueryOpts o;
  o.edns = true;
  o.options = ecs_option();
  const std::vector<uint8_t> unknown = {0xFD, 0xE9, 0, 2, 0xAA, 0xBB};
  o.options.insert(o.options.end(), unknown.begin(), unknown.end());
  Pkt p = ask("www.example.com.", LDNS_RR_TYPE_A, o);
  ASSERT_TRUE(p);
  EXPECT_EQ(answers(p).size(), 2u);
  ldns_rdf* data = ldns_pkt_edns_data(p.get());
  ASSERT_NE(data, nullptr);
  const std::vector<uint8_t> got(ldns_rdf_data(data), ldns_rdf_data(data) + ldns_rdf_size(data));
  const std::vector<uint8_t> want = {0, 8, 0, 7, 0, 1, 24, 0 /* scope */, 198, 51, 100};
  EXPECT_EQ(got, want);
  EXPECT_EQ(ws_.counters.ecs_queries, 1u);
}

TEST_F(AnswerTest, TruncationWithoutEdnsAt512) {
  load_zone();
  std::vector<uint8_t> wire = answer_raw(make_query("big.example.com.", LDNS_RR_TYPE_TXT));
  ASSERT_FALSE(wire.empty());
  EXPECT_LE(wire.size(), 512u);
  Pkt p = parse_response(wire);
  EXPECT_TRUE(ldns_pkt_tc(p.get()));
  EXPECT_EQ(ldns_pkt_qdcount(p.get()), 1);
  EXPECT_TRUE(answers(p).empty());
  EXPECT_EQ(ldns_pkt_edns_udp_size(p.get()), 0);
  EXPECT_EQ(ws_.counters.truncated, 1u);

  // The same answer fits in our 1232-octet EDNS ceiling.
  QueryOpts o;
  o.edns = true;
  o.udp_size = 4096;
  std::vector<uint8_t> full = answer_raw(make_query("big.example.com.", LDNS_RR_TYPE_TXT, o));
  EXPECT_GT(full.size(), 512u);
  EXPECT_LE(full.size(), 1232u);
  Pkt f = parse_response(full);
  EXPECT_FALSE(ldns_pkt_tc(f.get()));
  EXPECT_EQ(answers(f).size(), 8u);
}

TEST_F(AnswerTest, TruncationAtClientPayloadKeepsOpt) {
  load_zone();
  QueryOpts o;
  o.edns = true;
  o.udp_size = 700;
  o.do_bit = true;
  std::vector<uint8_t> wire = answer_raw(make_query("big.example.com.", LDNS_RR_TYPE_TXT, o));
  ASSERT_FALSE(wire.empty());
  EXPECT_LE(wire.size(), 700u);
  Pkt p = parse_response(wire);
  EXPECT_TRUE(ldns_pkt_tc(p.get()));
  EXPECT_TRUE(answers(p).empty());
  EXPECT_EQ(ldns_pkt_edns_udp_size(p.get()), 1232);
  EXPECT_TRUE(ldns_pkt_edns_do(p.get()));

  // A payload below 512 still means 512.
  o.udp_size = 100;
  Pkt small = parse_response(answer_raw(make_query("www.example.com.", LDNS_RR_TYPE_A, o)));
  EXPECT_FALSE(ldns_pkt_tc(small.get()));
  EXPECT_EQ(answers(small).size(), 2u);
}

TEST_F(AnswerTest, TcpNeverTruncates) {
  load_zone();
  std::vector<uint8_t> wire =
      answer_raw(make_query("big.example.com.", LDNS_RR_TYPE_TXT), Transport::kTcp);
  EXPECT_GT(wire.size(), 512u);
  Pkt p = parse_response(wire);
  EXPECT_FALSE(ldns_pkt_tc(p.get()));
  EXPECT_EQ(answers(p).size(), 8u);
  EXPECT_EQ(ws_.counters.tcp_queries, 1u);
  EXPECT_EQ(ws_.counters.udp_queries, 0u);
  EXPECT_EQ(ws_.counters.truncated, 0u);
}

TEST_F(AnswerTest, OutCapBoundsTheResponse) {
  load_zone();
  std::vector<uint8_t> wire =
      answer_raw(make_query("big.example.com.", LDNS_RR_TYPE_TXT), Transport::kTcp, nullptr, 300);
  ASSERT_FALSE(wire.empty());
  EXPECT_LE(wire.size(), 300u);
  EXPECT_TRUE(ldns_pkt_tc(parse_response(wire).get()));
}

TEST_F(AnswerTest, InPlaceMatchesOutOfPlace) {
  load_services(R"(
services:
  - name: lb.example.com.
    type: A
    ttl: 30
    pools:
      - name: p
        method: round-robin
        members:
          - {name: m1, address: 192.0.2.11}
          - {name: m2, address: 192.0.2.12}
)");
  QueryOpts edns;
  edns.edns = true;
  edns.options = ecs_option();
  const std::vector<std::vector<uint8_t>> queries = {
      make_query("WWW.example.com.", LDNS_RR_TYPE_A),
      make_query("example.com.", LDNS_RR_TYPE_NS, edns),
      make_query("chain1.example.com.", LDNS_RR_TYPE_A, edns),
      make_query("nope.example.com.", LDNS_RR_TYPE_A),
      make_query("big.example.com.", LDNS_RR_TYPE_TXT),
      make_query("lb.example.com.", LDNS_RR_TYPE_A, edns),
      make_query("www.other.net.", LDNS_RR_TYPE_A),
  };
  WorkerState a, b;
  for (const auto& q : queries) {
    std::vector<uint8_t> out(2048);
    const size_t n = answer_query(&view_, q.data(), q.size(), out.data(), out.size(), ClientAddr{},
                                  Transport::kUdp, a);
    ASSERT_GT(n, 0u);
    out.resize(n);
    std::vector<uint8_t> buf(2048);
    std::copy(q.begin(), q.end(), buf.begin());
    const size_t m = answer_query(&view_, buf.data(), q.size(), buf.data(), buf.size(),
                                  ClientAddr{}, Transport::kUdp, b);
    buf.resize(m);
    EXPECT_EQ(out, buf);
  }
}

// ---------------------------------------------------------------------------------------------
// GSLB.

TEST_F(AnswerTest, GslbRoundRobinRotates) {
  load_services(R"(
services:
  - name: rr.example.com.
    type: A
    ttl: 30
    pools:
      - name: p
        method: round-robin
        members:
          - {name: m1, address: 192.0.2.11}
          - {name: m2, address: 192.0.2.12}
          - {name: m3, address: 192.0.2.13}
)");
  std::vector<std::string> seq;
  for (int i = 0; i < 6; ++i) {
    Pkt p = ask("rr.example.com.", LDNS_RR_TYPE_A);
    std::vector<std::string> ans = answers(p);
    ASSERT_EQ(ans.size(), 1u);
    EXPECT_EQ(ans[0].rfind("rr.example.com. 30 A ", 0), 0u) << ans[0];
    seq.push_back(answer_rdata(p)[0]);
  }
  EXPECT_EQ(std::set<std::string>(seq.begin(), seq.begin() + 3),
            (std::set<std::string>{"192.0.2.11", "192.0.2.12", "192.0.2.13"}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(seq[i], seq[i + 3]);
  EXPECT_EQ(ws_.counters.gslb_answers, 6u);
  EXPECT_EQ(ws_.rr_counter, 6u);
}

TEST_F(AnswerTest, GslbRatioExactOverCycle) {
  load_services(R"(
services:
  - name: w.example.com.
    type: A
    ttl: 30
    pools:
      - name: p
        method: ratio
        members:
          - {name: heavy, address: 192.0.2.21, weight: 3}
          - {name: light, address: 192.0.2.22, weight: 1}
)");
  for (int cycle = 1; cycle <= 3; ++cycle) {
    std::map<std::string, int> counts;
    for (int i = 0; i < 4; ++i) {
      Pkt p = ask("w.example.com.", LDNS_RR_TYPE_A);
      ASSERT_EQ(answer_rdata(p).size(), 1u);
      ++counts[answer_rdata(p)[0]];
    }
    EXPECT_EQ(counts["192.0.2.21"], 3) << "cycle " << cycle;
    EXPECT_EQ(counts["192.0.2.22"], 1) << "cycle " << cycle;
  }
}

TEST_F(AnswerTest, GslbGlobalAvailabilitySkipsDownMember) {
  load_services(R"(
services:
  - name: ga.example.com.
    type: A
    ttl: 30
    pools:
      - name: p
        method: global-availability
        members:
          - {name: first, address: 192.0.2.31}
          - {name: second, address: 192.0.2.32}
          - {name: third, address: 192.0.2.33}
)",
                [](SnapshotModel& m) { set_health(m, "first", snap::MemberHealth::kDown); });
  for (int i = 0; i < 5; ++i) {
    Pkt p = ask("ga.example.com.", LDNS_RR_TYPE_A);
    EXPECT_EQ(answer_rdata(p), std::vector<std::string>{"192.0.2.32"});
  }
}

TEST_F(AnswerTest, GslbRandomOnlyUsableMembers) {
  load_services(R"(
services:
  - name: rnd.example.com.
    type: A
    ttl: 30
    pools:
      - name: p
        method: random
        members:
          - {name: r1, address: 192.0.2.41}
          - {name: r2, address: 192.0.2.42, mode: always-down}
          - {name: r3, address: 192.0.2.43, enabled: false}
          - {name: r4, address: 192.0.2.44}
          - {name: r5, address: 192.0.2.45}
)",
                [](SnapshotModel& m) { set_health(m, "r5", snap::MemberHealth::kDown); });
  std::map<std::string, int> counts;
  for (int i = 0; i < 400; ++i) {
    Pkt p = ask("rnd.example.com.", LDNS_RR_TYPE_A);
    ASSERT_EQ(answer_rdata(p).size(), 1u);
    ++counts[answer_rdata(p)[0]];
  }
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts["192.0.2.41"], 100);
  EXPECT_GT(counts["192.0.2.44"], 100);
}

TEST_F(AnswerTest, GslbReturnAllExcludesAlwaysDown) {
  load_services(R"(
services:
  - name: all.example.com.
    type: A
    ttl: 45
    pools:
      - name: p
        method: return-all
        members:
          - {name: a1, address: 192.0.2.51}
          - {name: a2, address: 192.0.2.52, mode: always-down}
          - {name: a3, address: 192.0.2.53}
)");
  Pkt p = ask("all.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(answers(p), (std::vector<std::string>{"all.example.com. 45 A 192.0.2.51",
                                                  "all.example.com. 45 A 192.0.2.53"}));
}

TEST_F(AnswerTest, GslbReturnNRotatesStart) {
  load_services(R"(
services:
  - name: n.example.com.
    type: A
    ttl: 30
    pools:
      - name: p
        method: return-n
        count: 2
        members:
          - {name: n1, address: 192.0.2.61}
          - {name: n2, address: 192.0.2.62}
          - {name: n3, address: 192.0.2.63}
      - name: q
        members:
          - {name: q1, address: 192.0.2.69}
)");
  // (Pool q's members lie just past p's in the snapshot, so a missing wrap-around would show.)
  std::vector<std::vector<std::string>> got;
  for (int i = 0; i < 3; ++i) got.push_back(answer_rdata(ask("n.example.com.", LDNS_RR_TYPE_A)));
  EXPECT_EQ(got[0], (std::vector<std::string>{"192.0.2.61", "192.0.2.62"}));
  EXPECT_EQ(got[1], (std::vector<std::string>{"192.0.2.62", "192.0.2.63"}));
  EXPECT_EQ(got[2], (std::vector<std::string>{"192.0.2.63", "192.0.2.61"}));
}

const char* kFailoverYaml = R"(
services:
  - name: www2.example.com.
    ttl: 30
    pools:
      - name: site-a
        method: ratio
        members:
          - {name: a1, address: 192.0.2.71, weight: 3}
          - {name: a2, address: 192.0.2.72, weight: 1}
          - {name: a3, address: 192.0.2.73, mode: always-down}
          - {name: a1-v6, address: "2001:db8:a::71"}
      - name: site-b
        method: round-robin
        members:
          - {name: b1, address: 198.51.100.81}
          - {name: b1-v6, address: "2001:db8:b::81"}
    fallback: [203.0.113.1, "2001:db8:ffff::1"]
)";

TEST_F(AnswerTest, GslbExplainNamesPoolsAndMembers) {
  load_services(kFailoverYaml);
  Explain ex;
  Pkt p = ask("www2.example.com.", LDNS_RR_TYPE_A, {}, Transport::kUdp, &ex);
  ASSERT_EQ(answer_rdata(p).size(), 1u);
  EXPECT_TRUE(explain_has(ex, "pool site-a (ratio): 2 of 3 usable")) << explain_dump(ex);
  EXPECT_TRUE(explain_has(ex, "a3 (always-down)")) << explain_dump(ex);
  EXPECT_TRUE(explain_has(ex, "chosen: a1")) << explain_dump(ex);
  EXPECT_TRUE(explain_has(ex, "zone example.com.")) << explain_dump(ex);
  EXPECT_TRUE(explain_has(ex, "rcode NOERROR")) << explain_dump(ex);
  EXPECT_FALSE(explain_has(ex, "site-b")) << "a later pool is not consulted";
}

TEST_F(AnswerTest, GslbFailoverToNextPool) {
  load_services(kFailoverYaml, [](SnapshotModel& m) {
    set_health(m, "a1", snap::MemberHealth::kDown);
    set_health(m, "a2", snap::MemberHealth::kDown);
  });
  Explain ex;
  Pkt p = ask("www2.example.com.", LDNS_RR_TYPE_A, {}, Transport::kUdp, &ex);
  EXPECT_EQ(answer_rdata(p), std::vector<std::string>{"198.51.100.81"});
  EXPECT_TRUE(explain_has(ex, "pool site-a (ratio): 0 of 3 usable, skipped")) << explain_dump(ex);
  EXPECT_TRUE(explain_has(ex, "a1 (health down)")) << explain_dump(ex);
  EXPECT_TRUE(explain_has(ex, "pool site-b (round-robin): 1 of 1 usable")) << explain_dump(ex);
  EXPECT_TRUE(explain_has(ex, "chosen: b1")) << explain_dump(ex);
  // The IPv6 side of the same service still answers from site-a.
  Pkt v6 = ask("www2.example.com.", LDNS_RR_TYPE_AAAA);
  EXPECT_EQ(answer_rdata(v6), std::vector<std::string>{"2001:db8:a::71"});
}

TEST_F(AnswerTest, GslbFallbackAddress) {
  load_services(kFailoverYaml, [](SnapshotModel& m) {
    for (const char* n : {"a1", "a2", "b1"}) set_health(m, n, snap::MemberHealth::kDown);
  });
  Explain ex;
  Pkt p = ask("www2.example.com.", LDNS_RR_TYPE_A, {}, Transport::kUdp, &ex);
  EXPECT_EQ(answers(p), std::vector<std::string>{"www2.example.com. 30 A 203.0.113.1"});
  EXPECT_EQ(ws_.counters.gslb_fallback, 1u);
  EXPECT_EQ(ws_.counters.gslb_empty, 0u);
  EXPECT_TRUE(explain_has(ex, "fallback")) << explain_dump(ex);
}

TEST_F(AnswerTest, GslbEmptyNodata) {
  load_services(R"(
services:
  - name: e.example.com.
    type: A
    ttl: 30
    pools:
      - name: p
        members:
          - {name: e1, address: 192.0.2.91, mode: always-down}
)");
  Pkt p = ask("e.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(answers(p).empty());
  EXPECT_EQ(authority(p), std::vector<std::string>{kSoa});
  EXPECT_EQ(ws_.counters.gslb_empty, 1u);
}

TEST_F(AnswerTest, GslbEmptyServfail) {
  load_services(R"(
services:
  - name: e.example.com.
    type: A
    ttl: 30
    when_empty: servfail
    pools:
      - name: p
        members:
          - {name: e1, address: 192.0.2.91, enabled: false}
)");
  Pkt p = ask("e.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_SERVFAIL);
  EXPECT_TRUE(answers(p).empty());
  EXPECT_TRUE(authority(p).empty());
  EXPECT_EQ(ws_.counters.gslb_empty, 1u);
  EXPECT_EQ(ws_.counters.rcode_servfail, 1u);
}

const char* kCnameServiceYaml = R"(
services:
  - name: app.example.com.
    type: CNAME
    ttl: 60
    pools:
      - name: targets
        method: global-availability
        members:
          - {name: local, target: www}
          - {name: remote, target: app.backup.other.net., mode: always-up}
)";

TEST_F(AnswerTest, GslbCnameServiceChasedInsideZone) {
  load_services(kCnameServiceYaml);
  Pkt p = ask("App.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(answers(p), (std::vector<std::string>{"App.example.com. 60 CNAME www.example.com.",
                                                  "www.example.com. 300 A 192.0.2.1",
                                                  "www.example.com. 300 A 192.0.2.2"}));
  Pkt c = ask("app.example.com.", LDNS_RR_TYPE_CNAME);
  EXPECT_EQ(answers(c), std::vector<std::string>{"app.example.com. 60 CNAME www.example.com."});
}

TEST_F(AnswerTest, GslbCnameServiceFailsOverOutOfZone) {
  load_services(kCnameServiceYaml,
                [](SnapshotModel& m) { set_health(m, "local", snap::MemberHealth::kDown); });
  Pkt p = ask("app.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(answers(p),
            std::vector<std::string>{"app.example.com. 60 CNAME app.backup.other.net."});
}

// ---------------------------------------------------------------------------------------------
// Counters.

TEST_F(AnswerTest, CountersPerOutcome) {
  load_zone();
  QueryOpts ecs;
  ecs.edns = true;
  ecs.options = ecs_option();
  ask("www.example.com.", LDNS_RR_TYPE_A);
  ask("www.example.com.", LDNS_RR_TYPE_A, ecs);
  ask("nope.example.com.", LDNS_RR_TYPE_A);
  ask("www.other.net.", LDNS_RR_TYPE_A, {}, Transport::kTcp);
  const WorkerCounters& k = ws_.counters;
  EXPECT_EQ(k.queries, 4u);
  EXPECT_EQ(k.responses, 4u);
  EXPECT_EQ(k.rcode_noerror, 2u);
  EXPECT_EQ(k.rcode_nxdomain, 1u);
  EXPECT_EQ(k.rcode_refused, 1u);
  EXPECT_EQ(k.ecs_queries, 1u);
  EXPECT_EQ(k.udp_queries, 3u);
  EXPECT_EQ(k.tcp_queries, 1u);
  EXPECT_EQ(k.gslb_answers, 0u);
  EXPECT_EQ(k.malformed_dropped, 0u);
}

}  // namespace
}  // namespace gtm::engine
