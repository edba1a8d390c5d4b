// Health publish at scale, stage by stage, in one process with the real components: the steps of
// gtm-control's publish (operator overrides, health and switch policy stamped on a copy of the
// model, build, sealed memfd) and of gtm-dataplane's (validation, RCU swap, saving snapshot.bin),
// then the same image through the real control channel (PUBLISH over the Unix socket).
//
//   gtm-bench-publish CONFIG [ROUNDS]
//
// CONFIG is a YAML configuration (bench/publish_scale_config.py writes the one bench/RESULTS.md
// uses); each round flips the health of one member (down, then up again: a health-only change)
// and prints the median and 90th percentile of each stage in microseconds.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "control/admin_state.h"
#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "control/geo/geo_job.h"
#include "control/monitor/health_tracker.h"
#include "control/monitor/prober.h"
#include "control/policy/switch_policy.h"
#include "control/publish/publisher.h"
#include "dataplane/io/control_channel.h"
#include "dataplane/io/snapshot_slot.h"
#include "dataplane/snapshot/snapshot.h"

namespace {

using namespace gtm;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

class Stages {
 public:
  void add(const std::string& name, double us) {
    if (values_.find(name) == values_.end()) order_.push_back(name);
    values_[name].push_back(us);
  }
  void print() const {
    std::printf("%-34s %10s %10s %6s\n", "stage", "median_us", "p90_us", "n");
    for (const std::string& name : order_) {
      std::vector<double> v = values_.at(name);
      std::sort(v.begin(), v.end());
      std::printf("%-34s %10.0f %10.0f %6zu\n", name.c_str(), v[v.size() / 2],
                  v[std::min(v.size() - 1, v.size() * 9 / 10)], v.size());
    }
  }

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::vector<double>> values_;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "gtm-bench-publish: %s\n", what.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: gtm-bench-publish CONFIG [ROUNDS]");
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 20;

  control::LoadedConfig config;
  control::ConfigError cerr;
  if (!control::load_config_file(argv[1], &config, &cerr)) die(cerr.to_string());
  std::string error;
  auto t = Clock::now();
  if (!config.geo.empty() && !control::geo::compile_shared(config.geo, &config.model.geo, &error)) {
    die("geo: " + error);
  }
  std::printf("geo compiled in %.0f ms\n", us_since(t) / 1000);
  const control::SnapshotModel& model = config.model;

  control::Prober prober;
  control::HealthTracker health;
  if (!health.configure(model, config.monitors, &prober, Clock::now(), &error)) die(error);
  control::AdminOverrides admin;
  control::SwitchTracker switches;

  // The member whose health flips: the first one with monitors.
  size_t flip_service = 0, flip_pool = 0, flip_member = 0;
  bool found = false;
  for (size_t s = 0; s < model.services.size() && !found; ++s) {
    for (size_t p = 0; p < model.services[s].pools.size() && !found; ++p) {
      for (size_t m = 0; m < model.services[s].pools[p].members.size() && !found; ++m) {
        if (model.services[s].pools[p].members[m].monitors.empty()) continue;
        flip_service = s, flip_pool = p, flip_member = m, found = true;
      }
    }
  }
  if (!found) die("the configuration has no monitored member to flip");

  // The dataplane side: a slot with one reader id and the real control channel.
  char run_dir[] = "/tmp/gtm-bench-publish-XXXXXX";
  if (mkdtemp(run_dir) == nullptr) die("mkdtemp");
  std::unique_ptr<io::SnapshotSlot> slot = io::SnapshotSlot::create(1, &error);
  if (!slot) die(error);
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  auto channel = std::make_unique<io::ControlChannel>(slot.get(), run_dir, stop_fd,
                                                      std::vector<io::WorkerStatsSource>{});
  if (!channel->open(&error) || !channel->start(&error)) die(error);

  Stages stages;
  uint64_t generation = 0;
  size_t image_size = 0;
  for (int round = 0; round <= rounds; ++round) {
    // gtm-control: the configuration with overrides, health and switch decisions on top.
    t = Clock::now();
    control::SnapshotModel stamped = admin.applied_to(model);
    stages.add("control: copy + overrides", us_since(t));
    t = Clock::now();
    health.annotate(&stamped);
    stages.add("control: annotate health", us_since(t));
    stamped.services[flip_service].pools[flip_pool].members[flip_member].health =
        round % 2 ? snap::MemberHealth::kDown : snap::MemberHealth::kUp;
    t = Clock::now();
    switches.apply(&stamped, Clock::now());
    health.apply_unstable_ttl(&stamped, config.unstable_ttl, Clock::now());
    stages.add("control: switch policy + ttl", us_since(t));
    stamped.generation = ++generation;

    t = Clock::now();
    std::vector<uint8_t> image;
    if (!control::build_snapshot(stamped, &image, &error)) die("build: " + error);
    stages.add("control: build", us_since(t));
    image_size = image.size();

    t = Clock::now();
    const int memfd = control::make_sealed_memfd(image.data(), image.size(), &error);
    if (memfd < 0) die(error);
    stages.add("control: memfd write + seal", us_since(t));

    // gtm-dataplane's steps one by one, on a second copy (not the one in service).
    t = Clock::now();
    snap::LoadedSnapshot* loaded = snap::LoadedSnapshot::from_fd(memfd, &error);
    if (loaded == nullptr) die("validate: " + error);
    stages.add("dataplane: map + validate", us_since(t));
    t = Clock::now();
    const snap::Header& h = loaded->view().header();
    volatile uint64_t sum =
        snap::image_checksum(loaded->data() + h.header_size, loaded->size() - h.header_size);
    (void)sum;
    stages.add("dataplane:   of which checksum", us_since(t));
    t = Clock::now();
    for (uint32_t i = 0; i < h.section_count; ++i) {
      const snap::SectionEntry& e = h.sections[i];
      if (e.id != snap::kSecLpm4 && e.id != snap::kSecLpm6) continue;
      geo::Lpm4View v4;
      geo::Lpm6View v6;
      const bool ok = e.id == snap::kSecLpm4
                          ? v4.validate(loaded->data() + e.offset, e.size, 1u << 20, &error)
                          : v6.validate(loaded->data() + e.offset, e.size, 1u << 20, &error);
      if (!ok) die("lpm: " + error);
    }
    stages.add("dataplane:   of which LPM tables", us_since(t));
    t = Clock::now();
    if (!snap::write_snapshot_file(std::string(run_dir) + "/copy.bin", loaded->data(),
                                   loaded->size(), &error)) {
      die(error);
    }
    stages.add("dataplane: write snapshot.bin copy", us_since(t));
    delete loaded;

    // The whole exchange through the real channel: connect, send, validate, swap, save, reply.
    t = Clock::now();
    control::RequestResult r =
        control::send_request(std::string(run_dir) + "/dataplane.sock",
                              "PUBLISH " + std::to_string(generation), memfd, 5000);
    if (!r.ok()) die("publish: " + r.error);
    stages.add("channel: PUBLISH round trip", us_since(t));
    close(memfd);
    const io::ControlChannel::PublishStats p = channel->last_publish();
    stages.add("channel:   request -> reply", static_cast<double>(p.total_us));
    stages.add("channel:   map", static_cast<double>(p.map_us));
    stages.add("channel:   compare with previous", static_cast<double>(p.compare_us));
    stages.add("channel:   checks run", static_cast<double>(p.checks_us));
    stages.add("channel:   LPM checks run", static_cast<double>(p.lpm_us));
    stages.add("channel:   swap", static_cast<double>(p.swap_us));
    stages.add("channel:   checks skipped (count)", p.checks_skipped);
    if (round == 0) stages = Stages();  // the first image is a full load: not a health change
  }
  std::printf("members=%zu services=%zu image_bytes=%zu rounds=%d\n",
              [&] {
                size_t n = 0;
                for (const auto& s : model.services)
                  for (const auto& p : s.pools) n += p.members.size();
                return n;
              }(),
              model.services.size(), image_size, rounds);
  stages.print();

  const uint64_t one = 1;
  if (write(stop_fd, &one, sizeof(one)) != sizeof(one)) die("eventfd write");
  channel.reset();
  close(stop_fd);
  std::string rm = std::string("rm -rf ") + run_dir;
  if (std::system(rm.c_str()) != 0) die("rm");
  return 0;
}
