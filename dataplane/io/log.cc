#include "dataplane/io/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace gtm::io {

void log_line(const char* fmt, ...) {
  static constexpr char kPrefix[] = "gtm-dataplane: ";
  char line[1024];
  size_t len = sizeof(kPrefix) - 1;
  std::memcpy(line, kPrefix, len);
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  len += static_cast<size_t>(n) < sizeof(line) - len - 1 ? static_cast<size_t>(n)
                                                         : sizeof(line) - len - 2;
  line[len++] = '\n';
  // A short write to stderr is not worth retrying: the log is best effort.
  ssize_t ignored = write(STDERR_FILENO, line, len);
  (void)ignored;
}

}  // namespace gtm::io
