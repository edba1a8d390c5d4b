#include "dataplane/packet/classify.h"

#include <gtest/gtest.h>

#include <memory>

#include "tests/dataplane/packet/frame_builder.h"

namespace gtm::packet {
namespace {

using test::build_frame;
using test::Bytes;
using test::FrameSpec;

class ClassifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(port_.mac, mac, 6);
    ASSERT_TRUE(port_.addrs.add_v4(test::parse_addr("198.18.0.1").data()));
    ASSERT_TRUE(port_.addrs.add_v4(test::parse_addr("198.18.0.2").data()));
    ASSERT_TRUE(port_.addrs.add_v6(test::parse_addr("2001:db8::53").data()));
  }

  FrameSpec query4() const {
    FrameSpec s;
    s.payload = test::dns_query("www.gtm.example", 1);
    return s;
  }
  FrameSpec query6() const {
    FrameSpec s = query4();
    s.src = "2001:db8:1::10";
    s.dst = "2001:db8::53";
    return s;
  }

  // Classifies an exact-size heap copy, so ASan sees any read past the frame.
  Verdict run(const Bytes& frame, bool verify = true) {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[frame.size() + (frame.empty() ? 1 : 0)]);
    if (!frame.empty()) std::memcpy(copy.get(), frame.data(), frame.size());
    info_ = FrameInfo{};
    return classify(copy.get(), static_cast<uint32_t>(frame.size()), port_, verify, &info_);
  }

  void expect_drop(const Bytes& frame, DropReason reason) {
    EXPECT_EQ(run(frame), Verdict::kDrop);
    EXPECT_EQ(info_.reason, reason);
  }

  PortFilter port_;
  FrameInfo info_;
};

TEST_F(ClassifyTest, Ipv4QueryToServiceAddressIsDns) {
  FrameSpec s = query4();
  ASSERT_EQ(run(build_frame(s)), Verdict::kDns);
  EXPECT_EQ(info_.ip_version, 4);
  EXPECT_EQ(info_.vlan_count, 0);
  EXPECT_EQ(info_.l3, 14);
  EXPECT_EQ(info_.l4, 34);
  EXPECT_EQ(info_.dns, 42);
  EXPECT_EQ(info_.dns_len, s.payload.size());
  s.dst = "198.18.0.2";
  EXPECT_EQ(run(build_frame(s)), Verdict::kDns);
}

TEST_F(ClassifyTest, EthernetPaddingIsNotPartOfTheQuery) {
  FrameSpec s = query4();
  s.payload = {0x12, 0x34};  // a 2-byte "query": the frame is padded to 60 octets
  Bytes f = build_frame(s);
  ASSERT_EQ(f.size(), 60u);
  ASSERT_EQ(run(f), Verdict::kDns);
  EXPECT_EQ(info_.dns_len, 2);
}

TEST_F(ClassifyTest, Ipv6QueryToServiceAddressIsDns) {
  FrameSpec s = query6();
  ASSERT_EQ(run(build_frame(s)), Verdict::kDns);
  EXPECT_EQ(info_.ip_version, 6);
  EXPECT_EQ(info_.l4, 54);
  EXPECT_EQ(info_.dns, 62);
  EXPECT_EQ(info_.dns_len, s.payload.size());
}

TEST_F(ClassifyTest, NonDnsGoesToTheKernel) {
  FrameSpec s = query4();
  s.dport = 5353;
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "other UDP port";
  s = query4();
  s.dst = "198.18.0.99";
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "not a service address";
  s = query4();
  s.proto = 6;
  s.payload.assign(20, 0);
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "TCP";
  s.proto = 1;
  s.payload = {8, 0, 0, 0, 0, 1, 0, 1};
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "ICMP echo";
  s = query6();
  s.proto = 58;
  s.payload.assign(24, 0);
  s.dst = "ff02::1:ff00:53";
  s.dst_mac[0] = 0x33;  // multicast MAC of the solicited-node address
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "neighbour solicitation";
  s = query6();
  s.dst = "2001:db8::54";
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "IPv6, not a service address";

  Bytes arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06};
  arp.resize(60, 0);
  EXPECT_EQ(run(arp), Verdict::kException) << "ARP";
}

TEST_F(ClassifyTest, OptionsAndFragmentsGoToTheKernel) {
  FrameSpec s = query4();
  s.ipv4_ihl = 6;
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "IPv4 options";
  s = query4();
  s.ipv4_frag = 0x2000;  // MF
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "first fragment";
  s.ipv4_frag = 0x0010;  // offset 128
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "later fragment";
  s.ipv4_frag = 0x4000;  // DF only: not a fragment
  EXPECT_EQ(run(build_frame(s)), Verdict::kDns);
  s = query6();
  s.proto = 44;  // fragment header
  s.payload.assign(40, 0);
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "IPv6 fragment header";
  s.proto = 0;  // hop-by-hop options
  EXPECT_EQ(run(build_frame(s)), Verdict::kException) << "IPv6 hop-by-hop";
}

TEST_F(ClassifyTest, MacFilter) {
  FrameSpec s = query4();
  s.dst_mac[5] = 0x77;
  expect_drop(build_frame(s), DropReason::not_our_mac);
  std::memset(s.dst_mac, 0xff, 6);
  EXPECT_EQ(run(build_frame(s)), Verdict::kDns) << "broadcast is accepted";
}

TEST_F(ClassifyTest, VlanTags) {
  FrameSpec s = query4();
  s.tags = {{0x8100, 100}};
  expect_drop(build_frame(s), DropReason::vlan);  // the port is untagged

  port_.vlan_count = 1;
  port_.vlan_id[0] = 100;
  ASSERT_EQ(run(build_frame(s)), Verdict::kDns);
  EXPECT_EQ(info_.vlan_count, 1);
  EXPECT_EQ(info_.l3, 18);
  s.tags = {{0x8100, 0x6000 | 100}};  // priority bits do not matter
  EXPECT_EQ(run(build_frame(s)), Verdict::kDns);
  s.tags = {{0x8100, 101}};
  expect_drop(build_frame(s), DropReason::vlan);
  s.tags = {};
  expect_drop(build_frame(s), DropReason::vlan);

  port_.vlan_count = 2;
  port_.vlan_tpid[0] = 0x88A8;
  port_.vlan_id[0] = 10;
  port_.vlan_id[1] = 100;
  for (uint16_t outer : {0x88A8, 0x9100, 0x8100}) {
    s.tags = {{outer, 10}, {0x8100, 100}};
    ASSERT_EQ(run(build_frame(s)), Verdict::kDns) << outer;
    EXPECT_EQ(info_.vlan_count, 2);
    EXPECT_EQ(info_.l3, 22);
  }
  s.tags = {{0x88A8, 10}, {0x8100, 101}};
  expect_drop(build_frame(s), DropReason::vlan);
  s.tags = {{0x88A8, 10}, {0x8100, 100}, {0x8100, 1}};
  expect_drop(build_frame(s), DropReason::vlan);

  // ARP on the port's VLAN goes to the kernel; its tags are stripped there (reply.h).
  Bytes arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2,    0, 0,   0,    0,
               2,    0x88, 0xa8, 0,    10,   0x81, 0x00, 0, 100, 0x08, 0x06};
  arp.resize(64, 0);
  EXPECT_EQ(run(arp), Verdict::kException);
  EXPECT_EQ(info_.vlan_count, 2);
}

TEST_F(ClassifyTest, BrokenHeadersAreDropped) {
  expect_drop(Bytes(13, 0), DropReason::runt);
  Bytes tagged = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0, 1};
  expect_drop(tagged, DropReason::runt);

  Bytes f = build_frame(query4());
  f[14] = 0x55;  // version 5
  expect_drop(f, DropReason::bad_ipv4);
  f = build_frame(query4());
  f[14] = 0x44;  // IHL 4
  expect_drop(f, DropReason::bad_ipv4);
  f = build_frame(query4());
  test::set16(&f[16], 2000);  // total length past the frame
  expect_drop(f, DropReason::bad_ipv4);
  f.resize(14 + 19);
  expect_drop(f, DropReason::bad_ipv4);

  FrameSpec s = query4();
  s.good_ip_checksum = false;
  expect_drop(build_frame(s), DropReason::bad_ipv4);
  EXPECT_EQ(run(build_frame(s), /*verify=*/false), Verdict::kDns) << "the NIC checked it";

  f = build_frame(query4());
  test::set16(&f[14 + 20 + 4], 7);  // UDP length below its header
  expect_drop(f, DropReason::bad_udp);
  test::set16(&f[14 + 20 + 4], 500);  // UDP length past the IP payload
  expect_drop(f, DropReason::bad_udp);

  f = build_frame(query6());
  test::set16(&f[14 + 4], 1000);  // payload length past the frame
  expect_drop(f, DropReason::bad_ipv6);
  f[14] = 0x40;
  test::set16(&f[14 + 4], 8);
  expect_drop(f, DropReason::bad_ipv6);  // version 4 in an IPv6 ethertype
  f.resize(14 + 39);
  expect_drop(f, DropReason::bad_ipv6);

  s = query6();
  s.udp_checksum = false;
  expect_drop(build_frame(s), DropReason::bad_udp);
  s = query4();
  s.udp_checksum = false;
  EXPECT_EQ(run(build_frame(s)), Verdict::kDns) << "no checksum is allowed over IPv4";
}

TEST_F(ClassifyTest, UnanswerableSourcesAreDropped) {
  for (const char* src : {"0.0.0.0", "127.0.0.1", "224.0.0.251", "255.255.255.255"}) {
    FrameSpec s = query4();
    s.src = src;
    expect_drop(build_frame(s), DropReason::bad_source);
  }
  for (const char* src : {"::", "::1", "ff02::fb"}) {
    FrameSpec s = query6();
    s.src = src;
    expect_drop(build_frame(s), DropReason::bad_source);
  }
  FrameSpec s = query4();
  s.sport = 0;
  expect_drop(build_frame(s), DropReason::bad_source);
}

// Every prefix of every kind of frame: never a read past the end (ASan), and a DNS verdict only
// when the whole message lies inside the prefix.
TEST_F(ClassifyTest, TruncatedFramesAreSafe) {
  port_.vlan_count = 1;
  port_.vlan_id[0] = 7;
  std::vector<FrameSpec> specs = {query4(), query6()};
  for (FrameSpec& s : specs) {
    s.tags = {{0x8100, 7}};
    s.pad_to = 0;
  }
  for (const FrameSpec& s : specs) {
    const Bytes full = build_frame(s);
    for (size_t len = 0; len <= full.size(); ++len) {
      const Bytes prefix(full.begin(), full.begin() + static_cast<long>(len));
      const Verdict v = run(prefix);
      if (v == Verdict::kDns) {
        EXPECT_EQ(len, full.size());
        EXPECT_LE(info_.dns + info_.dns_len, len);
      }
    }
  }
}

bool same_dns_info(const FrameInfo& a, const FrameInfo& b) {
  return a.l3 == b.l3 && a.l4 == b.l4 && a.dns == b.dns && a.dns_len == b.dns_len &&
         a.ip_version == b.ip_version && a.vlan_count == b.vlan_count;
}

// The fast path takes the common shape (IPv4 without options, unfragmented, the port's tags) and
// leaves everything else to the general path, without touching *info.
TEST_F(ClassifyTest, FastPathTakesTheCommonShapeOnly) {
  auto fast = [&](const Bytes& frame, bool verify = true) {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[frame.size() + 1]);
    std::memcpy(copy.get(), frame.data(), frame.size());
    info_ = FrameInfo{};
    info_.l3 = 0xBEEF;
    const bool taken =
        classify_fast_ipv4(copy.get(), static_cast<uint32_t>(frame.size()), port_, verify, &info_);
    EXPECT_EQ(taken, info_.l3 != 0xBEEF) << "*info is written exactly when the path is taken";
    return taken;
  };
  FrameSpec s = query4();
  ASSERT_TRUE(fast(build_frame(s)));
  EXPECT_EQ(info_.l3, 14);
  EXPECT_EQ(info_.l4, 34);
  EXPECT_EQ(info_.dns, 42);
  EXPECT_EQ(info_.dns_len, s.payload.size());
  s.ipv4_frag = 0x4000;  // DF
  EXPECT_TRUE(fast(build_frame(s)));
  std::memset(s.dst_mac, 0xff, 6);
  EXPECT_TRUE(fast(build_frame(s))) << "broadcast";
  s.good_ip_checksum = false;
  EXPECT_FALSE(fast(build_frame(s))) << "bad header checksum";
  EXPECT_TRUE(fast(build_frame(s), false)) << "the NIC checked it";

  const std::vector<std::pair<const char*, FrameSpec>> others = [&] {
    std::vector<std::pair<const char*, FrameSpec>> v;
    v.emplace_back("IPv6", query6());
    v.emplace_back("options", query4());
    v.back().second.ipv4_ihl = 6;
    v.emplace_back("first fragment", query4());
    v.back().second.ipv4_frag = 0x2000;
    v.emplace_back("later fragment", query4());
    v.back().second.ipv4_frag = 0x0001;
    v.emplace_back("TCP", query4());
    v.back().second.proto = 6;
    v.emplace_back("other port", query4());
    v.back().second.dport = 5353;
    v.emplace_back("other address", query4());
    v.back().second.dst = "198.18.0.3";
    v.emplace_back("source port 0", query4());
    v.back().second.sport = 0;
    v.emplace_back("loopback source", query4());
    v.back().second.src = "127.0.0.1";
    v.emplace_back("multicast source", query4());
    v.back().second.src = "224.0.0.1";
    v.emplace_back("zero-net source", query4());
    v.back().second.src = "0.1.2.3";
    v.emplace_back("other MAC", query4());
    v.back().second.dst_mac[0] = 0x04;
    v.emplace_back("a tag on an untagged port", query4());
    v.back().second.tags = {{0x8100, 0}};
    return v;
  }();
  for (const auto& [what, spec] : others) {
    EXPECT_FALSE(fast(build_frame(spec))) << what;
    EXPECT_EQ(info_.l3, 0xBEEF) << what;
  }
  Bytes frame = build_frame(query4());
  test::set16(&frame[38], 300);  // UDP length past the IP total length
  EXPECT_FALSE(fast(frame));
  frame = build_frame(query4());
  frame.resize(41);
  EXPECT_FALSE(fast(frame)) << "truncated UDP header";

  port_.vlan_count = 2;
  port_.vlan_tpid[0] = 0x88A8;
  port_.vlan_id[0] = 10;
  port_.vlan_id[1] = 100;
  s = query4();
  s.tags = {{0x88A8, 0xE000 | 10}, {0x8100, 0x1000 | 100}};  // PCP and DEI bits do not matter
  ASSERT_TRUE(fast(build_frame(s)));
  EXPECT_EQ(info_.vlan_count, 2);
  EXPECT_EQ(info_.l3, 22);
  s.tags = {{0x9100, 10}, {0x8100, 100}};  // another outer TPID: the general path accepts it
  EXPECT_FALSE(fast(build_frame(s)));
  EXPECT_EQ(run(build_frame(s)), Verdict::kDns);
  s.tags = {{0x88A8, 10}, {0x8100, 101}};
  EXPECT_FALSE(fast(build_frame(s)));
  s.tags = {{0x88A8, 10}};
  EXPECT_FALSE(fast(build_frame(s)));
}

// Every one-octet change (and every truncation) of a set of frames, on an untagged, an 802.1Q
// and a QinQ port, with and without checksum verification: whenever the fast path takes a frame,
// the general path finds it DNS with the same FrameInfo, and classify() says what the general
// path says.
TEST_F(ClassifyTest, FastPathAgreesWithTheGeneralPath) {
  struct PortCase {
    uint8_t count;
    uint16_t tpid0;
    std::vector<std::pair<uint16_t, uint16_t>> tags;
  };
  const std::vector<PortCase> cases = {
      {0, 0x8100, {}}, {1, 0x8100, {{0x8100, 7}}}, {2, 0x88A8, {{0x88A8, 10}, {0x8100, 7}}}};
  uint64_t fast_taken = 0, compared = 0;
  for (const PortCase& pc : cases) {
    port_.vlan_count = pc.count;
    port_.vlan_tpid[0] = pc.tpid0;
    port_.vlan_id[0] = pc.count == 2 ? 10 : 7;
    port_.vlan_id[1] = 7;
    std::vector<FrameSpec> specs = {query4(), query6(), query4()};
    specs[2].pad_to = 0;
    specs[2].ipv4_frag = 0x4000;
    for (FrameSpec& s : specs) s.tags = pc.tags;
    for (const FrameSpec& s : specs) {
      const Bytes base = build_frame(s);
      std::vector<Bytes> variants;
      for (size_t len = 0; len < base.size(); ++len) {
        variants.emplace_back(base.begin(), base.begin() + static_cast<long>(len));
      }
      for (size_t i = 0; i < base.size() && i < 80; ++i) {
        const uint8_t o = base[i];
        for (uint8_t v : {uint8_t{0}, uint8_t{1}, uint8_t{0x45}, uint8_t{0x80}, uint8_t{0xFF},
                          static_cast<uint8_t>(o ^ 1), static_cast<uint8_t>(o ^ 0x40),
                          static_cast<uint8_t>(o ^ 0x10), static_cast<uint8_t>(o + 1)}) {
          if (v == o) continue;
          variants.push_back(base);
          variants.back()[i] = v;
        }
      }
      variants.push_back(base);
      for (const Bytes& f : variants) {
        std::unique_ptr<uint8_t[]> copy(new uint8_t[f.size() + 1]);
        if (!f.empty()) std::memcpy(copy.get(), f.data(), f.size());
        const uint32_t len = static_cast<uint32_t>(f.size());
        for (bool verify : {true, false}) {
          FrameInfo general, fast, combined;
          const Verdict g = classify_general(copy.get(), len, port_, verify, &general);
          const Verdict c = classify(copy.get(), len, port_, verify, &combined);
          ++compared;
          ASSERT_EQ(c, g) << "octet change in a frame of " << len;
          if (g == Verdict::kDns) {
            ASSERT_TRUE(same_dns_info(combined, general));
          } else if (g == Verdict::kDrop) {
            ASSERT_EQ(combined.reason, general.reason);
          } else {
            ASSERT_EQ(combined.vlan_count, general.vlan_count);
          }
          if (classify_fast_ipv4(copy.get(), len, port_, verify, &fast)) {
            ++fast_taken;
            ASSERT_EQ(g, Verdict::kDns);
            ASSERT_TRUE(same_dns_info(fast, general));
          }
        }
      }
    }
  }
  EXPECT_GT(fast_taken, 1000u);  // the sweep does exercise the fast path
  EXPECT_GT(compared, 10000u);
}

TEST(ServiceAddrsTest, AddAndFind) {
  ServiceAddrs a;
  const Bytes v4 = test::parse_addr("192.0.2.1");
  const Bytes v6 = test::parse_addr("2001:db8::1");
  EXPECT_FALSE(a.has_v4(v4.data()));
  EXPECT_TRUE(a.add_v4(v4.data()));
  EXPECT_TRUE(a.add_v4(v4.data()));  // duplicates are folded
  EXPECT_EQ(a.count_v4(), 1);
  EXPECT_TRUE(a.has_v4(v4.data()));
  EXPECT_FALSE(a.has_v6(v6.data()));
  EXPECT_TRUE(a.add_v6(v6.data()));
  EXPECT_TRUE(a.has_v6(v6.data()));
  Bytes other = v6;
  other[15] ^= 1;
  EXPECT_FALSE(a.has_v6(other.data()));
  for (int i = 1; i < ServiceAddrs::kMax; ++i) {
    uint8_t x[4] = {10, 0, 0, static_cast<uint8_t>(i)};
    EXPECT_TRUE(a.add_v4(x));
  }
  const uint8_t full[4] = {10, 1, 0, 0};
  EXPECT_FALSE(a.add_v4(full));
}

}  // namespace
}  // namespace gtm::packet
