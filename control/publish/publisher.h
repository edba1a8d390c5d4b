// Client side of the local control protocol (dataplane/io/control_protocol.h): hands a snapshot
// image to gtm-dataplane in a sealed memfd, asks for its active generation, and sends plain
// request/reply datagrams (used by gtmctl for STATUS and RELOAD).
//
// Every call is bounded by a timeout, so a hung peer can never wedge the control loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gtm::control {

inline constexpr int kDefaultReplyTimeoutMs = 2000;

// Why a request did not succeed. kUnreachable (nobody listens on the socket yet) is the case
// gtm-control retries quietly; kRefused means the peer answered "ERR ...".
enum class RequestStatus { kOk, kUnreachable, kRefused, kFailed };

struct RequestResult {
  RequestStatus status = RequestStatus::kFailed;
  std::string reply;           // the raw reply datagram (kOk and kRefused)
  std::string error;           // a one-line reason when status != kOk
  uint64_t round_trip_us = 0;  // from connect to the received reply
  bool ok() const { return status == RequestStatus::kOk; }
};

// Sends `request` (plus `fd_to_pass` via SCM_RIGHTS when >= 0) on a fresh SOCK_SEQPACKET connection
// to `socket_path` and waits up to `timeout_ms` for one reply datagram. A reply starting with "ERR"
// yields kRefused; any other reply yields kOk.
RequestResult send_request(const std::string& socket_path, const std::string& request,
                           int fd_to_pass = -1, int timeout_ms = kDefaultReplyTimeoutMs);
// The same with up to two descriptors, in this order.
RequestResult send_request(const std::string& socket_path, const std::string& request,
                           const std::vector<int>& fds_to_pass,
                           int timeout_ms = kDefaultReplyTimeoutMs);

// Creates a sealed memfd holding `image[0, len)`. Returns the fd, or -1 and sets *error.
int make_sealed_memfd(const uint8_t* image, size_t len, std::string* error);

// A memfd whose pages are allocated ahead of the next image (fallocate): writing that image then
// costs a copy, not the allocation and zeroing of megabytes of pages. gtm-control prepares one
// after each acknowledgement, off the path from a probe verdict to the next one.
class SpareMemfd {
 public:
  SpareMemfd() = default;
  ~SpareMemfd();
  SpareMemfd(const SpareMemfd&) = delete;
  SpareMemfd& operator=(const SpareMemfd&) = delete;
  // Best effort: without one, make_sealed_memfd makes a new memfd as usual.
  void prepare(size_t capacity);
  // The spare memfd sized to `len` (the caller owns it), or -1 when there is none that large.
  int take(size_t len);

 private:
  int fd_ = -1;
  size_t capacity_ = 0;
};

// The same for an image in consecutive pieces (ImageParts of control/compiler), written with
// writev: the pieces are never copied into one buffer first. Uses `spare` when it has one.
int make_sealed_memfd(const std::vector<std::pair<const uint8_t*, size_t>>& parts,
                      std::string* error, SpareMemfd* spare = nullptr);

struct PublishResult {
  RequestStatus status = RequestStatus::kFailed;
  uint64_t generation = 0;     // the acknowledged generation (kOk)
  std::string error;           // reason, e.g. the dataplane's "ERR ..." text without "ERR "
  uint64_t round_trip_us = 0;  // connect + send + dataplane validation/swap + reply
  bool ok() const { return status == RequestStatus::kOk; }
};

// Publishes an image whose header already carries `generation` to <run_dir>/dataplane.sock.
// Succeeds only on the reply "OK <generation>" with the same generation.
PublishResult publish_image(const std::string& run_dir, uint64_t generation, const uint8_t* image,
                            size_t len, int timeout_ms = kDefaultReplyTimeoutMs);
// The same for a sealed memfd made beforehand (the caller keeps and closes it).
PublishResult publish_memfd(const std::string& run_dir, uint64_t generation, int memfd,
                            int timeout_ms = kDefaultReplyTimeoutMs);
// Publishes an overlay (dataplane/snapshot/format.h OverlayHeader: the sections a health change
// recomputed) with the base image it completes, both sealed memfds the caller keeps. A dataplane
// serving that base (or an overlay on it) already shares its mapping; any other maps it.
PublishResult publish_overlay(const std::string& run_dir, uint64_t generation, int overlay_memfd,
                              int base_memfd, int timeout_ms = kDefaultReplyTimeoutMs);
// PUBLISH with these descriptors (one image, or an overlay and its base).
PublishResult publish_fds(const std::string& run_dir, uint64_t generation,
                          const std::vector<int>& memfds, int timeout_ms = kDefaultReplyTimeoutMs);

struct GenerationResult {
  RequestStatus status = RequestStatus::kFailed;
  uint64_t generation = 0;  // the dataplane's active generation, 0 when none is loaded
  std::string error;
  bool ok() const { return status == RequestStatus::kOk; }
};

// Asks <run_dir>/dataplane.sock for its active generation ("GENERATION").
GenerationResult query_generation(const std::string& run_dir,
                                  int timeout_ms = kDefaultReplyTimeoutMs);

// <run_dir>/<name>, without doubling the slash.
std::string run_dir_path(const std::string& run_dir, const char* name);

}  // namespace gtm::control
