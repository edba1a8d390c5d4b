#include "dataplane/io/shutdown.h"

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dataplane/io/log.h"

namespace gtm::io {

void wait_for_stop_signal(const sigset_t& signals) {
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  log_line("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

void signal_stop(int stop_fd) {
  const uint64_t one = 1;
  if (write(stop_fd, &one, sizeof(one)) != sizeof(one)) {
    log_line("cannot signal the threads to stop: %s", std::strerror(errno));
    std::_Exit(1);
  }
}

}  // namespace gtm::io
