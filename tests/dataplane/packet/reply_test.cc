#include "dataplane/packet/reply.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/packet/checksum.h"
#include "tests/dataplane/packet/frame_builder.h"

namespace gtm::packet {
namespace {

using test::build_frame;
using test::Bytes;
using test::FrameSpec;
using test::get16;

const uint8_t kOurMac[6] = {0x02, 0, 0, 0, 0, 0x01};

class ReplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::memcpy(port_.mac, kOurMac, 6);
    port_.addrs.add_v4(test::parse_addr("198.18.0.1").data());
    port_.addrs.add_v6(test::parse_addr("2001:db8::53").data());
  }

  // Classifies `spec`'s frame, replaces its DNS message by `response` and makes the reply.
  Bytes reply(const FrameSpec& spec, const Bytes& response, TxChecksums cs = {}) {
    Bytes f = build_frame(spec);
    f.resize(2048);
    EXPECT_EQ(
        classify(f.data(), static_cast<uint32_t>(build_frame(spec).size()), port_, true, &info_),
        Verdict::kDns);
    std::memcpy(f.data() + info_.dns, response.data(), response.size());
    const uint32_t len =
        make_reply(f.data(), info_, static_cast<uint32_t>(response.size()), kOurMac, cs);
    f.resize(len);
    return f;
  }

  // Verifies the UDP checksum of a reply the slow way.
  static uint16_t udp_sum(const Bytes& f, size_t l3, int version) {
    const size_t addr_off = version == 4 ? 12 : 8;
    const size_t addr_len = version == 4 ? 8 : 32;
    const size_t l4 = l3 + (version == 4 ? 20 : 40);
    Bytes pseudo(f.begin() + static_cast<long>(l3 + addr_off),
                 f.begin() + static_cast<long>(l3 + addr_off + addr_len));
    const uint16_t udp_len = get16(&f[l4 + 4]);
    test::put16(&pseudo, 17);
    test::put16(&pseudo, udp_len);
    Bytes udp(f.begin() + static_cast<long>(l4), f.begin() + static_cast<long>(l4 + udp_len));
    return test::reference_sum({&pseudo, &udp});
  }

  PortFilter port_;
  FrameInfo info_;
};

Bytes some_response(size_t len) {
  Bytes r(len);
  for (size_t i = 0; i < len; ++i) r[i] = static_cast<uint8_t>(i * 37 + 11);
  return r;
}

TEST_F(ReplyTest, Ipv4ReplyIsAddressedBackWithValidChecksums) {
  FrameSpec s;
  s.payload = test::dns_query("www.gtm.example", 1);
  const Bytes resp = some_response(101);  // longer than the query, odd length
  const Bytes f = reply(s, resp);
  ASSERT_EQ(f.size(), 14 + 20 + 8 + resp.size());
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(s.src_mac, s.src_mac + 6));
  EXPECT_EQ(Bytes(f.begin() + 6, f.begin() + 12), Bytes(kOurMac, kOurMac + 6));
  const uint8_t* ip = &f[14];
  EXPECT_EQ(ip[0], 0x45);
  EXPECT_EQ(get16(ip + 2), 20 + 8 + resp.size());
  EXPECT_EQ(get16(ip + 6), 0x4000);  // DF
  EXPECT_EQ(ip[8], 64);
  EXPECT_EQ(ip[9], 17);
  EXPECT_EQ(Bytes(ip + 12, ip + 16), test::parse_addr("198.18.0.1"));
  EXPECT_EQ(Bytes(ip + 16, ip + 20), test::parse_addr("198.18.0.10"));
  Bytes header(ip, ip + 20);
  EXPECT_EQ(test::reference_sum({&header}), 0xFFFF) << "IPv4 header checksum";
  const uint8_t* udp = ip + 20;
  EXPECT_EQ(get16(udp), 53);
  EXPECT_EQ(get16(udp + 2), 40000);
  EXPECT_EQ(get16(udp + 4), 8 + resp.size());
  EXPECT_NE(get16(udp + 6), 0);
  EXPECT_EQ(udp_sum(f, 14, 4), 0xFFFF) << "UDP checksum";
  EXPECT_EQ(Bytes(udp + 8, udp + 8 + resp.size()), resp);
}

TEST_F(ReplyTest, Ipv6ReplyOnTheQueriesVlans) {
  port_.vlan_count = 2;
  port_.vlan_tpid[0] = 0x88A8;
  port_.vlan_id[0] = 10;
  port_.vlan_id[1] = 20;
  FrameSpec s;
  s.src = "2001:db8:1::10";
  s.dst = "2001:db8::53";
  s.tags = {{0x88A8, 10}, {0x8100, 20}};
  s.payload = test::dns_query("www.gtm.example", 28);
  const Bytes resp = some_response(300);
  const Bytes f = reply(s, resp);
  ASSERT_EQ(f.size(), 14 + 8 + 40 + 8 + resp.size());
  EXPECT_EQ(get16(&f[12]), 0x88A8);
  EXPECT_EQ(get16(&f[14]), 10);
  EXPECT_EQ(get16(&f[16]), 0x8100);
  EXPECT_EQ(get16(&f[18]), 20);
  EXPECT_EQ(get16(&f[20]), 0x86DD);
  const uint8_t* ip = &f[22];
  EXPECT_EQ(ip[0], 0x60);
  EXPECT_EQ(get16(ip + 4), 8 + resp.size());
  EXPECT_EQ(ip[6], 17);
  EXPECT_EQ(ip[7], 64);
  EXPECT_EQ(Bytes(ip + 8, ip + 24), test::parse_addr("2001:db8::53"));
  EXPECT_EQ(Bytes(ip + 24, ip + 40), test::parse_addr("2001:db8:1::10"));
  EXPECT_EQ(udp_sum(f, 22, 6), 0xFFFF);
}

TEST_F(ReplyTest, OffloadsLeaveTheNicsShare) {
  FrameSpec s;
  s.payload = test::dns_query("a.example", 1);
  const Bytes resp = some_response(64);
  const Bytes f = reply(s, resp, {true, true});
  const uint8_t* ip = &f[14];
  EXPECT_EQ(get16(ip + 10), 0) << "IPv4 checksum left to the NIC";
  // The UDP field holds the folded pseudo-header sum, not complemented.
  Bytes pseudo(ip + 12, ip + 20);
  test::put16(&pseudo, 17);
  test::put16(&pseudo, static_cast<uint16_t>(8 + resp.size()));
  EXPECT_EQ(get16(ip + 20 + 6), test::reference_sum({&pseudo}));
}

TEST_F(ReplyTest, VlanStripAndInsertRoundTrip) {
  port_.vlan_count = 2;
  port_.vlan_tpid[0] = 0x9100;
  port_.vlan_id[0] = 4094;
  port_.vlan_id[1] = 1;
  FrameSpec s;
  s.tags = {{0x9100, 4094}, {0x8100, 1}};
  s.payload = {1, 2, 3};
  const Bytes tagged = build_frame(s);
  FrameSpec plain = s;
  plain.tags = {};
  plain.pad_to = 0;
  const Bytes untagged = build_frame(plain);

  Bytes f = tagged;
  const uint32_t off = strip_vlan_tags(f.data(), 2);
  ASSERT_EQ(off, 8u);
  EXPECT_EQ(Bytes(f.begin() + off, f.begin() + static_cast<long>(off + untagged.size())), untagged);
  insert_vlan_tags(f.data(), port_);
  EXPECT_EQ(f, tagged);
  EXPECT_EQ(strip_vlan_tags(f.data(), 0), 0u);
  EXPECT_EQ(f, tagged);
}

// The fast sum against RFC 1071 for every length 0..300 at every alignment 0..7, and the
// 0 -> 0xFFFF rule of UDP.
TEST(ChecksumTest, MatchesTheReference) {
  std::mt19937 rng(7);
  Bytes buf(320);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t len = 0; len <= 300; ++len) {
      Bytes piece(buf.begin() + static_cast<long>(align),
                  buf.begin() + static_cast<long>(align + len));
      const uint16_t want = test::reference_sum({&piece});
      const uint16_t got = __builtin_bswap16(csum_fold(csum_add(0, &buf[align], len)));
      ASSERT_EQ(got, want) << "align " << align << " len " << len;
    }
  }
  Bytes ones = {0xFF, 0xFF};
  EXPECT_EQ(csum_finish(csum_add(0, ones.data(), 2)), 0);
  EXPECT_EQ(udp_csum_finish(csum_add(0, ones.data(), 2)), 0xFFFF);
  EXPECT_EQ(__builtin_bswap16(csum_fold(csum_add_u16(0, 0x1234))), 0x1234);
}

}  // namespace
}  // namespace gtm::packet
