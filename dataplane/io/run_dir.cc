#include "dataplane/io/run_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dataplane/io/control_protocol.h"
#include "dataplane/io/log.h"

namespace gtm::io {

bool make_run_dir(const std::string& path, std::string* error) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0750) != 0 && errno != EEXIST) {
      *error = "cannot create " + prefix + ": " + std::strerror(errno);
      return false;
    }
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = path + " is not a directory";
    return false;
  }
  return true;
}

void load_last_good_snapshot(SnapshotSlot* slot, const std::string& run_dir) {
  std::string path = run_dir + "/" + proto::kLastGoodSnapshot;
  if (access(path.c_str(), F_OK) != 0) {
    log_line("no last good snapshot at %s; serving nothing until the first PUBLISH", path.c_str());
    return;
  }
  std::string error;
  snap::LoadedSnapshot* loaded = snap::LoadedSnapshot::from_file(path, &error);
  if (loaded == nullptr) {
    log_line("last good snapshot rejected: %s; serving nothing until the first PUBLISH",
             error.c_str());
    return;
  }
  slot->publish(loaded);
  log_line("loaded last good snapshot generation %llu",
           static_cast<unsigned long long>(loaded->view().generation()));
}

}  // namespace gtm::io
