#include "dataplane/packet/reply.h"

#include <cstring>

#include "dataplane/dns/wire.h"

namespace gtm::packet {

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
