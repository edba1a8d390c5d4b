// Turning a query frame into its answer in place, and moving VLAN tags for the exception path.
// No DPDK.
//
// The engine has already written the DNS response over the query, at the same offset. What is left
// is to address the frame back to the client: MACs, IP addresses and UDP ports swapped, lengths,
// TTL/hop limit, and the IPv4 header and UDP checksums, computed here or left to the NIC.
#pragma once

#include <cstdint>

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
uint32_t make_reply(uint8_t* frame, const FrameInfo& info, uint32_t dns_len,
                    const uint8_t our_mac[6], TxChecksums checksums);

// The exception interface is untagged: the kernel sees one plain Ethernet link per port. Removes
// `count` tags by moving the MAC addresses over them; the untagged frame starts at
// frame + count * kVlanTagLen, which is returned as that offset.
uint32_t strip_vlan_tags(uint8_t* frame, uint8_t count);

// The reverse for a frame from the kernel: `frame` points port.vlan_count * kVlanTagLen octets
// before an untagged frame; moves the MACs there and writes the port's tags behind them.
void insert_vlan_tags(uint8_t* frame, const PortFilter& port);

}  // namespace gtm::packet
