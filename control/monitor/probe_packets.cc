#include "control/monitor/probe_packets.h"

#include <netinet/in.h>

#include <cstring>

namespace gtm::control::probe_packets {
namespace {

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}
void put64(uint8_t* p, uint64_t v) {
  put32(p, static_cast<uint32_t>(v >> 32));
  put32(p + 4, static_cast<uint32_t>(v));
}
uint16_t get16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t get32(const uint8_t* p) {
  return uint32_t{get16(p)} << 16 | get16(p + 2);
}
uint64_t get64(const uint8_t* p) {
  return uint64_t{get32(p)} << 32 | get32(p + 4);
}

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;

// IPv4 header checks shared by both parsers: returns the offset of the transport header, or 0
// when the datagram is not an unfragmented IPv4 packet of `protocol` holding `need` more bytes.
size_t ipv4_payload(const uint8_t* data, size_t len, uint8_t protocol, size_t need) {
  if (len < 20 || (data[0] >> 4) != 4) return 0;
  const size_t ihl = size_t{data[0] & 0x0Fu} * 4;
  if (ihl < 20 || data[9] != protocol || (get16(data + 6) & 0x1FFF) != 0) return 0;
  if (len < ihl + need) return 0;
  return ihl;
}

}  // namespace

uint32_t checksum_add(uint32_t sum, const uint8_t* data, size_t len) {
  for (; len >= 2; data += 2, len -= 2) sum += get16(data);
  if (len == 1) sum += uint32_t{data[0]} << 8;
  return sum;
}

uint16_t checksum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void build_echo_request(bool v6, uint16_t ident, uint16_t seq, const EchoTag& tag, uint8_t* out) {
  std::memset(out, 0, kEchoSize);
  out[0] = v6 ? kIcmp6EchoRequest : kIcmpEchoRequest;
  put16(out + 4, ident);
  put16(out + 6, seq);
  uint8_t* payload = out + 8;
  put64(payload, tag.cookie);
  put32(payload + 8, tag.target);
  put32(payload + 12, tag.serial);
  put16(payload + 16, tag.number);
  if (!v6) put16(out + 2, checksum_fold(checksum_add(0, out, kEchoSize)));
}

bool parse_echo_reply(bool v6, const uint8_t* data, size_t len, uint16_t ident, uint64_t cookie,
                      EchoTag* tag) {
  size_t off = 0;
  if (!v6) {
    off = ipv4_payload(data, len, IPPROTO_ICMP, kEchoSize);
    if (off == 0) return false;
  } else if (len < kEchoSize) {
    return false;
  }
  const uint8_t* icmp = data + off;
  if (icmp[0] != (v6 ? kIcmp6EchoReply : kIcmpEchoReply) || icmp[1] != 0) return false;
  if (get16(icmp + 4) != ident) return false;
  const uint8_t* payload = icmp + 8;
  if (get64(payload) != cookie) return false;
  tag->cookie = cookie;
  tag->target = get32(payload + 8);
  tag->serial = get32(payload + 12);
  tag->number = get16(payload + 16);
  return true;
}

uint32_t syn_sequence(uint32_t target, uint32_t serial, uint32_t secret) {
  return ((target << 8) | (serial & 0xFF)) ^ secret;
}

void decode_ack(uint32_t ack, uint32_t secret, uint32_t* target, uint8_t* serial_low) {
  const uint32_t x = (ack - 1) ^ secret;
  *target = x >> 8;
  *serial_low = static_cast<uint8_t>(x);
}

size_t build_syn(const sockaddr_storage& src, const sockaddr_storage& dst, uint16_t sport,
                 uint16_t dport, uint32_t seq, uint8_t* out) {
  if (src.ss_family != dst.ss_family) return 0;
  std::memset(out, 0, kSynSize);
  put16(out, sport);
  put16(out + 2, dport);
  put32(out + 4, seq);
  out[12] = (kSynSize / 4) << 4;  // data offset
  out[13] = kTcpSyn;
  put16(out + 14, 65535);  // window
  // MSS option: a SYN without one looks odd to middleboxes; the value never matters (no data).
  out[20] = 2;
  out[21] = 4;
  put16(out + 22, 1460);

  // Pseudo-header: source, destination, zero, protocol, TCP length (RFC 793 / RFC 8200 8.1).
  uint32_t sum = 0;
  if (src.ss_family == AF_INET) {
    const auto& s = reinterpret_cast<const sockaddr_in&>(src);
    const auto& d = reinterpret_cast<const sockaddr_in&>(dst);
    sum = checksum_add(sum, reinterpret_cast<const uint8_t*>(&s.sin_addr), 4);
    sum = checksum_add(sum, reinterpret_cast<const uint8_t*>(&d.sin_addr), 4);
  } else if (src.ss_family == AF_INET6) {
    const auto& s = reinterpret_cast<const sockaddr_in6&>(src);
    const auto& d = reinterpret_cast<const sockaddr_in6&>(dst);
    sum = checksum_add(sum, reinterpret_cast<const uint8_t*>(&s.sin6_addr), 16);
    sum = checksum_add(sum, reinterpret_cast<const uint8_t*>(&d.sin6_addr), 16);
  } else {
    return 0;
  }
  sum += IPPROTO_TCP + kSynSize;
  sum = checksum_add(sum, out, kSynSize);
  put16(out + 16, checksum_fold(sum));
  return kSynSize;
}

bool parse_tcp_reply(bool v6, const uint8_t* data, size_t len, TcpReply* reply) {
  size_t off = 0;
  if (!v6) {
    off = ipv4_payload(data, len, IPPROTO_TCP, 20);
    if (off == 0) return false;
  } else if (len < 20) {
    return false;
  }
  const uint8_t* tcp = data + off;
  if ((tcp[12] >> 4) < 5) return false;
  // The same test as tcp_reply_filter's.
  const uint8_t flags = tcp[13] & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin);
  const bool syn_ack = flags == (kTcpSyn | kTcpAck);
  const bool rst = flags == (kTcpRst | kTcpAck);
  if (!syn_ack && !rst) return false;
  reply->sport = get16(tcp);
  reply->dport = get16(tcp + 2);
  reply->ack = get32(tcp + 8);
  reply->syn_ack = syn_ack;
  reply->rst = rst;
  return true;
}

namespace {

sock_filter stmt(uint16_t code, uint32_t k) {
  return {code, 0, 0, k};
}
sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return {code, jt, jf, k};
}

// Keeps (a prefix of) the packet: what the parsers read is well inside it.
constexpr uint32_t kKeepBytes = 256;

}  // namespace

std::vector<sock_filter> echo_reply_filter(bool v6, uint16_t ident) {
  std::vector<sock_filter> f;
  if (v6) {
    // The filter sees the ICMPv6 header at offset 0.
    f.push_back(stmt(BPF_LD | BPF_B | BPF_ABS, 0));
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kIcmp6EchoReply, 0, 3));
    f.push_back(stmt(BPF_LD | BPF_H | BPF_ABS, 4));
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, ident, 0, 1));
  } else {
    // The filter sees the IP header; X = its length. Fragments (other than the first) are dropped
    // by the offset test, so [x + ...] is always the ICMP header.
    f.push_back(stmt(BPF_LD | BPF_H | BPF_ABS, 6));
    f.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, 0x1FFF, 6, 0));  // -> drop
    f.push_back(stmt(BPF_LDX | BPF_B | BPF_MSH, 0));
    f.push_back(stmt(BPF_LD | BPF_B | BPF_IND, 0));
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kIcmpEchoReply, 0, 3));
    f.push_back(stmt(BPF_LD | BPF_H | BPF_IND, 4));
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, ident, 0, 1));
  }
  f.push_back(stmt(BPF_RET | BPF_K, kKeepBytes));
  f.push_back(stmt(BPF_RET | BPF_K, 0));
  return f;
}

std::vector<sock_filter> tcp_reply_filter(bool v6, uint16_t port_lo, uint16_t port_hi) {
  std::vector<sock_filter> f;
  // Loads of the TCP header are relative to X: the IPv4 header length, or 0 for IPv6 (the filter
  // sees the TCP header at offset 0).
  if (v6) {
    f.push_back(stmt(BPF_LDX | BPF_IMM, 0));
  } else {
    f.push_back(stmt(BPF_LD | BPF_H | BPF_ABS, 6));
    f.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, 0x1FFF, 9, 0));  // -> drop
    f.push_back(stmt(BPF_LDX | BPF_B | BPF_MSH, 0));
  }
  // Destination port in [lo, hi].
  f.push_back(stmt(BPF_LD | BPF_H | BPF_IND, 2));
  f.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, port_lo, 0, 6));  // -> drop
  f.push_back(jump(BPF_JMP | BPF_JGT | BPF_K, port_hi, 5, 0));  // -> drop
  // Flags: SYN+ACK without RST/FIN, or RST+ACK.
  f.push_back(stmt(BPF_LD | BPF_B | BPF_IND, 13));
  f.push_back(stmt(BPF_ALU | BPF_AND | BPF_K, kTcpSyn | kTcpAck | kTcpRst | kTcpFin));
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kTcpSyn | kTcpAck, 1, 0));  // -> keep
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kTcpRst | kTcpAck, 0, 1));  // -> keep / drop
  f.push_back(stmt(BPF_RET | BPF_K, kKeepBytes));
  f.push_back(stmt(BPF_RET | BPF_K, 0));
  return f;
}

}  // namespace gtm::control::probe_packets
