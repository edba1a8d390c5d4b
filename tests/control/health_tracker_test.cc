#include "control/monitor/health_tracker.h"

#include <gtest/gtest.h>

#include <string>

#include "control/admin_state.h"
#include "control/config/config_loader.h"

namespace gtm::control {
namespace {

const char* kConfig = R"(
zones:
  - name: example.com.
    soa: {mname: ns1, rname: hostmaster, serial: 1}
    ns: [ns1]
    records:
      - {name: ns1, type: A, data: 192.0.2.1}
monitors:
  - {name: tcp, type: tcp, port: 80, rise: 2, fall: 3}
  - {name: web, type: http, port: 8080, path: /hc, expect_status: ["200", "204-299"]}
services:
  - name: www.example.com.
    ttl: 30
    pools:
      - name: p
        monitors: [tcp]
        members:
          - {name: a, address: 192.0.2.10}
          - {name: b, address: 192.0.2.11, monitors: [tcp, web]}
          - {name: c, address: 192.0.2.12, monitors: []}
          - {name: d, address: 192.0.2.13, mode: always-up}
          - {name: e, address: 192.0.2.11, monitors: [tcp, web], monitor_rule: any}
  - name: api.example.com.
    ttl: 30
    pools:
      - name: q
        members:
          - {name: a-again, address: 192.0.2.10, monitors: [tcp]}
)";

// A configuration of just one zone, for tests that add monitors or services to it.
const std::string kZone = R"(
zones:
  - name: example.com.
    soa: {mname: ns1, rname: hostmaster, serial: 1}
    ns: [ns1]
)";

// The error that loading `text` must fail with.
ConfigError load_error(const std::string& text) {
  LoadedConfig c;
  ConfigError e;
  EXPECT_FALSE(load_config_string(text, "t.yaml", &c, &e));
  return e;
}

struct HealthTrackerTest : ::testing::Test {
  void SetUp() override {
    ConfigError err;
    ASSERT_TRUE(load_config_string(kConfig, "t.yaml", &config, &err)) << err.to_string();
    std::string error;
    ASSERT_TRUE(
        tracker.configure(config.model, config.monitors, &prober, ProbeClock::now(), &error))
        << error;
  }
  // Index of the probe target with this label.
  size_t target(const std::string& label) {
    for (size_t i = 0; i < labels().size(); ++i) {
      if (labels()[i] == label) return i;
    }
    ADD_FAILURE() << "no target " << label;
    return 0;
  }
  std::vector<std::string> labels() {
    // Reconstructs the labels the tracker gave the prober, in its order.
    std::vector<std::string> out;
    for (const char* l : {"192.0.2.10:80 (tcp)", "192.0.2.11:80 (tcp)", "192.0.2.11:8080 (web)"}) {
      out.push_back(l);
    }
    return out;
  }
  snap::MemberHealth health_of(const std::string& member) {
    SnapshotModel m = config.model;
    tracker.annotate(&m);
    for (const ServiceModel& s : m.services) {
      for (const PoolModel& p : s.pools) {
        for (const MemberModel& mm : p.members) {
          if (mm.name == member) return mm.health;
        }
      }
    }
    ADD_FAILURE() << "no member " << member;
    return snap::MemberHealth::kUnknown;
  }
  bool feed(size_t t, bool ok) {
    std::string reason;
    return tracker.apply({{t, ok, ok ? "connected" : "connect: refused"}}, ProbeClock::now(),
                         &reason);
  }

  LoadedConfig config;
  Prober prober;
  HealthTracker tracker;
};

TEST_F(HealthTrackerTest, TargetsAreSharedAndOnlyForMonitoredAutoMembers) {
  // a and a-again share 192.0.2.10:80; b has two monitors; c opted out; d is always-up.
  EXPECT_EQ(tracker.target_count(), 3u);
  EXPECT_EQ(prober.target_count(), 3u);
  EXPECT_EQ(health_of("c"), snap::MemberHealth::kUnknown);
  EXPECT_EQ(health_of("d"), snap::MemberHealth::kUnknown);
}

TEST_F(HealthTrackerTest, RiseAndFallAreExact) {
  const size_t a = target("192.0.2.10:80 (tcp)");
  EXPECT_EQ(health_of("a"), snap::MemberHealth::kUnknown);
  EXPECT_FALSE(feed(a, true));  // 1 success < rise 2
  EXPECT_EQ(health_of("a"), snap::MemberHealth::kUnknown);
  EXPECT_TRUE(feed(a, true));  // 2nd: up
  EXPECT_EQ(health_of("a"), snap::MemberHealth::kUp);
  EXPECT_EQ(health_of("a-again"), snap::MemberHealth::kUp);  // same target
  EXPECT_FALSE(feed(a, false));
  EXPECT_FALSE(feed(a, false));
  EXPECT_FALSE(feed(a, true));  // the run of failures is broken
  EXPECT_FALSE(feed(a, false));
  EXPECT_FALSE(feed(a, false));
  EXPECT_EQ(health_of("a"), snap::MemberHealth::kUp);
  EXPECT_TRUE(feed(a, false));  // 3rd consecutive failure: down
  EXPECT_EQ(health_of("a"), snap::MemberHealth::kDown);
  EXPECT_FALSE(feed(a, false));  // already down: no change
}

TEST_F(HealthTrackerTest, AllMonitorsMustBeUp) {
  const size_t tcp = target("192.0.2.11:80 (tcp)");
  const size_t web = target("192.0.2.11:8080 (web)");
  feed(tcp, true);
  feed(tcp, true);
  EXPECT_EQ(health_of("b"), snap::MemberHealth::kUnknown);  // web has no verdict yet
  feed(web, true);
  feed(web, true);
  EXPECT_EQ(health_of("b"), snap::MemberHealth::kUp);
  for (int i = 0; i < 3; ++i) feed(web, false);
  EXPECT_EQ(health_of("b"), snap::MemberHealth::kDown);  // one monitor down is enough
}

TEST_F(HealthTrackerTest, AnyRuleNeedsOneUpAndAllDownToFail) {
  // e shares b's two targets but needs only one of them up.
  const size_t tcp = target("192.0.2.11:80 (tcp)");
  const size_t web = target("192.0.2.11:8080 (web)");
  feed(tcp, true);
  feed(tcp, true);
  EXPECT_EQ(health_of("e"), snap::MemberHealth::kUp);       // web still unknown
  EXPECT_EQ(health_of("b"), snap::MemberHealth::kUnknown);  // b needs both
  for (int i = 0; i < 3; ++i) feed(tcp, false);
  EXPECT_EQ(health_of("e"), snap::MemberHealth::kUnknown);  // web could still say up
  for (int i = 0; i < 3; ++i) feed(web, false);
  EXPECT_EQ(health_of("e"), snap::MemberHealth::kDown);
  feed(web, true);
  feed(web, true);
  EXPECT_EQ(health_of("e"), snap::MemberHealth::kUp);
  EXPECT_EQ(health_of("b"), snap::MemberHealth::kDown);
}

TEST_F(HealthTrackerTest, StateSurvivesAReconfigure) {
  const size_t a = target("192.0.2.10:80 (tcp)");
  feed(a, true);
  feed(a, true);
  std::string error;
  ASSERT_TRUE(tracker.configure(config.model, config.monitors, &prober, ProbeClock::now(), &error));
  EXPECT_EQ(health_of("a"), snap::MemberHealth::kUp);
}

TEST(MonitorConfig, SpecsAndErrors) {
  LoadedConfig cfg;
  ConfigError err;
  ASSERT_TRUE(load_config_string(kConfig, "t.yaml", &cfg, &err)) << err.to_string();
  ASSERT_EQ(cfg.monitors.size(), 2u);
  EXPECT_EQ(cfg.monitors[1].status_ranges,
            (std::vector<std::pair<uint16_t, uint16_t>>{{200, 200}, {204, 299}}));
  EXPECT_EQ(cfg.monitors[0].timeout_ms, 800u);

  // A dns monitor's query is built at load time: ID "gt", one question, class IN.
  LoadedConfig dns_cfg;
  ASSERT_TRUE(load_config_string(
      "zones:\n  - name: example.com.\n    soa: {mname: ns1, rname: h, serial: 1}\n    ns: [ns1]\n"
      "monitors:\n  - {name: d, type: dns, port: 53, query_name: Probe.Example., query_type: "
      "AAAA, expect_rcode: NXDOMAIN, expect_address: \"2001:db8::1\"}\n",
      "t.yaml", &dns_cfg, &err))
      << err.to_string();
  ASSERT_EQ(dns_cfg.monitors.size(), 1u);
  const std::string want = std::string("\x67\x74\0\0\0\1\0\0\0\0\0\0", 12) +
                           std::string(
                               "\x05"
                               "probe"
                               "\x07"
                               "example"
                               "\0",
                               15) +
                           std::string("\0\x1c\0\1", 4);
  EXPECT_EQ(dns_cfg.monitors[0].send, want);
  EXPECT_EQ(dns_cfg.monitors[0].expect_rcode, 3);
  EXPECT_EQ(dns_cfg.monitors[0].expect_address.size(), 16u);

  auto error_of = [](const std::string& tail) { return load_error(kZone + tail).to_string(); };
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: ping, port: 1}\n").find("must be one of tcp"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: tcp}\n").find("'port'"), std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: udp, port: 7}\n").find("need 'send'"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: dns, port: 53}\n").find("'query_name'"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: dns, port: 53, query_name: a., "
                     "query_type: BOGUS}\n")
                .find("unknown query_type 'BOGUS'"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: dns, port: 53, query_name: a., "
                     "expect_rcode: FINE}\n")
                .find("must be one of NOERROR"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: tcp, port: 53, query_name: a.}\n")
                .find("only valid for dns"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: tcp, port: 1, interval_ms: 50}\n")
                .find("'interval_ms' must be an integer in 100.."),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: tcp, port: 1, interval_ms: 200, "
                     "timeout_ms: 200}\n")
                .find("less than 'interval_ms'"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: tcp, port: 1, path: /x}\n")
                .find("only valid for http"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: http, port: 1, expect_status: \"299-200\"}\n")
                .find("empty range"),
            std::string::npos);
  EXPECT_NE(error_of("services:\n  - name: www.example.com.\n    ttl: 1\n    pools:\n      - name: "
                     "p\n        members:\n          - {address: 192.0.2.1, monitors: [nope]}\n")
                .find("unknown monitor 'nope'"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: tcp, port: 1}\nservices:\n  - name: "
                     "www.example.com.\n    ttl: 1\n    pools:\n      - name: p\n        "
                     "members:\n          - {address: 192.0.2.1, monitors: [m], monitor_rule: 2}\n")
                .find("monitor_rule needs 2 monitors up but the member has 1"),
            std::string::npos);
  EXPECT_NE(error_of("monitors:\n  - {name: m, type: tcp, port: 1}\nservices:\n  - name: "
                     "www.example.com.\n    ttl: 1\n    pools:\n      - name: p\n        "
                     "monitor_rule: most\n        members:\n          - {address: 192.0.2.1}\n")
                .find("all, any or a count"),
            std::string::npos);
}

}  // namespace
}  // namespace gtm::control

namespace gtm::control {
namespace {

const char* kUnstableConfig = R"(
options: {unstable_ttl: 5, unstable_window_ms: 10000}
zones:
  - name: example.com.
    soa: {mname: ns1, rname: hostmaster, serial: 1}
    ns: [ns1]
monitors:
  - {name: tcp, type: tcp, port: 80, rise: 1, fall: 1}
services:
  - name: www.example.com.
    ttl: 30
    pools:
      - name: p
        monitors: [tcp]
        members:
          - {name: a, address: 192.0.2.10}
          - {name: b, address: 192.0.2.11}
  - name: api.example.com.
    ttl: 60
    unstable_window_ms: 2000
    pools:
      - name: q
        members:
          - {name: a, address: 192.0.2.10, monitors: [tcp]}
  - name: low.example.com.
    ttl: 3
    pools:
      - name: q
        members:
          - {name: a, address: 192.0.2.10, monitors: [tcp]}
  - name: steady.example.com.
    ttl: 30
    unstable_ttl: 1
    pools:
      - name: q
        members:
          - {name: b, address: 192.0.2.11, monitors: [tcp]}
)";

uint32_t ttl_of(const SnapshotModel& m, const char* service) {
  for (const ServiceModel& s : m.services) {
    if (wire_name_text(s.name) == service) return s.ttl;
  }
  ADD_FAILURE() << "no service " << service;
  return 0;
}

TEST(UnstableTtl, LoweredWhileAMemberFlappedWithinTheWindow) {
  LoadedConfig config;
  ConfigError err;
  ASSERT_TRUE(load_config_string(kUnstableConfig, "t.yaml", &config, &err)) << err.to_string();
  ASSERT_EQ(config.unstable_ttl.size(), 4u);
  Prober prober;
  HealthTracker tracker;
  std::string error, reason;
  const ProbeClock::time_point t0 = ProbeClock::now();
  ASSERT_TRUE(tracker.configure(config.model, config.monitors, &prober, t0, &error)) << error;
  // Targets in configuration order: 192.0.2.10:80, then 192.0.2.11:80.
  auto stamped = [&](ProbeClock::time_point now, ProbeClock::time_point* restore) {
    SnapshotModel m = config.model;
    tracker.annotate(&m);
    *restore = tracker.apply_unstable_ttl(&m, config.unstable_ttl, now);
    return m;
  };
  ProbeClock::time_point restore;

  // Coming up for the first time is not instability.
  ASSERT_TRUE(tracker.apply({{0, true, "ok"}, {1, true, "ok"}}, t0, &reason));
  SnapshotModel m = stamped(t0, &restore);
  EXPECT_EQ(ttl_of(m, "www.example.com."), 30u);
  EXPECT_EQ(restore, ProbeClock::time_point::max());

  // 192.0.2.10 goes down at t1: every service with it answers with its unstable TTL.
  const ProbeClock::time_point t1 = t0 + std::chrono::seconds(100);
  ASSERT_TRUE(tracker.apply({{0, false, "refused"}}, t1, &reason));
  m = stamped(t1, &restore);
  EXPECT_EQ(ttl_of(m, "www.example.com."), 5u);
  EXPECT_EQ(ttl_of(m, "api.example.com."), 5u);      // the window from options, overridden
  EXPECT_EQ(ttl_of(m, "low.example.com."), 3u);      // already below: min(ttl, unstable_ttl)
  EXPECT_EQ(ttl_of(m, "steady.example.com."), 30u);  // its member did not change
  EXPECT_EQ(restore, t1 + std::chrono::seconds(2));  // api's window ends first

  m = stamped(t1 + std::chrono::milliseconds(2500), &restore);
  EXPECT_EQ(ttl_of(m, "api.example.com."), 60u);
  EXPECT_EQ(ttl_of(m, "www.example.com."), 5u);
  EXPECT_EQ(restore, t1 + std::chrono::seconds(10));

  // Back up at t2: the window starts again from the latest change; a reload keeps it.
  const ProbeClock::time_point t2 = t1 + std::chrono::seconds(8);
  ASSERT_TRUE(tracker.apply({{0, true, "ok"}}, t2, &reason));
  ASSERT_TRUE(tracker.configure(config.model, config.monitors, &prober, t2, &error)) << error;
  m = stamped(t1 + std::chrono::seconds(12), &restore);
  EXPECT_EQ(ttl_of(m, "www.example.com."), 5u);
  EXPECT_EQ(restore, t2 + std::chrono::seconds(10));
  m = stamped(t2 + std::chrono::seconds(10), &restore);
  EXPECT_EQ(ttl_of(m, "www.example.com."), 30u);
  EXPECT_EQ(restore, ProbeClock::time_point::max());
}

TEST(UnstableTtl, ConfigurationErrors) {
  auto error_of = [](const std::string& text) { return load_error(text).to_string(); };
  const std::string& zone = kZone;
  EXPECT_EQ(error_of("options: {unstable_window_ms: 5000}\n" + zone),
            "t.yaml:1:31: 'unstable_window_ms' needs 'unstable_ttl'");
  EXPECT_NE(error_of(zone + "services:\n  - name: www.example.com.\n    ttl: 1\n"
                            "    unstable_window_ms: 500\n    unstable_ttl: 0\n    pools:\n"
                            "      - name: p\n        members:\n          - {address: 192.0.2.1}\n")
                .find("'unstable_window_ms' must be an integer in 1000..86400000"),
            std::string::npos);
  EXPECT_NE(error_of(zone + "services:\n  - name: www.example.com.\n    ttl: 1\n"
                            "    unstable_window_ms: 5000\n    pools:\n"
                            "      - name: p\n        members:\n          - {address: 192.0.2.1}\n")
                .find("t.yaml:9:25: 'unstable_window_ms' needs 'unstable_ttl'"),
            std::string::npos);
}

TEST(IcmpMonitorConfig, CountLossAndNoPort) {
  const std::string& zone = kZone;
  LoadedConfig c;
  ConfigError e;
  ASSERT_TRUE(load_config_string(zone + "monitors:\n  - {name: p, type: icmp}\n  - {name: q, "
                                        "type: icmp, count: 10, max_loss_percent: 20}\n  - {name: "
                                        "h, type: tcp-half-open, port: 443}\n",
                                 "t.yaml", &c, &e))
      << e.to_string();
  ASSERT_EQ(c.monitors.size(), 3u);
  EXPECT_EQ(c.monitors[0].type, MonitorSpec::Type::kIcmp);
  EXPECT_EQ(c.monitors[0].count, 3u);
  EXPECT_EQ(c.monitors[0].max_loss_percent, 50u);
  EXPECT_EQ(c.monitors[1].count, 10u);
  EXPECT_EQ(c.monitors[1].max_loss_percent, 20u);
  EXPECT_EQ(c.monitors[2].type, MonitorSpec::Type::kTcpHalfOpen);
  EXPECT_EQ(c.monitors[2].port, 443);
  auto error_of = [](const std::string& monitor) {
    return load_error(kZone + "monitors:\n  - " + monitor + "\n").message;
  };
  EXPECT_EQ(error_of("{name: p, type: icmp, port: 7}"),
            "'port' is not valid for icmp monitors (an echo has no port)");
  EXPECT_EQ(error_of("{name: p, type: icmp, count: 65}"),
            "'count' must be an integer in 1..64, got '65'");
  EXPECT_EQ(error_of("{name: p, type: icmp, max_loss_percent: 100}"),
            "'max_loss_percent' must be an integer in 0..99, got '100'");
  EXPECT_EQ(error_of("{name: p, type: tcp, port: 1, count: 2}"),
            "'count' is only valid for icmp monitors");
  EXPECT_EQ(error_of("{name: p, type: tcp-half-open}"), "missing key 'port' in monitor");
  EXPECT_EQ(error_of("{name: p, type: tcp-half-open, port: 1, send: x}"),
            "'send' is only valid for tcp and udp monitors");
  EXPECT_EQ(error_of("{name: p, type: icmp, command: [/bin/true]}"),
            "'command' is only valid for external monitors");
}

}  // namespace
}  // namespace gtm::control
