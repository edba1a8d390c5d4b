// The run directory (--run-dir): the control socket and the last good snapshot live there.
#pragma once

#include <string>

#include "dataplane/io/snapshot_slot.h"

namespace gtm::io {

// mkdir -p with mode 0750 (the directory holds the control socket). False and *error on failure.
bool make_run_dir(const std::string& path, std::string* error);

// Publishes <run-dir>/snapshot.bin into `slot` when it exists and validates; logs what happened.
void load_last_good_snapshot(SnapshotSlot* slot, const std::string& run_dir);

}  // namespace gtm::io
