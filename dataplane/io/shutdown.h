// Orderly stop of gtm-dataplane, shared by both backends: the main thread waits for SIGTERM or
// SIGINT (blocked in every thread, taken synchronously), then wakes every thread through one
// eventfd they all poll.
#pragma once

#include <signal.h>

namespace gtm::io {

// Blocks until one of `signals` arrives; logs which.
void wait_for_stop_signal(const sigset_t& signals);

// Makes `stop_fd` readable. If that fails the threads could never be stopped, so the process
// exits at once.
void signal_stop(int stop_fd);

}  // namespace gtm::io
