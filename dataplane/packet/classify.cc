#include "dataplane/packet/classify.h"

namespace gtm::packet {

namespace {

inline Verdict drop(FrameInfo* info, DropReason reason) {
  info->reason = reason;
  return Verdict::kDrop;
}

inline bool is_vlan_tpid(uint16_t type) {
  return type == kEtherTypeVlan || type == kEtherTypeQinQ || type == kEtherTypeQinQOld;
}

// Sources an answer cannot be sent to: "this network" 0/8, loopback 127/8 (martians on a wire),
// multicast 224/4 and the reserved 240/4, which includes the limited broadcast address.
inline bool bad_ipv4_source(const uint8_t* src) {
  return src[0] == 0 || src[0] == 127 || src[0] >= 224;
}

// Multicast ff00::/8, the unspecified address and loopback.
inline bool bad_ipv6_source(const uint8_t* src) {
  if (src[0] == 0xFF) return true;
  uint64_t hi, lo;
  std::memcpy(&hi, src, 8);
  std::memcpy(&lo, src + 8, 8);
  return hi == 0 && (lo == 0 || lo == __builtin_bswap64(1));
}

// The UDP header at `udp` with `room` octets of IP payload behind it, addressed to the DNS port.
// Returns kDns after filling the UDP fields of *info, or kDrop.
inline Verdict finish_udp(const uint8_t* udp, uint32_t room, FrameInfo* info) {
  const uint16_t ulen = dns::load16(udp + 4);
  if (GTM_UNLIKELY(ulen < kUdpHeaderLen || ulen > room)) return drop(info, DropReason::bad_udp);
  if (GTM_UNLIKELY(dns::load16(udp) == 0)) return drop(info, DropReason::bad_source);
  info->dns = static_cast<uint16_t>(info->l4 + kUdpHeaderLen);
  info->dns_len = static_cast<uint16_t>(ulen - kUdpHeaderLen);
  return Verdict::kDns;
}

Verdict classify_ipv4(const uint8_t* frame, uint32_t len, const PortFilter& port, bool verify,
                      FrameInfo* info) {
  const uint8_t* ip = frame + info->l3;
  const uint32_t avail = len - info->l3;
  if (GTM_UNLIKELY(avail < kIpv4HeaderLen || (ip[0] >> 4) != 4)) {
    return drop(info, DropReason::bad_ipv4);
  }
  const uint32_t ihl = (ip[0] & 0x0Fu) * 4;
  const uint32_t total = dns::load16(ip + 2);
  if (GTM_UNLIKELY(ihl < kIpv4HeaderLen || total < ihl || total > avail)) {
    return drop(info, DropReason::bad_ipv4);
  }
  info->ip_version = 4;
  // Options and fragments are rare and the kernel handles them right (and reassembles).
  if (GTM_UNLIKELY(ihl != kIpv4HeaderLen)) return Verdict::kException;
  if (GTM_UNLIKELY((dns::load16(ip + 6) & 0x3FFF) != 0)) return Verdict::kException;
  if (ip[9] != kIpProtoUdp) return Verdict::kException;
  const uint8_t* udp = ip + kIpv4HeaderLen;
  if (GTM_UNLIKELY(total - kIpv4HeaderLen < kUdpHeaderLen)) {
    return drop(info, DropReason::bad_udp);
  }
  if (dns::load16(udp + 2) != port.dns_port || !port.addrs.has_v4(ip + 16)) {
    return Verdict::kException;
  }
  // Checked only for frames answered here; the kernel checks the others itself.
  if (verify && GTM_UNLIKELY(csum_fold(csum_add(0, ip, kIpv4HeaderLen)) != 0xFFFF)) {
    return drop(info, DropReason::bad_ipv4);
  }
  if (GTM_UNLIKELY(bad_ipv4_source(ip + 12))) return drop(info, DropReason::bad_source);
  info->l4 = static_cast<uint16_t>(info->l3 + kIpv4HeaderLen);
  return finish_udp(udp, total - kIpv4HeaderLen, info);
}

Verdict classify_ipv6(const uint8_t* frame, uint32_t len, const PortFilter& port, FrameInfo* info) {
  const uint8_t* ip = frame + info->l3;
  const uint32_t avail = len - info->l3;
  if (GTM_UNLIKELY(avail < kIpv6HeaderLen || (ip[0] >> 4) != 6)) {
    return drop(info, DropReason::bad_ipv6);
  }
  const uint32_t payload = dns::load16(ip + 4);
  if (GTM_UNLIKELY(payload > avail - kIpv6HeaderLen)) return drop(info, DropReason::bad_ipv6);
  info->ip_version = 6;
  // Extension headers (fragments included), ICMPv6 (neighbour discovery), TCP: the kernel's.
  if (ip[6] != kIpProtoUdp) return Verdict::kException;
  if (GTM_UNLIKELY(payload < kUdpHeaderLen)) return drop(info, DropReason::bad_udp);
  const uint8_t* udp = ip + kIpv6HeaderLen;
  if (dns::load16(udp + 2) != port.dns_port || !port.addrs.has_v6(ip + 24)) {
    return Verdict::kException;
  }
  // A zero checksum is not allowed over IPv6 (RFC 8200 section 8.1); the kernel drops it too.
  if (GTM_UNLIKELY(dns::load16(udp + 6) == 0)) return drop(info, DropReason::bad_udp);
  if (GTM_UNLIKELY(bad_ipv6_source(ip + 8))) return drop(info, DropReason::bad_source);
  info->l4 = static_cast<uint16_t>(info->l3 + kIpv6HeaderLen);
  return finish_udp(udp, payload, info);
}

}  // namespace

bool ServiceAddrs::add_v4(const uint8_t addr[4]) {
  if (has_v4(addr)) return true;
  if (n4_ == kMax) return false;
  std::memcpy(&v4_[n4_++], addr, 4);
  return true;
}

bool ServiceAddrs::add_v6(const uint8_t addr[16]) {
  if (has_v6(addr)) return true;
  if (n6_ == kMax) return false;
  std::memcpy(&v6_[n6_][0], addr, 8);
  std::memcpy(&v6_[n6_][1], addr + 8, 8);
  ++n6_;
  return true;
}

Verdict classify_general(const uint8_t* frame, uint32_t len, const PortFilter& port,
                         bool verify_ipv4_checksum, FrameInfo* info) {
  if (GTM_UNLIKELY(len < kEthHeaderLen)) return drop(info, DropReason::runt);
  // Group addresses (broadcast, multicast) carry ARP requests and neighbour solicitations.
  if ((frame[0] & 1) == 0 && std::memcmp(frame, port.mac, 6) != 0) {
    return drop(info, DropReason::not_our_mac);
  }
  uint32_t off = 12;
  uint16_t type = dns::load16(frame + off);
  uint8_t tags = 0;
  uint16_t vid[kMaxVlanTags] = {};
  while (GTM_UNLIKELY(is_vlan_tpid(type))) {
    if (tags == kMaxVlanTags) return drop(info, DropReason::vlan);
    if (len < off + kVlanTagLen + 2) return drop(info, DropReason::runt);
    vid[tags++] = dns::load16(frame + off + 2) & 0x0FFF;
    off += kVlanTagLen;
    type = dns::load16(frame + off);
  }
  if (GTM_UNLIKELY(tags != port.vlan_count || (tags >= 1 && vid[0] != port.vlan_id[0]) ||
                   (tags == 2 && vid[1] != port.vlan_id[1]))) {
    return drop(info, DropReason::vlan);
  }
  info->vlan_count = tags;
  info->l3 = static_cast<uint16_t>(off + 2);
  info->ip_version = 0;
  if (GTM_LIKELY(type == kEtherTypeIpv4)) {
    return classify_ipv4(frame, len, port, verify_ipv4_checksum, info);
  }
  if (type == kEtherTypeIpv6) return classify_ipv6(frame, len, port, info);
  return Verdict::kException;
}

}  // namespace gtm::packet
