// Health publish at scale, stage by stage, in one process with the real components: the steps of
// gtm-control's publish (operator overrides, health and switch policy stamped on a copy of the
// model, the health-only build, the sealed memfd of its overlay) and the PUBLISH of that overlay
// with its base through gtm-dataplane's real control channel over the Unix socket (validation
// against the snapshot in service, RCU swap; its own breakdown from ControlChannel::last_publish).
//
//   gtm-bench-publish CONFIG [ROUNDS]
//
// CONFIG is a YAML configuration (bench/publish_scale_config.py writes the one bench/RESULTS.md
// uses); each round flips the health of one member (down, then up again: a health-only change)
// and prints the median, 99th percentile and maximum of each stage in microseconds; the stages
// marked "compare" are off the path (a full build and a full validation of the same change).
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
    std::printf("%-36s %10s %10s %10s %6s\n", "stage", "median_us", "p99_us", "max_us", "n");
    for (const std::string& name : order_) {
      std::vector<double> v = values_.at(name);
      std::sort(v.begin(), v.end());
      std::printf("%-36s %10.0f %10.0f %10.0f %6zu\n", name.c_str(), v[v.size() / 2],
                  v[std::min(v.size() - 1, v.size() * 99 / 100)], v.back(), v.size());
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
  size_t overlay_size = 0;
  int base_fd = -1;  // the sealed memfd of the compiler's base image
  uint64_t base_id = 0;
  control::SnapshotCompiler compiler;
  control::SnapshotModel stamped;  // reused from image to image, as gtm-control does
  control::SpareMemfd spare;       // prepared after each acknowledgement, as gtm-control does
  const std::string socket_path = std::string(run_dir) + "/dataplane.sock";
  for (int round = 0; round <= rounds; ++round) {
    // gtm-control's path (control/main.cc publish_once): the configuration with overrides,
    // health and switch decisions on top, the health-only build, the sealed memfd, PUBLISH.
    const auto verdict = Clock::now();
    t = verdict;
    // The configuration has not changed since the last round: as gtm-control, only the health
    // fields are reset, and the compiler is told so (no comparison of the whole configuration).
    if (round == 0) {
      control::reset_to_configuration(model, &stamped);
    } else {
      control::copy_health_fields(model, &stamped);
    }
    admin.apply_to(&stamped);
    stages.add("control: reset + overrides", us_since(t));
    t = Clock::now();
    health.annotate(&stamped);
    stages.add("control: annotate health", us_since(t));
    stamped.services[flip_service].pools[flip_pool].members[flip_member].health =
        round % 2 ? snap::MemberHealth::kDown : snap::MemberHealth::kUp;
    t = Clock::now();
    switches.apply(&stamped, Clock::now(), round > 0);
    health.apply_unstable_ttl(&stamped, config.unstable_ttl, Clock::now());
    stages.add("control: switch policy + ttl", us_since(t));
    stamped.generation = ++generation;

    t = Clock::now();
    control::ImageParts parts;
    if (!compiler.build(stamped, &parts, &error, /*with_checksum=*/false, round > 0)) {
      die("build: " + error);
    }
    stages.add("control: health-only build", us_since(t));
    stages.add("control:   of which configuration compare", compiler.stats().compare_us);
    if (round > 0 && !compiler.stats().incremental) die("a health change was built in full");
    image_size = parts.size;
    // As gtm-control does: a full build goes out as the base image's memfd (kept), a health
    // change as an overlay of the sections it recomputed, with that base.
    const control::ImageParts* overlay = compiler.overlay();
    if (compiler.base_id() != base_id) {
      if (base_fd >= 0) close(base_fd);
      const std::vector<uint8_t>& base = *compiler.base_image();
      base_fd = control::make_sealed_memfd(base.data(), base.size(), &error);
      if (base_fd < 0) die(error);
      base_id = compiler.base_id();
    }
    t = Clock::now();
    const int memfd =
        overlay != nullptr ? control::make_sealed_memfd(overlay->parts, &error, &spare) : -1;
    if (overlay != nullptr && memfd < 0) die(error);
    stages.add("control: memfd write + seal", us_since(t));
    if (overlay != nullptr) overlay_size = overlay->size;

    // The exchange through the real channel: connect, send, validate against the image in
    // service, swap, reply (snapshot.bin is saved and the old image freed after the reply).
    t = Clock::now();
    const std::vector<int> fds =
        overlay != nullptr ? std::vector<int>{memfd, base_fd} : std::vector<int>{base_fd};
    control::RequestResult r =
        control::send_request(socket_path, "PUBLISH " + std::to_string(generation), fds, 5000);
    if (!r.ok()) die("publish: " + r.error);
    stages.add("channel: PUBLISH round trip", us_since(t));
    stages.add("TOTAL verdict -> ack", us_since(verdict));
    t = Clock::now();
    if (overlay != nullptr) spare.prepare(overlay->size + (64 << 10));
    stages.add("after the ack: spare memfd", us_since(t));
    const io::ControlChannel::PublishStats p = channel->last_publish();
    stages.add("dataplane:   request -> reply", static_cast<double>(p.total_us));
    stages.add("dataplane:   map", static_cast<double>(p.map_us));
    stages.add("dataplane:   compare with previous", static_cast<double>(p.compare_us));
    stages.add("dataplane:   checks run", static_cast<double>(p.checks_us));
    stages.add("dataplane:   LPM checks run", static_cast<double>(p.lpm_us));
    stages.add("dataplane:   swap", static_cast<double>(p.swap_us));
    stages.add("dataplane:   checks skipped (count)", p.checks_skipped);

    // For comparison, off the path: what the same change costs without the reuse.
    t = Clock::now();
    std::vector<uint8_t> image;
    if (!control::build_snapshot(stamped, &image, &error)) die("build: " + error);
    stages.add("compare: full build", us_since(t));
    t = Clock::now();
    snap::LoadOptions full_validation;
    full_validation.verify_checksum = false;  // as for any sealed memfd: only the reuse is off
    snap::LoadedSnapshot* loaded =
        overlay != nullptr
            ? snap::LoadedSnapshot::from_overlay(memfd, base_fd, &error, full_validation)
            : snap::LoadedSnapshot::from_fd(base_fd, &error, full_validation);
    if (loaded == nullptr) die("validate: " + error);
    stages.add("compare: full map + validate", us_since(t));
    delete loaded;
    if (memfd >= 0) close(memfd);
    if (round == 0) stages = Stages();  // the first image is a full load: not a health change
  }
  if (base_fd >= 0) close(base_fd);
  std::printf(
      "members=%zu services=%zu image_bytes=%zu overlay_bytes=%zu rounds=%d\n",
      [&] {
        size_t n = 0;
        for (const auto& s : model.services)
          for (const auto& p : s.pools) n += p.members.size();
        return n;
      }(),
      model.services.size(), image_size, overlay_size, rounds);
  stages.print();

  const uint64_t one = 1;
  if (write(stop_fd, &one, sizeof(one)) != sizeof(one)) die("eventfd write");
  channel.reset();
  close(stop_fd);
  std::string rm = std::string("rm -rf ") + run_dir;
  if (std::system(rm.c_str()) != 0) die("rm");
  return 0;
}
