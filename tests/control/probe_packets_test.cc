#include "control/monitor/probe_packets.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

namespace gtm::control::probe_packets {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes hex(const char* text) {
  Bytes out;
  for (size_t i = 0; text[i] != 0 && text[i + 1] != 0; i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(text + i, 2), nullptr, 16)));
  }
  return out;
}

sockaddr_storage addr(const char* text) {
  sockaddr_storage ss{};
  if (std::strchr(text, ':') != nullptr) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    EXPECT_EQ(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    EXPECT_EQ(inet_pton(AF_INET, text, &sin->sin_addr), 1);
  }
  return ss;
}

// An IPv4 header (20 bytes, or with `options` bytes of options) in front of `payload`.
Bytes ipv4(uint8_t protocol, const Bytes& payload, size_t options = 0, uint16_t frag = 0) {
  Bytes p(20 + options, 0);
  p[0] = static_cast<uint8_t>(0x40 | (20 + options) / 4);
  p[6] = static_cast<uint8_t>(frag >> 8);
  p[7] = static_cast<uint8_t>(frag);
  p[8] = 64;
  p[9] = protocol;
  p.insert(p.end(), payload.begin(), payload.end());
  return p;
}

TEST(ProbePackets, ChecksumOfRfc1071Example) {
  const Bytes data = hex("0001f203f4f5f6f7");
  EXPECT_EQ(checksum_fold(checksum_add(0, data.data(), data.size())), 0x220D);
  // An odd length pads with a zero octet.
  const Bytes odd = hex("0001f203f4f5f6");
  EXPECT_EQ(checksum_fold(checksum_add(0, odd.data(), odd.size())),
            checksum_fold(checksum_add(0, hex("0001f203f4f5f600").data(), 8)));
}

TEST(ProbePackets, EchoRequestMatchesAnIndependentEncoder) {
  // The same request as scapy's ICMP(type=8, id=0x1234, seq=7) / payload.
  const EchoTag tag{0x0001020304050607ull, 0x08090A0B, 0x0C0D0E0F, 0x1011};
  Bytes out(kEchoSize);
  build_echo_request(false, 0x1234, 7, tag, out.data());
  EXPECT_EQ(out, hex("08009d7312340007000102030405060708090a0b0c0d0e0f1011000000000000"));
  // ICMPv6: type 128, checksum left to the kernel.
  build_echo_request(true, 0x1234, 7, tag, out.data());
  EXPECT_EQ(out[0], kIcmp6EchoRequest);
  EXPECT_EQ(out[2], 0);
  EXPECT_EQ(out[3], 0);
}

// The reply a host sends back: the request with the type changed (and a new checksum).
Bytes echo_reply(bool v6, uint16_t ident, const EchoTag& tag) {
  Bytes icmp(kEchoSize);
  build_echo_request(v6, ident, 1, tag, icmp.data());
  icmp[0] = v6 ? kIcmp6EchoReply : kIcmpEchoReply;
  return v6 ? icmp : ipv4(IPPROTO_ICMP, icmp);
}

TEST(ProbePackets, EchoReplyParsesBackToItsTag) {
  const EchoTag tag{0xA1B2C3D4E5F60718ull, 4242, 17, 2};
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "v6" : "v4");
    const Bytes reply = echo_reply(v6, 0xBEEF, tag);
    EchoTag got;
    ASSERT_TRUE(parse_echo_reply(v6, reply.data(), reply.size(), 0xBEEF, tag.cookie, &got));
    EXPECT_EQ(got.target, 4242u);
    EXPECT_EQ(got.serial, 17u);
    EXPECT_EQ(got.number, 2u);
    // Someone else's ping (identifier or cookie), and every truncation, are refused.
    EXPECT_FALSE(parse_echo_reply(v6, reply.data(), reply.size(), 0xBEEE, tag.cookie, &got));
    EXPECT_FALSE(parse_echo_reply(v6, reply.data(), reply.size(), 0xBEEF, tag.cookie ^ 1, &got));
    for (size_t len = 0; len < reply.size(); ++len) {
      EXPECT_FALSE(parse_echo_reply(v6, reply.data(), len, 0xBEEF, tag.cookie, &got)) << len;
    }
    // Our own request (seen on loopback) is not a reply.
    Bytes request = reply;
    request[v6 ? 0 : 20] = v6 ? kIcmp6EchoRequest : kIcmpEchoRequest;
    EXPECT_FALSE(parse_echo_reply(v6, request.data(), request.size(), 0xBEEF, tag.cookie, &got));
  }
}

TEST(ProbePackets, EchoReplyIpv4HeaderChecks) {
  const EchoTag tag{7, 1, 1, 0};
  Bytes icmp(kEchoSize);
  build_echo_request(false, 9, 1, tag, icmp.data());
  icmp[0] = kIcmpEchoReply;
  EchoTag got;
  const Bytes with_options = ipv4(IPPROTO_ICMP, icmp, 8);
  EXPECT_TRUE(parse_echo_reply(false, with_options.data(), with_options.size(), 9, 7, &got));
  const Bytes fragment = ipv4(IPPROTO_ICMP, icmp, 0, 0x0010);
  EXPECT_FALSE(parse_echo_reply(false, fragment.data(), fragment.size(), 9, 7, &got));
  const Bytes udp = ipv4(IPPROTO_UDP, icmp);
  EXPECT_FALSE(parse_echo_reply(false, udp.data(), udp.size(), 9, 7, &got));
  Bytes short_ihl = ipv4(IPPROTO_ICMP, icmp);
  short_ihl[0] = 0x44;
  EXPECT_FALSE(parse_echo_reply(false, short_ihl.data(), short_ihl.size(), 9, 7, &got));
  Bytes v6_version = ipv4(IPPROTO_ICMP, icmp);
  v6_version[0] = 0x65;
  EXPECT_FALSE(parse_echo_reply(false, v6_version.data(), v6_version.size(), 9, 7, &got));
}

TEST(ProbePackets, SynMatchesAnIndependentEncoder) {
  // scapy: TCP(sport=40000, dport=80, seq=0x01020304, flags='S', window=65535,
  //            options=[('MSS', 1460)]) under IP(src=192.0.2.1, dst=198.51.100.7)
  Bytes out(kSynSize);
  ASSERT_EQ(build_syn(addr("192.0.2.1"), addr("198.51.100.7"), 40000, 80, 0x01020304, out.data()),
            kSynSize);
  EXPECT_EQ(out, hex("9c40005001020304000000006002ffff0b540000020405b4"));
  ASSERT_EQ(build_syn(addr("2001:db8::1"), addr("2001:db8::2"), 40000, 443, 0xDEADBEEF, out.data()),
            kSynSize);
  EXPECT_EQ(out, hex("9c4001bbdeadbeef000000006002ffff01190000020405b4"));
  EXPECT_EQ(build_syn(addr("192.0.2.1"), addr("2001:db8::2"), 1, 2, 3, out.data()), 0u);
}

TEST(ProbePackets, SequenceNumbersNameTheProbe) {
  for (uint32_t secret : {0u, 0x9E3779B9u, 0xFFFFFFFFu}) {
    for (uint32_t target : {0u, 1u, 4242u, kMaxHalfOpenTargets - 1}) {
      for (uint32_t serial : {0u, 1u, 255u, 256u, 70000u}) {
        uint32_t t = 0;
        uint8_t s = 0;
        decode_ack(syn_sequence(target, serial, secret) + 1, secret, &t, &s);
        EXPECT_EQ(t, target);
        EXPECT_EQ(s, static_cast<uint8_t>(serial));
      }
    }
  }
}

// A TCP header from the target (port 80) to us (port 50000) with these flags.
Bytes tcp_segment(uint8_t flags, uint32_t ack) {
  Bytes t(20, 0);
  t[0] = 0;
  t[1] = 80;
  t[2] = 50000 >> 8;
  t[3] = 50000 & 0xFF;
  t[8] = static_cast<uint8_t>(ack >> 24);
  t[9] = static_cast<uint8_t>(ack >> 16);
  t[10] = static_cast<uint8_t>(ack >> 8);
  t[11] = static_cast<uint8_t>(ack);
  t[12] = 5 << 4;
  t[13] = flags;
  return t;
}

TEST(ProbePackets, TcpRepliesThatAnswerASyn) {
  struct Case {
    uint8_t flags;
    bool accepted, syn_ack;
  };
  // FIN 1, SYN 2, RST 4, PSH 8, ACK 16.
  const Case cases[] = {{0x12, true, true},   {0x14, true, false},  {0x1A, true, true},
                        {0x02, false, false}, {0x10, false, false}, {0x04, false, false},
                        {0x13, false, false}, {0x16, false, false}, {0x11, false, false}};
  for (const Case& c : cases) {
    for (bool v6 : {false, true}) {
      SCOPED_TRACE(testing::Message() << "flags " << int(c.flags) << (v6 ? " v6" : " v4"));
      const Bytes seg = tcp_segment(c.flags, 0x01020305);
      const Bytes pkt = v6 ? seg : ipv4(IPPROTO_TCP, seg);
      TcpReply r;
      ASSERT_EQ(parse_tcp_reply(v6, pkt.data(), pkt.size(), &r), c.accepted);
      if (!c.accepted) continue;
      EXPECT_EQ(r.syn_ack, c.syn_ack);
      EXPECT_EQ(r.rst, !c.syn_ack);
      EXPECT_EQ(r.sport, 80);
      EXPECT_EQ(r.dport, 50000);
      EXPECT_EQ(r.ack, 0x01020305u);
      for (size_t len = 0; len < pkt.size(); ++len) {
        EXPECT_FALSE(parse_tcp_reply(v6, pkt.data(), len, &r)) << len;
      }
    }
  }
  const Bytes fragment = ipv4(IPPROTO_TCP, tcp_segment(0x12, 1), 0, 0x0001);
  TcpReply r;
  EXPECT_FALSE(parse_tcp_reply(false, fragment.data(), fragment.size(), &r));
  Bytes bad_offset = tcp_segment(0x12, 1);
  bad_offset[12] = 4 << 4;
  EXPECT_FALSE(parse_tcp_reply(true, bad_offset.data(), bad_offset.size(), &r));
}

TEST(ProbePackets, FiltersAreWellFormed) {
  // The kernel checks the programs on attach (tests/control/raw_prober_test.cc attaches them);
  // here: every jump lands inside the program and it ends in a return.
  for (bool v6 : {false, true}) {
    for (const std::vector<sock_filter>& f :
         {echo_reply_filter(v6, 0x1234), tcp_reply_filter(v6, 40000, 40063)}) {
      ASSERT_FALSE(f.empty());
      EXPECT_EQ(BPF_CLASS(f.back().code), BPF_RET);
      for (size_t i = 0; i < f.size(); ++i) {
        if (BPF_CLASS(f[i].code) != BPF_JMP) continue;
        EXPECT_LT(i + 1 + f[i].jt, f.size()) << i;
        EXPECT_LT(i + 1 + f[i].jf, f.size()) << i;
      }
    }
  }
}

}  // namespace
}  // namespace gtm::control::probe_packets
