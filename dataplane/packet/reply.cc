#include "dataplane/packet/reply.h"

#include <cstring>

#include "dataplane/dns/wire.h"
#include "dataplane/packet/checksum.h"

namespace gtm::packet {

namespace {

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint32_t load32_raw(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline uint16_t raw16(uint16_t host_value) {
  return __builtin_bswap16(host_value);
}

}  // namespace

// Every header field is written as part of a whole word composed in registers (one 8-octet store
// per 8 octets of header), and the checksums are computed from those words, never by reading the
// fresh headers back: a load over a run of narrower stores cannot be forwarded from the store
// buffer and waits for it. Words are little-endian images of the wire bytes ("raw"), which the
// one's-complement sum accepts as they are (checksum.h); only the two lengths are byte-swapped.
// The one pass over data is the answer's sum, which the engine wrote just before.
uint32_t make_reply(uint8_t* frame, const FrameInfo& info, uint32_t dns_len,
                    const uint8_t our_mac[6], TxChecksums checksums) {
  uint8_t* ip = frame + info.l3;
  uint8_t* udp = frame + info.l4;
  const uint16_t udp_len = static_cast<uint16_t>(kUdpHeaderLen + dns_len);
  const uint32_t ports = load32_raw(udp);
  // Source and destination swapped: the halves of the word trade places, their sum stays.
  const uint32_t reply_ports = ports >> 16 | ports << 16;
  // The pseudo header: addresses (added below), protocol, UDP length.
  uint64_t pseudo = uint64_t{raw16(kIpProtoUdp)} + raw16(udp_len);

  if (info.ip_version == 4) {
    const uint64_t addrs = load64(ip + 12);  // source, then destination
    const uint32_t src = static_cast<uint32_t>(addrs);
    const uint32_t dst = static_cast<uint32_t>(addrs >> 32);
    pseudo = csum_add64(pseudo, addrs);
    const uint16_t total = static_cast<uint16_t>(kIpv4HeaderLen + udp_len);
    // Version/IHL 0x45, TOS 0 (DSCP/ECN of the query say nothing about the answer), total
    // length, ID 0 and DF (RFC 6864 section 4.1: answers are at most 1232 octets, never
    // fragmented); then TTL, protocol, checksum and the new source.
    const uint64_t word0 = 0x45u | uint64_t{raw16(total)} << 16 | uint64_t{0x40} << 48;
    uint16_t header_csum = 0;
    if (!checksums.ipv4_offload) {
      header_csum = csum_finish(csum_add64(word0 + (kReplyTtl | kIpProtoUdp << 8), addrs));
    }
    const uint64_t word1 =
        kReplyTtl | kIpProtoUdp << 8 | uint64_t{header_csum} << 16 | uint64_t{dst} << 32;
    std::memcpy(ip, &word0, 8);
    std::memcpy(ip + 8, &word1, 8);
    std::memcpy(ip + 16, &src, 4);
  } else {
    // The addresses are read before they are moved; swapping them leaves their sum alone.
    uint8_t* a = ip + 8;
    const uint64_t s0 = load64(a), s1 = load64(a + 8), d0 = load64(a + 16), d1 = load64(a + 24);
    pseudo = csum_add64(csum_add64(pseudo, s0), csum_add64(s1, csum_add64(d0, d1)));
    // Version 6, traffic class and flow label 0 (the answer is a new flow of one packet), payload
    // length, next header, hop limit.
    const uint64_t word0 = 0x60u | uint64_t{raw16(udp_len)} << 32 | uint64_t{kIpProtoUdp} << 48 |
                           uint64_t{kReplyTtl} << 56;
    std::memcpy(ip, &word0, 8);
    std::memcpy(a, &d0, 8);
    std::memcpy(a + 8, &d1, 8);
    std::memcpy(a + 16, &s0, 8);
    std::memcpy(a + 24, &s1, 8);
  }

  uint16_t udp_csum;
  if (checksums.udp_offload) {
    // The NIC wants the pseudo header's sum: addresses, protocol and UDP length.
    udp_csum = csum_fold(pseudo);
  } else {
    // The UDP header but its checksum (ports, length), then the answer.
    const uint64_t header = csum_add64(pseudo, uint64_t{ports} + raw16(udp_len));
    udp_csum = udp_csum_finish(csum_add(header, udp + kUdpHeaderLen, dns_len));
  }
  const uint64_t udp_word = reply_ports | uint64_t{raw16(udp_len)} << 32 | uint64_t{udp_csum} << 48;
  std::memcpy(udp, &udp_word, 8);

  // The query's destination MAC may have been a group address; the answer comes from ours. The
  // client's MAC moves to the front, ours follows: an 8-octet and a 4-octet store.
  const uint64_t client = load64(frame + 6) & 0xFFFFFFFFFFFFull;
  uint16_t ours_head;
  uint32_t ours_tail;
  std::memcpy(&ours_head, our_mac, 2);
  std::memcpy(&ours_tail, our_mac + 2, 4);
  const uint64_t mac_word = client | uint64_t{ours_head} << 48;
  std::memcpy(frame, &mac_word, 8);
  std::memcpy(frame + 8, &ours_tail, 4);
  return info.l4 + udp_len;
}

uint32_t strip_vlan_tags(uint8_t* frame, uint8_t count) {
  const uint32_t shift = count * kVlanTagLen;
  if (shift != 0) std::memmove(frame + shift, frame, 12);
  return shift;
}

void insert_vlan_tags(uint8_t* frame, const PortFilter& port) {
  const uint32_t shift = port.vlan_count * kVlanTagLen;
  if (shift == 0) return;
  std::memmove(frame, frame + shift, 12);
  for (uint32_t i = 0; i < port.vlan_count; ++i) {
    uint8_t* tag = frame + 12 + i * kVlanTagLen;
    dns::store16(tag, port.vlan_tpid[i]);
    dns::store16(tag + 2, port.vlan_id[i]);
  }
}

}  // namespace gtm::packet
