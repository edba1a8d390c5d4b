// The local control protocol between gtm-control, gtmctl and gtm-dataplane.
//
// Both daemons listen on a Unix SOCK_SEQPACKET socket in the run directory (--run-dir, default
// /run/gtm). One request datagram gets one reply datagram; text is ASCII, replies start with "OK"
// or "ERR", or are a JSON object (STATUS).
//
// <run-dir>/dataplane.sock (gtm-dataplane):
//   "PUBLISH <generation>" + one fd (SCM_RIGHTS): a sealed memfd holding a snapshot image.
//       The dataplane validates it (reusing the checks of sections identical to the image in
//       service; the checksum of a sealed memfd is not verified), swaps it in with RCU and replies
//       "OK <generation>", or "ERR <reason>" keeping the current image. After the reply it frees
//       the previous image and, on a thread of its own, saves the new one as
//       <run-dir>/snapshot.bin (the last good image, loaded at start-up; with its checksum). A
//       generation not greater than the active one is refused ("ERR stale generation ...").
//   "PUBLISH <generation>" + two fds: a sealed memfd holding an overlay (format.h OverlayHeader:
//       the sections a health change recomputed) and the sealed memfd of the base image it
//       completes (gtm-control's last full build, the image it published before). The snapshot
//       is the base with the overlay's sections in place of its own, validated in full like any
//       image, except that the sections read from a base the dataplane already has mapped (the
//       same file as the image in service or its base: sealed, so the same bytes) are neither
//       mapped nor compared again. A base the dataplane does not have (it restarted) is mapped and
//       checked like a new image. Refused with "ERR invalid snapshot: <reason>", the current
//       snapshot kept: an overlay naming another base generation than the base's header, a
//       malformed overlay or base, an overlay section that does not fit the base, an fd that is
//       not sealed. snapshot.bin gets the flat image the two make (byte for byte a full build).
//   "GENERATION" -> "OK <active generation>" ("OK 0" when none is loaded).
//   "STATUS" -> JSON: {"generation":G,"workers":[{"worker":0,"transport":"udp",<counters>},...],
//       "totals":{<counters>},"last_publish":{...},"saved":{"generation":G,...}} with the counter
//       names of dataplane/engine/counters.h; last_publish is what the last accepted PUBLISH cost
//       (total_us from request to reply, and its parts), saved what snapshot.bin holds.
//
// <run-dir>/control.sock (gtm-control):
//   "RELOAD" -> re-reads the configuration; "OK <generation>" once the dataplane acknowledged the
//       new image, or "ERR <file>:<line>:<column>: <reason>" (the old image keeps serving).
//   "STATUS" -> JSON: {"config":PATH,"generation":G,"acked_generation":G,"last_error":"...",
//       "admin":[{"service":S,"pool":P,"member":M,"state":"disabled|draining"},...]}
//   "MEMBER enable|disable|drain <service> <pool> <member>", "POOL enable|disable <service> <pool>"
//       -> operator overrides (control/admin_state.h), saved in <run-dir>/admin.state and applied
//       to every image: "OK <generation>" once published, or "ERR <reason>".
#pragma once

#include <cstddef>

namespace gtm::proto {

inline constexpr const char* kDataplaneSocket = "dataplane.sock";
inline constexpr const char* kControlSocket = "control.sock";
inline constexpr const char* kLastGoodSnapshot = "snapshot.bin";
inline constexpr const char* kAdminState = "admin.state";
inline constexpr const char* kDefaultRunDir = "/run/gtm";
inline constexpr size_t kMaxMessage = 65536;

}  // namespace gtm::proto
