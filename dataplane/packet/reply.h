// Turning a query frame into its answer in place, and moving VLAN tags for the exception path.
// No DPDK.
//
// The engine has already written the DNS response over the query, at the same offset. What is left
// is to address the frame back to the client: MACs, IP addresses and UDP ports swapped, lengths,
// TTL/hop limit, and the IPv4 header and UDP checksums, computed here or left to the NIC.
#pragma once

#include <cstdint>
#include <cstring>

#include "dataplane/packet/checksum.h"
#include "dataplane/packet/classify.h"

namespace gtm::packet {

inline constexpr uint8_t kReplyTtl = 64;

struct TxChecksums {
  // The NIC computes the IPv4 header checksum: the field is left 0.
  bool ipv4_offload = false;
  // The NIC computes the UDP checksum: the field holds the pseudo-header sum, as DPDK's
  // RTE_MBUF_F_TX_UDP_CKSUM contract asks.
  bool udp_offload = false;
};

// Rewrites the headers of a frame classified kDns (`info`) whose DNS message at info.dns has been
// replaced by `dns_len` octets of response, and returns the reply's frame length. VLAN tags stay
// as they are: the answer leaves on the VLAN the query came from. `our_mac` becomes the source.
// Inline (below) so that the lcore's reply pass runs it without a call.
inline uint32_t make_reply(uint8_t* frame, const FrameInfo& info, uint32_t dns_len,
                           const uint8_t our_mac[6], TxChecksums checksums);

// The exception interface is untagged: the kernel sees one plain Ethernet link per port. Removes
// `count` tags by moving the MAC addresses over them; the untagged frame starts at
// frame + count * kVlanTagLen, which is returned as that offset.
uint32_t strip_vlan_tags(uint8_t* frame, uint8_t count);

// The reverse for a frame from the kernel: `frame` points port.vlan_count * kVlanTagLen octets
// before an untagged frame; moves the MACs there and writes the port's tags behind them.
void insert_vlan_tags(uint8_t* frame, const PortFilter& port);

// Every header field is written as part of a whole word composed in registers (one 8-octet store
// per 8 octets of header), and the checksums are computed from those words, never by reading the
// fresh headers back: a load over a run of narrower stores cannot be forwarded from the store
// buffer and waits for it. Words are little-endian images of the wire bytes ("raw"), which the
// one's-complement sum accepts as they are (checksum.h); only the two lengths are byte-swapped,
// with swap16 (in registers; __builtin_bswap16 went through the stack). The one pass over data is
// the answer's sum, which the engine wrote just before.
inline uint32_t make_reply(uint8_t* frame, const FrameInfo& info, uint32_t dns_len,
                           const uint8_t our_mac[6], TxChecksums checksums) {
  uint8_t* ip = frame + info.l3;
  uint8_t* udp = frame + info.l4;
  const uint16_t udp_len = static_cast<uint16_t>(kUdpHeaderLen + dns_len);
  const uint64_t udp_len_raw = swap16(udp_len);
  uint32_t ports;
  std::memcpy(&ports, udp, 4);
  // Source and destination swapped: the halves of the word trade places, their sum stays.
  const uint32_t reply_ports = ports >> 16 | ports << 16;
  // The pseudo header but the addresses (added below): protocol, UDP length. Small values: plain
  // additions cannot carry out of 64 bits.
  uint64_t pseudo = (uint64_t{kIpProtoUdp} << 8) + udp_len_raw;

  if (info.ip_version == 4) {
    uint64_t addrs;  // source, then destination
    std::memcpy(&addrs, ip + 12, 8);
    const uint32_t src = static_cast<uint32_t>(addrs);
    const uint32_t dst = static_cast<uint32_t>(addrs >> 32);
    pseudo = csum_add64(pseudo, addrs);
    const uint32_t total = kIpv4HeaderLen + udp_len;
    // Version/IHL 0x45, TOS 0 (DSCP/ECN of the query say nothing about the answer), total
    // length, ID 0 and DF (RFC 6864 section 4.1: answers are at most 1232 octets, never
    // fragmented); then TTL, protocol, checksum and the new source.
    const uint64_t word0 =
        0x45u | uint64_t{swap16(static_cast<uint16_t>(total))} << 16 | uint64_t{0x40} << 48;
    uint64_t header_csum = 0;
    if (!checksums.ipv4_offload) {
      header_csum = csum_finish(csum_add64(word0 + (kReplyTtl | kIpProtoUdp << 8), addrs));
    }
    const uint64_t word1 = kReplyTtl | kIpProtoUdp << 8 | header_csum << 16 | uint64_t{dst} << 32;
    std::memcpy(ip, &word0, 8);
    std::memcpy(ip + 8, &word1, 8);
    std::memcpy(ip + 16, &src, 4);
  } else {
    // The addresses are read before they are moved; swapping them leaves their sum alone.
    uint8_t* a = ip + 8;
    uint64_t s0, s1, d0, d1;
    std::memcpy(&s0, a, 8);
    std::memcpy(&s1, a + 8, 8);
    std::memcpy(&d0, a + 16, 8);
    std::memcpy(&d1, a + 24, 8);
    pseudo = csum_add64(csum_add64(pseudo, s0), csum_add64(s1, csum_add64(d0, d1)));
    // Version 6, traffic class and flow label 0 (the answer is a new flow of one packet), payload
    // length, next header, hop limit.
    const uint64_t word0 =
        0x60u | udp_len_raw << 32 | uint64_t{kIpProtoUdp} << 48 | uint64_t{kReplyTtl} << 56;
    std::memcpy(ip, &word0, 8);
    std::memcpy(a, &d0, 8);
    std::memcpy(a + 8, &d1, 8);
    std::memcpy(a + 16, &s0, 8);
    std::memcpy(a + 24, &s1, 8);
  }

  uint64_t udp_csum;
  if (checksums.udp_offload) {
    // The NIC wants the pseudo header's sum: addresses, protocol and UDP length.
    udp_csum = csum_fold(pseudo);
  } else {
    // The UDP header but its checksum (ports, length), then the answer.
    const uint64_t header = csum_add64(pseudo, uint64_t{ports} + udp_len_raw);
    udp_csum = udp_csum_finish(csum_add(header, udp + kUdpHeaderLen, dns_len));
  }
  const uint64_t udp_word = reply_ports | udp_len_raw << 32 | udp_csum << 48;
  std::memcpy(udp, &udp_word, 8);

  // The query's destination MAC may have been a group address; the answer comes from ours. The
  // client's MAC moves to the front, ours follows: an 8-octet and a 4-octet store.
  uint64_t client;
  std::memcpy(&client, frame + 6, 8);
  client &= 0xFFFFFFFFFFFFull;
  uint16_t ours_head;
  uint32_t ours_tail;
  std::memcpy(&ours_head, our_mac, 2);
  std::memcpy(&ours_tail, our_mac + 2, 4);
  const uint64_t mac_word = client | uint64_t{ours_head} << 48;
  std::memcpy(frame, &mac_word, 8);
  std::memcpy(frame + 8, &ours_tail, 4);
  return info.l4 + udp_len;
}

}  // namespace gtm::packet
