// YAML configuration -> SnapshotModel (the schema is documented in docs/config.md).
//
// The loader checks everything that can be pinned to a place in the file (unknown keys, types,
// ranges, names, record data, duplicates, a service outside every zone, address families) and
// reports the first problem as "file:line:column: message". Conflicts only visible across the whole
// model (e.g. CNAME next to other data) are left to build_snapshot, which the caller runs next.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "control/compiler/model.h"
#include "control/monitor/monitor_spec.h"

namespace gtm::control {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error is not about a place in the file (e.g. unreadable)
  int column = 0;  // 1-based
  std::string message;

  // "file:line:column: message", or "file: message" when line is 0.
  std::string to_string() const;
};

// Where gtm-control POSTs state-change events (control/events/webhook.h).
struct WebhookConfig {
  std::string url;            // http:// or https://
  uint32_t timeout_ms = 2000; // per attempt
  uint32_t retries = 3;       // further attempts after a failure, with doubling back-off
};

struct LoadedConfig {
  // Generation left 0: the publisher assigns it. model.geo is left null: the geo tables are
  // compiled from `geo` separately (control/geo/geo_job.h), since that reads files and can take
  // seconds.
  SnapshotModel model;
  geo::GeoConfig geo;                   // `geo`, `regions`, `isp_lines`, `datacenters`, `topology`
  std::vector<MonitorSpec> monitors;    // `monitors:`, referenced by name from members
  std::vector<WebhookConfig> webhooks;  // `alerts: webhooks:`; control-only, not in the snapshot
  std::map<WireName, UnstableTtl> unstable_ttl;  // by service name; control-only
  std::string path;
};

// Never throws. On error returns false and fills *err with the first error found. Relative geo
// paths (databases, CIDR files) are resolved against the directory of `path` (for the string
// version: of `name_for_errors`).
bool load_config_file(const std::string& path, LoadedConfig* out, ConfigError* err);
bool load_config_string(const std::string& yaml, const std::string& name_for_errors,
                        LoadedConfig* out, ConfigError* err);

// Converts a presentation-format name to canonical wire form (lowercase). A name ending in an
// unescaped "." is absolute; "@" is `origin`; anything else is relative to `origin`. Escapes "\."
// and "\DDD" are understood. Returns false and sets *error on an empty label, a label over 63
// octets or a name over 255 octets. Shared with tools that take names on their command line.
bool name_from_text(const std::string& text, const WireName& origin, WireName* out,
                    std::string* error);

}  // namespace gtm::control
