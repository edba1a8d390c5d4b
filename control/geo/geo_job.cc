#include "control/geo/geo_job.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <new>

#include "control/geo/geo_compiler.h"

namespace gtm::control::geo {

bool compile_shared(const GeoConfig& config, std::shared_ptr<const CompiledGeo>* out,
                    std::string* error) {
  try {
    auto compiled = std::make_shared<CompiledGeo>();
    if (!compile_geo(config, compiled.get(), error)) return false;
    *out = std::move(compiled);
    return true;
  } catch (const std::bad_alloc&) {
    *error = "out of memory while compiling the geo tables";
  } catch (const std::exception& e) {
    *error = std::string("geo compilation failed: ") + e.what();
  }
  return false;
}

namespace {

// Length-prefixed fields, so no two different configurations produce the same key.
void put(std::string* key, const std::string& s) {
  *key += std::to_string(s.size());
  *key += ':';
  *key += s;
}

void put_cidr(std::string* key, const Cidr& c) {
  put(key, std::string(reinterpret_cast<const char*>(c.addr), 16) + static_cast<char>(c.family) +
               static_cast<char>(c.prefix_len));
}

void add_file(std::vector<SourceFile>* out, const std::string& path) {
  SourceFile f;
  f.path = path;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    f.device = static_cast<uint64_t>(st.st_dev);
    f.inode = static_cast<uint64_t>(st.st_ino);
    f.size = static_cast<uint64_t>(st.st_size);
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  out->push_back(std::move(f));
}

}  // namespace

std::string config_key(const GeoConfig& config) {
  std::string key;
  for (const GeoDatabase& db : config.databases) {
    put(&key, "db");
    put(&key, db.name);
    put(&key, db.path);
  }
  for (const ClientSetDef& set : config.sets) {
    put(&key, set.kind == ClientSetDef::Kind::kIspLine ? "isp" : "region");
    put(&key, set.name);
    for (const MmdbMatch& m : set.mmdb) {
      put(&key, "mmdb");
      put(&key, m.database);
      for (const std::string& f : m.field_path) put(&key, f);
      put(&key, "=");
      for (const std::string& v : m.values) put(&key, v);
    }
    for (const Cidr& c : set.cidrs) put_cidr(&key, c);
    for (const std::string& f : set.cidr_files) put(&key, "file:" + f);
  }
  for (const std::string& dc : config.datacenters) put(&key, "dc:" + dc);
  for (const TopologyRecord& t : config.topology) {
    put(&key, "topo");
    if (t.kind == TopologyRecord::Kind::kSet) {
      put(&key, std::to_string(t.set));
    } else {
      put_cidr(&key, t.cidr);
    }
    put(&key, std::to_string(t.datacenter) + "/" + std::to_string(t.score));
  }
  return key;
}

std::vector<SourceFile> stat_sources(const GeoConfig& config) {
  std::vector<SourceFile> out;
  for (const GeoDatabase& db : config.databases) add_file(&out, db.path);
  for (const ClientSetDef& set : config.sets) {
    for (const std::string& f : set.cidr_files) add_file(&out, f);
  }
  return out;
}

bool same_sources(const std::vector<SourceFile>& a, const std::vector<SourceFile>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].path != b[i].path || a[i].device != b[i].device || a[i].inode != b[i].inode ||
        a[i].size != b[i].size || a[i].mtime_ns != b[i].mtime_ns) {
      return false;
    }
  }
  return true;
}

GeoJob::GeoJob() {
  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

GeoJob::~GeoJob() {
  if (thread_.joinable()) thread_.join();
  if (event_fd_ >= 0) close(event_fd_);
}

void GeoJob::run(Result* result) {
  result->ok = compile_shared(result->config, &result->compiled, &result->error);
}

void GeoJob::start(GeoConfig config, uint64_t tag) {
  if (thread_.joinable()) thread_.join();
  busy_ = true;
  Result job;
  job.tag = tag;
  job.config = std::move(config);
  if (event_fd_ < 0) {
    run(&job);
    result_ = std::move(job);
    done_ = true;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = false;
  }
  thread_ = std::thread([this, job = std::move(job)]() mutable {
    run(&job);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      result_ = std::move(job);
      done_ = true;
    }
    const uint64_t one = 1;
    if (write(event_fd_, &one, sizeof(one)) < 0) {
      // The counter cannot overflow with one write per job; nothing else can fail here.
    }
  });
}

bool GeoJob::take(Result* out) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!busy_ || !done_) return false;
    *out = std::move(result_);
    result_ = Result();
    done_ = false;
  }
  if (thread_.joinable()) thread_.join();
  if (event_fd_ >= 0) {
    uint64_t count;
    if (read(event_fd_, &count, sizeof(count)) < 0) {
      // Already drained: fine.
    }
  }
  busy_ = false;
  return true;
}

}  // namespace gtm::control::geo
