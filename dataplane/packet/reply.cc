#include "dataplane/packet/reply.h"

#include <cstring>

#include "dataplane/packet/checksum.h"

namespace gtm::packet {

namespace {

inline void store_be16(uint8_t* p, uint16_t v) {
  v = __builtin_bswap16(v);
  std::memcpy(p, &v, 2);
}

inline void store_raw16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

template <size_t N>
inline void swap_bytes(uint8_t* a, uint8_t* b) {
  uint8_t t[N];
  std::memcpy(t, a, N);
  std::memcpy(a, b, N);
  std::memcpy(b, t, N);
}

}  // namespace

uint32_t make_reply(uint8_t* frame, const FrameInfo& info, uint32_t dns_len,
                    const uint8_t our_mac[6], TxChecksums checksums) {
  // The query's destination MAC may have been a group address; the answer comes from ours.
  std::memcpy(frame, frame + 6, 6);
  std::memcpy(frame + 6, our_mac, 6);

  uint8_t* ip = frame + info.l3;
  uint8_t* udp = frame + info.l4;
  const uint16_t udp_len = static_cast<uint16_t>(kUdpHeaderLen + dns_len);
  swap_bytes<2>(udp, udp + 2);
  store_be16(udp + 4, udp_len);
  store_raw16(udp + 6, 0);

  uint64_t pseudo;
  if (info.ip_version == 4) {
    swap_bytes<4>(ip + 12, ip + 16);
    ip[1] = 0;  // DSCP/ECN of the query say nothing about the answer
    store_be16(ip + 2, static_cast<uint16_t>(kIpv4HeaderLen + udp_len));
    // DF with ID 0 (RFC 6864 section 4.1): answers are at most 1232 octets, never fragmented.
    store_be16(ip + 4, 0);
    store_be16(ip + 6, 0x4000);
    ip[8] = kReplyTtl;
    store_raw16(ip + 10, 0);
    if (!checksums.ipv4_offload) store_raw16(ip + 10, csum_finish(csum_add(0, ip, 20)));
    pseudo = csum_add(0, ip + 12, 8);
  } else {
    swap_bytes<16>(ip + 8, ip + 24);
    // Version 6, traffic class and flow label 0: the answer is a new flow of one packet.
    const uint8_t vtf[4] = {0x60, 0, 0, 0};
    std::memcpy(ip, vtf, 4);
    store_be16(ip + 4, udp_len);
    ip[7] = kReplyTtl;
    pseudo = csum_add(0, ip + 8, 32);
  }
  pseudo = csum_add_u16(pseudo, kIpProtoUdp);
  pseudo = csum_add_u16(pseudo, udp_len);
  if (checksums.udp_offload) {
    store_raw16(udp + 6, csum_fold(pseudo));
  } else {
    store_raw16(udp + 6, udp_csum_finish(csum_add(pseudo, udp, udp_len)));
  }
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
    store_be16(tag, port.vlan_tpid[i]);
    store_be16(tag + 2, port.vlan_id[i]);
  }
}

}  // namespace gtm::packet
