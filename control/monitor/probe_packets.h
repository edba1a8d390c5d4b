// Wire format of the probes that gtm-control sends from raw sockets (ICMP echo and half-open TCP),
// the parsers of what comes back, and the classic-BPF filters that keep everything else out of
// those sockets. No sockets here: the prober owns them (control/monitor/prober.cc); this code is
// pure so it can be unit-tested and fuzzed alone.
//
// Demultiplexing is by content, not by socket: one raw socket per family serves every target.
// - ICMP: the echo identifier is the prober's; the 24-byte payload carries the prober's 64-bit
//   cookie, the target index, the probe's serial and the request number within the probe.
// - Half-open TCP: the SYN's source port is in the prober's reserved block and its sequence number
//   encodes the target index and the serial, so the SYN-ACK's (or RST's) acknowledgement number
//   names the probe it answers.
#pragma once

#include <linux/filter.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gtm::control::probe_packets {

// RFC 1071 one's-complement sum, accumulated over pieces and folded at the end.
uint32_t checksum_add(uint32_t sum, const uint8_t* data, size_t len);
uint16_t checksum_fold(uint32_t sum);  // the value to store (already complemented)

// ---- ICMP / ICMPv6 echo

struct EchoTag {
  uint64_t cookie = 0;  // the prober's secret: replies to someone else's pings do not match
  uint32_t target = 0;  // index of the probe target
  uint32_t serial = 0;  // which probe of that target (replies to an old probe are ignored)
  uint16_t number = 0;  // which request of the probe (0 .. count-1)
};

constexpr size_t kEchoPayload = 24;
constexpr size_t kEchoSize = 8 + kEchoPayload;
constexpr uint8_t kIcmpEchoReply = 0, kIcmpEchoRequest = 8;
constexpr uint8_t kIcmp6EchoRequest = 128, kIcmp6EchoReply = 129;

// Writes an echo request (kEchoSize bytes) for IPv4 (checksum computed here) or IPv6 (checksum
// left 0: the kernel always computes ICMPv6 checksums of raw sockets, it needs the addresses).
void build_echo_request(bool v6, uint16_t ident, uint16_t seq, const EchoTag& tag, uint8_t* out);

// Parses what a raw ICMP socket returns: for IPv4 the IP header comes first, for ICMPv6 the
// datagram starts at the ICMPv6 header. True for an echo reply with our identifier and cookie.
bool parse_echo_reply(bool v6, const uint8_t* data, size_t len, uint16_t ident, uint64_t cookie,
                      EchoTag* tag);

// ---- Half-open TCP

constexpr size_t kSynSize = 24;  // 20-byte header + MSS option

// The SYN's sequence number for (target, serial) and the inverse on an acknowledgement number.
uint32_t syn_sequence(uint32_t target, uint32_t serial, uint32_t secret);
void decode_ack(uint32_t ack, uint32_t secret, uint32_t* target, uint8_t* serial_low);
constexpr uint32_t kMaxHalfOpenTargets = 1u << 24;

// Writes a SYN from src to dst (both AF_INET or both AF_INET6; ports in network order inside the
// sockaddrs are ignored: sport/dport are given) with the TCP checksum over the pseudo-header.
// Returns kSynSize, or 0 when the families do not match.
size_t build_syn(const sockaddr_storage& src, const sockaddr_storage& dst, uint16_t sport,
                 uint16_t dport, uint32_t seq, uint8_t* out);

struct TcpReply {
  uint16_t sport = 0;  // the target's port
  uint16_t dport = 0;  // ours
  uint32_t ack = 0;
  bool syn_ack = false;  // SYN and ACK set, RST clear: something listens
  bool rst = false;      // RST: nothing listens (or a firewall rejects)
};

// Parses what a raw TCP socket returns (IPv4: from the IP header; IPv6: from the TCP header).
// True for an unfragmented SYN-ACK or RST with the ACK flag (only those answer a SYN).
bool parse_tcp_reply(bool v6, const uint8_t* data, size_t len, TcpReply* reply);

// ---- Socket filters (attached with SO_ATTACH_FILTER)

// Echo replies carrying `ident`.
std::vector<sock_filter> echo_reply_filter(bool v6, uint16_t ident);
// SYN-ACKs and RSTs to a destination port in [port_lo, port_hi].
std::vector<sock_filter> tcp_reply_filter(bool v6, uint16_t port_lo, uint16_t port_hi);

}  // namespace gtm::control::probe_packets
