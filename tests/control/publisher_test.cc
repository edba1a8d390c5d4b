// The publisher against a fake dataplane: a thread listening on <tmp>/dataplane.sock that receives
// the request (and fd), inspects it as the real dataplane would, and replies.
#include "control/publish/publisher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/io/control_protocol.h"

namespace gtm::control {
namespace {

constexpr int kAllSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;

struct Received {
  std::string request;
  bool had_fd = false;
  int seals = 0;
  std::vector<uint8_t> content;
};

class TempRunDir {
 public:
  TempRunDir() {
    char tmpl[] = "/tmp/gtm-publisher-test-XXXXXX";
    char* d = mkdtemp(tmpl);
    if (d != nullptr) path_ = d;
  }
  ~TempRunDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }
  std::string socket() const { return path_ + "/" + proto::kDataplaneSocket; }

 private:
  std::string path_;
};

// Serves exactly one connection: receives one request, records it, and sends handler(request)
// unless the handler returns nullopt (then it waits for the client to hang up).
class FakeDataplane {
 public:
  using Handler = std::function<std::optional<std::string>(const Received&)>;

  FakeDataplane(const std::string& socket_path, Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
    bound_ = listen_fd_ >= 0 &&
             bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
             listen(listen_fd_, 4) == 0;
    if (bound_) thread_ = std::thread([this] { serve_one(); });
  }
  ~FakeDataplane() {
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  bool bound() const { return bound_; }
  // Waits for the server thread; afterwards received() is safe to read.
  const Received& received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

 private:
  void serve_one() {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return;
    int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    char buf[proto::kMaxMessage];
    iovec iov{buf, sizeof(buf)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    if (n > 0) {
      received_.request.assign(buf, static_cast<size_t>(n));
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int fd;
        std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
        received_.had_fd = true;
        received_.seals = fcntl(fd, F_GET_SEALS);
        struct stat st {};
        if (fstat(fd, &st) == 0) {
          received_.content.resize(static_cast<size_t>(st.st_size));
          if (pread(fd, received_.content.data(), received_.content.size(), 0) != st.st_size) {
            received_.content.clear();
          }
        }
        close(fd);
      }
      std::optional<std::string> reply = handler_(received_);
      if (reply) {
        (void)send(conn, reply->data(), reply->size(), MSG_NOSIGNAL);
      }
      // Linger until the client hangs up, as the real dataplane's per-connection loop would.
      pollfd c{conn, POLLIN, 0};
      (void)poll(&c, 1, 5000);
    }
    close(conn);
  }

  Handler handler_;
  int listen_fd_ = -1;
  bool bound_ = false;
  std::thread thread_;
  Received received_;
};

std::vector<uint8_t> sample_image(size_t len) {
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = static_cast<uint8_t>(i * 131 + 7);
  return v;
}

TEST(PublisherTest, PublishesSealedImageAndReturnsAckedGeneration) {
  TempRunDir dir;
  ASSERT_FALSE(dir.path().empty());
  FakeDataplane dp(dir.socket(), [](const Received& r) -> std::optional<std::string> {
    return r.request == "PUBLISH 7" ? "OK 7" : "ERR unexpected request";
  });
  ASSERT_TRUE(dp.bound());
  std::vector<uint8_t> image = sample_image(100000);

  PublishResult res = publish_image(dir.path(), 7, image.data(), image.size());
  EXPECT_TRUE(res.ok()) << res.error;
  EXPECT_EQ(res.generation, 7u);
  EXPECT_GT(res.round_trip_us, 0u);

  const Received& got = dp.received();
  EXPECT_EQ(got.request, "PUBLISH 7");
  ASSERT_TRUE(got.had_fd);
  EXPECT_EQ(got.seals & kAllSeals, kAllSeals);
  EXPECT_EQ(got.content, image);
}

TEST(PublisherTest, TrailingSlashInRunDirIsAccepted) {
  TempRunDir dir;
  FakeDataplane dp(dir.socket(),
                   [](const Received&) -> std::optional<std::string> { return "OK 1"; });
  ASSERT_TRUE(dp.bound());
  std::vector<uint8_t> image = sample_image(64);
  PublishResult res = publish_image(dir.path() + "/", 1, image.data(), image.size());
  EXPECT_TRUE(res.ok()) << res.error;
}

TEST(PublisherTest, ErrReplyIsReportedAsRefusedWithReason) {
  TempRunDir dir;
  FakeDataplane dp(dir.socket(), [](const Received&) -> std::optional<std::string> {
    return "ERR stale generation 3 (active 5)";
  });
  ASSERT_TRUE(dp.bound());
  std::vector<uint8_t> image = sample_image(256);

  PublishResult res = publish_image(dir.path(), 3, image.data(), image.size());
  EXPECT_FALSE(res.ok());
  EXPECT_EQ(res.status, RequestStatus::kRefused);
  EXPECT_EQ(res.error, "stale generation 3 (active 5)");
}

TEST(PublisherTest, AckOfAnotherGenerationIsAFailure) {
  TempRunDir dir;
  FakeDataplane dp(dir.socket(),
                   [](const Received&) -> std::optional<std::string> { return "OK 6"; });
  ASSERT_TRUE(dp.bound());
  std::vector<uint8_t> image = sample_image(16);

  PublishResult res = publish_image(dir.path(), 7, image.data(), image.size());
  EXPECT_FALSE(res.ok());
  EXPECT_EQ(res.status, RequestStatus::kFailed);
  EXPECT_NE(res.error.find("OK 6"), std::string::npos) << res.error;
}

TEST(PublisherTest, MissingSocketIsUnreachable) {
  TempRunDir dir;
  std::vector<uint8_t> image = sample_image(16);
  PublishResult res = publish_image(dir.path(), 1, image.data(), image.size());
  EXPECT_EQ(res.status, RequestStatus::kUnreachable);
  GenerationResult g = query_generation(dir.path());
  EXPECT_EQ(g.status, RequestStatus::kUnreachable);
}

TEST(PublisherTest, StaleSocketFileWithNoListenerIsUnreachable) {
  TempRunDir dir;
  {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, dir.socket().c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(fd);  // the file stays, as after a crashed dataplane
  }
  GenerationResult g = query_generation(dir.path());
  EXPECT_EQ(g.status, RequestStatus::kUnreachable) << g.error;
}

TEST(PublisherTest, SilentDataplaneTimesOut) {
  TempRunDir dir;
  FakeDataplane dp(dir.socket(),
                   [](const Received&) -> std::optional<std::string> { return std::nullopt; });
  ASSERT_TRUE(dp.bound());
  std::vector<uint8_t> image = sample_image(16);

  auto start = std::chrono::steady_clock::now();
  PublishResult res = publish_image(dir.path(), 1, image.data(), image.size(), 200);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(res.status, RequestStatus::kFailed);
  EXPECT_NE(res.error.find("timed out"), std::string::npos) << res.error;
  EXPECT_GE(took, std::chrono::milliseconds(150));
  EXPECT_LT(took, std::chrono::milliseconds(2000));
}

TEST(PublisherTest, QueryGenerationParsesReply) {
  TempRunDir dir;
  FakeDataplane dp(dir.socket(), [](const Received& r) -> std::optional<std::string> {
    return r.request == "GENERATION" && !r.had_fd ? "OK 42" : "ERR bad";
  });
  ASSERT_TRUE(dp.bound());
  GenerationResult g = query_generation(dir.path());
  EXPECT_TRUE(g.ok()) << g.error;
  EXPECT_EQ(g.generation, 42u);
}

TEST(PublisherTest, QueryGenerationRejectsGarbage) {
  for (const char* reply : {"OK", "OK ", "OK 12x", "HELLO", "OK 99999999999999999999999"}) {
    TempRunDir dir;
    FakeDataplane dp(dir.socket(), [reply](const Received&) -> std::optional<std::string> {
      return std::string(reply);
    });
    ASSERT_TRUE(dp.bound());
    GenerationResult g = query_generation(dir.path());
    EXPECT_FALSE(g.ok()) << "reply " << reply;
  }
}

TEST(PublisherTest, SendRequestReturnsRawReply) {
  TempRunDir dir;
  FakeDataplane dp(dir.socket(), [](const Received& r) -> std::optional<std::string> {
    return r.request == "STATUS" ? "{\"generation\":3}" : "ERR no";
  });
  ASSERT_TRUE(dp.bound());
  RequestResult r = send_request(dir.socket(), "STATUS");
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.reply, "{\"generation\":3}");
}

TEST(PublisherTest, SealedMemfdCannotBeModified) {
  std::vector<uint8_t> image = sample_image(4096);
  std::string error;
  int fd = make_sealed_memfd(image.data(), image.size(), &error);
  ASSERT_GE(fd, 0) << error;
  EXPECT_EQ(fcntl(fd, F_GET_SEALS) & kAllSeals, kAllSeals);
  uint8_t b = 0;
  EXPECT_LT(pwrite(fd, &b, 1, 0), 0);
  EXPECT_NE(ftruncate(fd, 10), 0);
  EXPECT_NE(ftruncate(fd, 8192), 0);
  EXPECT_NE(fcntl(fd, F_ADD_SEALS, 0), 0);  // F_SEAL_SEAL: no seal changes at all
  EXPECT_EQ(mmap(nullptr, image.size(), PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  std::vector<uint8_t> back(image.size());
  EXPECT_EQ(pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(back, image);
  close(fd);
}

TEST(PublisherTest, RunDirPathJoinsOnce) {
  EXPECT_EQ(run_dir_path("/run/gtm", "x.sock"), "/run/gtm/x.sock");
  EXPECT_EQ(run_dir_path("/run/gtm/", "x.sock"), "/run/gtm/x.sock");
}

}  // namespace
}  // namespace gtm::control
