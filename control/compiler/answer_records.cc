#include "control/compiler/answer_records.h"

#include <stdexcept>

namespace gtm::control {
namespace {

constexpr size_t kMaxRendered = 0xFFFF;  // AnswerRef::len and ::count are 16 bits

// Appends the records of rdatas[first, first + count); an empty ref when any of them holds a name
// the writer would compress, or when they do not fit the 16-bit length.
snap::AnswerRef render(std::vector<uint8_t>* out, std::span<const uint8_t> blob,
                       std::span<const snap::Rdata> rdatas, uint16_t type, uint32_t ttl,
                       uint32_t first, uint32_t count) {
  size_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const snap::Rdata& rd = rdatas[first + i];
    if (rd.name1_off != snap::kNoNameInRdata) return {};
    total += snap::kAnswerRecordFixed + rd.wire.len;
  }
  if (count == 0 || count > kMaxRendered || total > kMaxRendered) return {};
  if (out->size() + total > UINT32_MAX) throw std::length_error("answer records exceed 4 GiB");
  const snap::AnswerRef ref{static_cast<uint32_t>(out->size()), static_cast<uint16_t>(total),
                            static_cast<uint16_t>(count)};
  for (uint32_t i = 0; i < count; ++i) {
    const snap::Rdata& rd = rdatas[first + i];
    uint8_t head[snap::kAnswerRecordFixed];
    snap::render_answer_header(head, type, ttl, static_cast<uint16_t>(rd.wire.len));
    out->insert(out->end(), head, head + sizeof(head));
    const uint8_t* wire = blob.data() + rd.wire.off;
    out->insert(out->end(), wire, wire + rd.wire.len);
  }
  return ref;
}

}  // namespace

AnswerRecords render_answer_records(std::span<const uint8_t> blob,
                                    std::span<const snap::RRset> rrsets,
                                    std::span<const snap::Rdata> rdatas,
                                    std::span<const snap::Service> services,
                                    std::span<const snap::Pool> pools,
                                    std::span<const snap::Member> members) {
  AnswerRecords a;
  a.rrsets.resize(rrsets.size());
  for (size_t i = 0; i < rrsets.size(); ++i) {
    const snap::RRset& rs = rrsets[i];
    if (rs.kind != snap::kRRsetStatic) continue;
    a.rrsets[i] = render(&a.bytes, blob, rdatas, rs.type, rs.ttl, rs.rdata_first, rs.rdata_count);
  }
  a.members.resize(members.size());
  for (const snap::Service& svc : services) {
    if (svc.rtype != dns::kTypeA && svc.rtype != dns::kTypeAAAA) continue;
    for (uint32_t k = 0; k < svc.pool_count; ++k) {
      const snap::Pool& pool = pools[svc.pool_first + k];
      for (uint32_t j = 0; j < pool.member_count; ++j) {
        const uint32_t m = pool.member_first + j;
        a.members[m] = render(&a.bytes, blob, rdatas, svc.rtype, svc.ttl, members[m].rdata, 1);
      }
    }
  }
  return a;
}

}  // namespace gtm::control
