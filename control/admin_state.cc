#include "control/admin_state.h"

#include "control/json_text.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <tuple>


namespace gtm::control {
namespace {

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return s;
}

std::string with_trailing_dot(std::string s) {
  if (s.empty() || s.back() != '.') s += '.';
  return s;
}

const char* state_name(AdminState s) {
  switch (s) {
    case AdminState::kEnabled:
      return "enabled";
    case AdminState::kDisabled:
      return "disabled";
    case AdminState::kDraining:
      return "draining";
  }
  return "enabled";
}

std::string json_string(const std::string& s) { return "\"" + json_escape(s) + "\""; }

// Whether the model has the named service / pool / member (member empty: the pool only). A
// service configured for A and AAAA is two ServiceModels; finding it in either is enough.
bool model_has(const SnapshotModel& model, const std::string& service, const std::string& pool,
               const std::string& member) {
  for (const ServiceModel& svc : model.services) {
    if (wire_name_text(svc.name) != service) continue;
    for (const PoolModel& p : svc.pools) {
      if (p.name != pool) continue;
      if (member.empty()) return true;
      for (const MemberModel& m : p.members) {
        if (m.name == member) return true;
      }
    }
  }
  return false;
}

}  // namespace

std::string wire_name_text(const WireName& name) {
  std::string out;
  size_t i = 0;
  while (i < name.size() && name[i] != 0) {
    const size_t len = name[i++];
    for (size_t k = 0; k < len && i < name.size(); ++k, ++i) out += static_cast<char>(name[i]);
    out += '.';
  }
  return out.empty() ? "." : out;
}

bool AdminOverrides::apply_command(const std::string& command, const SnapshotModel& model,
                                   std::string* error) {
  std::istringstream in(command);
  std::string kind, verb, service, pool, member, extra;
  in >> kind >> verb >> service >> pool;
  const bool is_member = kind == "MEMBER";
  if (is_member) in >> member;
  in >> extra;
  if ((kind != "MEMBER" && kind != "POOL") || pool.empty() || (is_member && member.empty()) ||
      !extra.empty()) {
    *error = "usage: MEMBER enable|disable|drain SERVICE POOL MEMBER, or POOL enable|disable "
             "SERVICE POOL";
    return false;
  }
  AdminState state;
  if (verb == "enable") {
    state = AdminState::kEnabled;
  } else if (verb == "disable") {
    state = AdminState::kDisabled;
  } else if (verb == "drain" && is_member) {
    state = AdminState::kDraining;
  } else {
    *error = "unknown action '" + verb + "'";
    return false;
  }
  service = with_trailing_dot(lower(service));
  if (!model_has(model, service, pool, member)) {
    *error = is_member ? "no member '" + member + "' in pool '" + pool + "' of service " + service
                       : "no pool '" + pool + "' in service " + service;
    return false;
  }
  std::map<Key, AdminState>& table = is_member ? members_ : pools_;
  const Key key{service, pool, member};
  if (state == AdminState::kEnabled) {
    table.erase(key);
  } else {
    table[key] = state;
  }
  return true;
}

SnapshotModel AdminOverrides::applied_to(const SnapshotModel& model) const {
  SnapshotModel out = model;
  apply_to(&out);
  return out;
}

void AdminOverrides::apply_to(SnapshotModel* model) const {
  if (empty()) return;
  // Keys sort by service first: a service no override names costs two lookups.
  auto names_service = [](const std::map<Key, AdminState>& overrides, const std::string& service) {
    auto it = overrides.lower_bound(Key{service, "", ""});
    return it != overrides.end() && it->first.service == service;
  };
  for (ServiceModel& svc : model->services) {
    const std::string service = wire_name_text(svc.name);
    const bool pools = names_service(pools_, service);
    const bool members = names_service(members_, service);
    if (!pools && !members) continue;
    for (PoolModel& p : svc.pools) {
      const bool pool_off = pools && pools_.count(Key{service, p.name, ""}) != 0;
      for (MemberModel& m : p.members) {
        if (pool_off || (members && members_.count(Key{service, p.name, m.name}) != 0)) {
          m.enabled = false;
        }
      }
    }
  }
}

std::string AdminOverrides::to_json() const {
  std::string out = "[";
  auto add = [&](const Key& k, AdminState s) {
    if (out.size() > 1) out += ",";
    out += "{\"service\":" + json_string(k.service) + ",\"pool\":" + json_string(k.pool);
    if (!k.member.empty()) out += ",\"member\":" + json_string(k.member);
    out += ",\"state\":\"" + std::string(state_name(s)) + "\"}";
  };
  for (const auto& [k, s] : pools_) add(k, s);
  for (const auto& [k, s] : members_) add(k, s);
  return out + "]";
}

bool AdminOverrides::save(const std::string& path, std::string* error) const {
  std::string text;
  for (const auto& [k, s] : pools_) {
    text += "POOL " + std::string(s == AdminState::kDisabled ? "disable" : "enable") + " " +
            k.service + " " + k.pool + "\n";
  }
  for (const auto& [k, s] : members_) {
    text += "MEMBER " + std::string(s == AdminState::kDraining ? "drain" : "disable") + " " +
            k.service + " " + k.pool + " " + k.member + "\n";
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      *error = "cannot write " + tmp;
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + " to " + path;
    return false;
  }
  return true;
}

bool AdminOverrides::load(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) return true;  // nothing saved yet
  std::string line;
  int lineno = 0;
  bool ok = true;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    // Names are not checked against a model here: the configuration may have changed since;
    // applied_to() ignores overrides that name nothing.
    std::istringstream words(line);
    std::string kind, verb, service, pool, member;
    words >> kind >> verb >> service >> pool >> member;
    const bool is_member = kind == "MEMBER";
    AdminState state = verb == "drain" ? AdminState::kDraining : AdminState::kDisabled;
    if ((kind != "MEMBER" && kind != "POOL") || (verb != "disable" && verb != "drain") ||
        pool.empty() || is_member == member.empty()) {
      *error = path + ":" + std::to_string(lineno) + ": cannot parse '" + line + "'";
      ok = false;
      continue;
    }
    (is_member ? members_ : pools_)[Key{service, pool, member}] = state;
  }
  return ok;
}

}  // namespace gtm::control
