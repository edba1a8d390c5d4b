// Administrative overrides of members and pools: what an operator said with `gtmctl member
// disable ...` or `gtmctl pool disable ...`, applied on top of the configuration every time a
// snapshot is built, kept across reloads and saved in the run directory so a restarted gtm-control
// keeps them.
//
// A disabled member or pool leaves the answers. A draining member leaves them too (DNS has no
// connections to finish); it is reported separately so an operator can tell maintenance from
// removal, and persistence (a later feature) will keep honouring it for existing clients.
#pragma once

#include <map>
#include <tuple>
#include <string>
#include <vector>

#include "control/compiler/model.h"

namespace gtm::control {

enum class AdminState { kEnabled, kDisabled, kDraining };

class AdminOverrides {
 public:
  // Applies one command to `model` (for validation: the service, pool and member must exist) and,
  // when it does, records it. Commands (words separated by spaces):
  //   MEMBER enable|disable|drain <service> <pool> <member>
  //   POOL enable|disable <service> <pool>
  // Service names are absolute ("www.gtm.example."), compared case-insensitively. Returns false
  // with *error set for an unknown command or name.
  bool apply_command(const std::string& command, const SnapshotModel& model, std::string* error);

  // Returns `model` with every override applied (members of a disabled pool, disabled and draining
  // members get enabled = false). Overrides naming things the model no longer has are ignored.
  SnapshotModel applied_to(const SnapshotModel& model) const;
  // The same in place (no copy of the model: a health publish applies them to every image).
  void apply_to(SnapshotModel* model) const;

  // JSON array of the overrides in force: [{"service":...,"pool":...,"member":...,"state":...}].
  std::string to_json() const;

  // Persistence: one command per line, the same syntax as apply_command. load() ignores lines
  // it cannot parse (and says which in *error) but keeps the others.
  bool save(const std::string& path, std::string* error) const;
  bool load(const std::string& path, std::string* error);

  bool empty() const { return members_.empty() && pools_.empty(); }

 private:
  struct Key {
    std::string service, pool, member;
    bool operator<(const Key& o) const {
      return std::tie(service, pool, member) < std::tie(o.service, o.pool, o.member);
    }
  };
  std::map<Key, AdminState> members_;  // only non-enabled states are stored
  std::map<Key, AdminState> pools_;    // member field empty
};

// Presentation form of a canonical wire name ("www.gtm.example."), for matching and messages.
std::string wire_name_text(const WireName& name);

}  // namespace gtm::control
