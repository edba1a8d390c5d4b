#include <cstdarg>
#include <cstdio>

#include "dataplane/engine/answer.h"

namespace gtm::engine {

// Lines past kMaxLines are dropped rather than overwriting earlier ones: the first decisions
// (zone, node) are the ones a reader needs to make sense of the rest.
void Explain::add(const char* fmt, ...) {
  if (count >= kMaxLines) return;
  va_list args;
  va_start(args, fmt);
  vsnprintf(lines[count], kLineLen, fmt, args);
  va_end(args);
  ++count;
}

}  // namespace gtm::engine
