// Answer records rendered at publish time (dataplane/snapshot/format.h AnswerRef): the bytes the
// engine's fast path copies into a response instead of writing each record field by field.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/snapshot/format.h"

namespace gtm::control {

struct AnswerRecords {
  std::vector<uint8_t> bytes;            // kSecAnswerRecords
  std::vector<snap::AnswerRef> rrsets;   // kSecRRsetAnswers: one per RRset
  std::vector<snap::AnswerRef> members;  // kSecMemberAnswers: one per member
};

// Renders every static RRset without a compressible name in its RDATA (and short enough for the
// 16-bit length) and every member of an A or AAAA service (with its service's TTL), from tables
// the builder has already emitted. Reads them only.
AnswerRecords render_answer_records(std::span<const uint8_t> blob,
                                    std::span<const snap::RRset> rrsets,
                                    std::span<const snap::Rdata> rdatas,
                                    std::span<const snap::Service> services,
                                    std::span<const snap::Pool> pools,
                                    std::span<const snap::Member> members);

}  // namespace gtm::control
