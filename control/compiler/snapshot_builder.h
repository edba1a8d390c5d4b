// Compiles a SnapshotModel into a snapshot image (dataplane/snapshot/format.h).
//
// This is where health becomes a snapshot: each member's usable verdict (mode, health, enabled),
// each pool's usable list and weighted wheel are computed here, once per publish.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/compiler/model.h"

namespace gtm::control {

// Builds the image. Returns false and sets *error on a model that cannot be represented (duplicate
// zone, a record outside every zone, a name longer than 255 octets, a service clashing with a
// static record, more than 65535 RRsets at a node, ...). The result passes SnapshotView::validate.
bool build_snapshot(const SnapshotModel& model, std::vector<uint8_t>* image, std::string* error);

// Whether a member counts as usable, the single rule shared by the builder and explain output.
bool member_usable(const MemberModel& m, bool unknown_health_is_up);

}  // namespace gtm::control
