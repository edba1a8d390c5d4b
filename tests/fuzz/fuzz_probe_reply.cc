// Fuzz target: the parsers of what the raw probe sockets receive (probe_packets.h), on arbitrary
// bytes read as IPv4 (IP header first) and as IPv6 (transport header first). Beyond "no crash":
// an accepted echo reply carries exactly the tag that an echo request built from it would carry,
// and an accepted TCP reply is either a SYN-ACK or a RST, never both.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "control/monitor/probe_packets.h"

namespace {

namespace pp = gtm::control::probe_packets;

uint64_t read_be(const uint8_t* data, size_t size, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | (at + i < size ? data[at + i] : 0);
  return v;
}

void check_echo(bool v6, const uint8_t* data, size_t size) {
  // The identifier and cookie the packet itself carries, so well-formed replies get through.
  const size_t off = v6 || size == 0 ? 0 : size_t{data[0] & 0x0Fu} * 4;
  const uint16_t ident = static_cast<uint16_t>(read_be(data, size, off + 4, 2));
  const uint64_t cookie = read_be(data, size, off + 8, 8);
  pp::EchoTag tag;
  if (!pp::parse_echo_reply(v6, data, size, ident, cookie, &tag)) return;
  if (off + pp::kEchoSize > size) __builtin_trap();
  uint8_t rebuilt[pp::kEchoSize];
  pp::build_echo_request(v6, ident, 0, tag, rebuilt);
  if (std::memcmp(rebuilt + 8, data + off + 8, 18) != 0) __builtin_trap();
}

void check_tcp(bool v6, const uint8_t* data, size_t size) {
  pp::TcpReply reply;
  if (!pp::parse_tcp_reply(v6, data, size, &reply)) return;
  if (reply.syn_ack == reply.rst) __builtin_trap();
  uint32_t target = 0;
  uint8_t serial = 0;
  pp::decode_ack(reply.ack, 0x5EC2E7u, &target, &serial);
  if (pp::syn_sequence(target, serial, 0x5EC2E7u) + 1 != reply.ack) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (bool v6 : {false, true}) {
    check_echo(v6, data, size);
    check_tcp(v6, data, size);
  }
  return 0;
}
