// Geo compilation for gtm-control: once per configuration or source change, never per publish,
// and off the control loop's thread so health publishes go on while a large database compiles.
//
// The compiled tables are shared (shared_ptr to const) by every image built until the next
// compilation, so a health-only publish copies their bytes instead of recompiling them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/geo/geo_model.h"

namespace gtm::control::geo {

// compile_geo into a shared, immutable result. On failure returns false, sets *error and leaves
// *out untouched.
bool compile_shared(const GeoConfig& config, std::shared_ptr<const CompiledGeo>* out,
                    std::string* error);

// Everything compile_geo reads from a configuration, as one string: equal keys mean the same
// compilation (as long as the files did not change).
std::string config_key(const GeoConfig& config);

// stat() of every file `config` names (databases, CIDR files), missing ones included (inode 0),
// in a fixed order: two results compare equal when no file changed.
std::vector<SourceFile> stat_sources(const GeoConfig& config);
bool same_sources(const std::vector<SourceFile>& a, const std::vector<SourceFile>& b);

// One compilation at a time on its own thread; the owner polls fd() and collects the result.
class GeoJob {
 public:
  struct Result {
    uint64_t tag = 0;  // as given to start()
    GeoConfig config;
    bool ok = false;
    std::shared_ptr<const CompiledGeo> compiled;  // when ok
    std::string error;                            // when not
  };

  GeoJob();
  ~GeoJob();  // waits for a running compilation
  GeoJob(const GeoJob&) = delete;
  GeoJob& operator=(const GeoJob&) = delete;

  // An eventfd that becomes readable when a result is ready (-1 if it could not be created:
  // then start() compiles synchronously and the result is ready at once).
  int fd() const { return event_fd_; }
  bool busy() const { return busy_; }

  // Starts compiling `config`. Must not be busy.
  void start(GeoConfig config, uint64_t tag);

  // Collects the finished result, if any; the job is idle afterwards.
  bool take(Result* out);

 private:
  void run(Result* result);

  int event_fd_ = -1;
  bool busy_ = false;
  std::thread thread_;
  std::mutex mutex_;
  bool done_ = false;  // guarded by mutex_
  Result result_;      // guarded by mutex_ while the thread runs
};

}  // namespace gtm::control::geo
