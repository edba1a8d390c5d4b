// gtm's counters in DPDK telemetry (dpdk-telemetry.py, or the socket
// /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2), under the names STATUS uses:
//   /gtm/status          generation of the active snapshot, lcores, ports
//   /gtm/counters        every counter summed over the lcores and the kernel-side servers
//   /gtm/lcore,<id>      one lcore's counters (no id: the list of lcore ids)
#pragma once

#include <string>
#include <vector>

#include "dataplane/io/snapshot_slot.h"
#include "dataplane/io/worker_stats.h"

namespace gtm::dpdk {

struct TelemetrySources {
  const io::SnapshotSlot* slot = nullptr;
  std::vector<io::WorkerStatsSource> workers;
  std::vector<int> lcore_ids;  // per worker: its lcore, or -1 (TCP and UDP on the tap)
  std::vector<std::string> ports;
};

// Registers the commands (once per process) and makes them read `sources`, which must stay valid
// until telemetry_withdraw(). Telemetry callbacks run on DPDK's telemetry thread.
bool telemetry_publish(const TelemetrySources* sources, std::string* error);
// After this returns no callback reads the sources any more; the commands answer "stopped".
void telemetry_withdraw();

}  // namespace gtm::dpdk
