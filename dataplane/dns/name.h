// Small helpers on uncompressed wire names and type mnemonics, shared by the wire library, the
// engine, the snapshot reader and the builder.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/dns/wire.h"

namespace gtm::dns {

// Length of the uncompressed wire name at p[0, avail), root label included; 0 if it is not one
// (a label over 63 octets, more than 255 octets, a compression pointer, or no root inside avail).
inline size_t wire_name_length(const uint8_t* p, size_t avail) {
  size_t pos = 0;
  while (pos < avail) {
    const uint8_t label = p[pos];
    if (label == 0) return pos + 1;
    if (label > kMaxLabelLen) return 0;
    pos += 1 + static_cast<size_t>(label);
    if (pos >= kMaxNameLen) return 0;  // even a root label after this would exceed 255
  }
  return 0;
}

// Mnemonic of the record types gtm serves, or nullptr for any other type.
inline const char* rr_type_name(uint16_t type) {
  switch (type) {
    case kTypeA: return "A";
    case kTypeNS: return "NS";
    case kTypeCNAME: return "CNAME";
    case kTypeSOA: return "SOA";
    case kTypePTR: return "PTR";
    case kTypeMX: return "MX";
    case kTypeTXT: return "TXT";
    case kTypeAAAA: return "AAAA";
    case kTypeSRV: return "SRV";
    case kTypeOPT: return "OPT";
    case kTypeANY: return "ANY";
    case kTypeCAA: return "CAA";
    default: return nullptr;
  }
}

}  // namespace gtm::dns
