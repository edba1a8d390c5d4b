// Where a received frame goes: to the DNS engine, to the exception path (the host kernel), or to
// the floor. No DPDK: the lcore loop, the unit tests and the fuzzer share this code.
//
// DNS is exactly: Ethernet addressed to the port (or a group address), the port's VLAN tags (none,
// one 802.1Q tag, or an 802.1ad/0x9100 outer tag around an 802.1Q inner tag), then IPv4 without
// options and not fragmented, or IPv6 without extension headers, carrying UDP to the DNS port of a
// service address. Everything else that is well formed (ARP, ICMP, ND, TCP, IP options, fragments,
// other destinations) belongs to the kernel, which owns the service addresses on the exception
// interface. Frames that are broken, or that nobody could answer, are dropped with a reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gtm::packet {

inline constexpr uint32_t kEthHeaderLen = 14;
inline constexpr uint32_t kVlanTagLen = 4;
inline constexpr uint32_t kMaxVlanTags = 2;
inline constexpr uint32_t kIpv4HeaderLen = 20;
inline constexpr uint32_t kIpv6HeaderLen = 40;
inline constexpr uint32_t kUdpHeaderLen = 8;

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;     // 802.1Q
inline constexpr uint16_t kEtherTypeQinQ = 0x88A8;     // 802.1ad service tag
inline constexpr uint16_t kEtherTypeQinQOld = 0x9100;  // pre-standard outer tag, still common
inline constexpr uint8_t kIpProtoUdp = 17;

// Why a frame was dropped; each reason is a counter "dropped_<name>" (packet_counters.h).
#define GTM_DROP_REASONS(X)                                                                   \
  X(runt, "frame shorter than its Ethernet header and VLAN tags")                             \
  X(not_our_mac, "unicast frame addressed to another MAC address")                            \
  X(vlan, "VLAN tags other than the port's (or more than two)")                               \
  X(bad_ipv4, "IPv4 header invalid: version, header or total length, or checksum")            \
  X(bad_ipv6, "IPv6 header invalid: version or payload length")                               \
  X(bad_udp, "UDP header invalid: length, zero IPv6 checksum, or checksum the NIC found bad") \
  X(bad_source, "DNS query from an address or port no answer can go to")                      \
  X(multi_segment, "frame spread over several buffers (far larger than a DNS query)")         \
  X(exception_full, "frame for the exception path that it did not take")                      \
  X(exception_rate, "frame for the exception path over its rate limit")

enum class DropReason : uint8_t {
#define GTM_DROP_ENUM(name, help) name,
  GTM_DROP_REASONS(GTM_DROP_ENUM)
#undef GTM_DROP_ENUM
      kCount
};
inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);

enum class Verdict : uint8_t { kDns, kException, kDrop };

// The addresses a port answers DNS for. A handful per port, so a linear scan over a packed array
// beats any hash: one or two compares for the common case.
class ServiceAddrs {
 public:
  static constexpr int kMax = 32;

  // False when the set is full.
  bool add_v4(const uint8_t addr[4]);
  bool add_v6(const uint8_t addr[16]);

  bool has_v4(const uint8_t* addr) const {
    uint32_t a;
    std::memcpy(&a, addr, 4);
    for (int i = 0; i < n4_; ++i) {
      if (v4_[i] == a) return true;
    }
    return false;
  }
  bool has_v6(const uint8_t* addr) const {
    uint64_t hi, lo;
    std::memcpy(&hi, addr, 8);
    std::memcpy(&lo, addr + 8, 8);
    for (int i = 0; i < n6_; ++i) {
      if (v6_[i][0] == hi && v6_[i][1] == lo) return true;
    }
    return false;
  }
  int count_v4() const { return n4_; }
  int count_v6() const { return n6_; }

 private:
  uint32_t v4_[kMax] = {};
  uint64_t v6_[kMax][2] = {};
  int n4_ = 0;
  int n6_ = 0;
};

// What the port is: its MAC address, its VLAN tags and the service addresses it answers for.
struct PortFilter {
  uint8_t mac[6] = {};
  uint8_t vlan_count = 0;  // 0, 1 or 2 tags expected on every frame
  uint16_t vlan_tpid[kMaxVlanTags] = {kEtherTypeVlan, kEtherTypeVlan};  // outer first
  uint16_t vlan_id[kMaxVlanTags] = {};                                  // outer first
  uint16_t dns_port = 53;
  ServiceAddrs addrs;
};

// Where the headers of a classified frame are. Valid for kDns; for kException only vlan_count is
// meaningful; for kDrop only reason.
struct FrameInfo {
  uint16_t l3 = 0;       // offset of the IP header
  uint16_t l4 = 0;       // offset of the UDP header
  uint16_t dns = 0;      // offset of the DNS message
  uint16_t dns_len = 0;  // its length (from the UDP header; Ethernet padding excluded)
  uint8_t ip_version = 0;
  uint8_t vlan_count = 0;
  DropReason reason = DropReason::kCount;
};

// Classifies frame[0, len). `verify_ipv4_checksum` is false when the NIC already checked it.
//
// Almost every frame is a well-formed IPv4 query with the port's tags: a fast path recognises
// exactly those with a few word compares and one branch, and everything else takes the
// field-by-field path, classify_general(), which decides the verdict and the drop reason. Both
// give the same verdict and FrameInfo for every frame (tests/fuzz/fuzz_packet.cc checks it).
Verdict classify(const uint8_t* frame, uint32_t len, const PortFilter& port,
                 bool verify_ipv4_checksum, FrameInfo* info);

// The two paths on their own, for the tests and the fuzzer. classify_general() is the reference
// the fast path is checked against; classify_fast_ipv4() returns true (and fills *info) only for
// frames classify_general() finds kDns with the same FrameInfo, and false, touching nothing, for
// every other frame.
Verdict classify_general(const uint8_t* frame, uint32_t len, const PortFilter& port,
                         bool verify_ipv4_checksum, FrameInfo* info);
bool classify_fast_ipv4(const uint8_t* frame, uint32_t len, const PortFilter& port,
                        bool verify_ipv4_checksum, FrameInfo* info);

}  // namespace gtm::packet
