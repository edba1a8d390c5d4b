// Process log: one line per event on stderr, prefixed "gtm-dataplane: ".
//
// Each line goes out in a single write(2) so lines from different threads never interleave.
// Not for the per-query path (it formats with vsnprintf).
#pragma once

namespace gtm::io {

void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace gtm::io
