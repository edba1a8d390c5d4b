// A main() for fuzz targets in builds without libFuzzer (gcc): replays a corpus, then a fixed
// number of deterministic mutations of it. Usage: fuzz_x [-runs=N] [-seed=S] DIR_OR_FILE...
// A crash (or a sanitizer report) simply terminates the process, which fails the CTest test.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

using Input = std::vector<uint8_t>;

constexpr size_t kMaxInputSize = 4096;

// xorshift64*: tiny, and identical on every platform, so a failing run can be reproduced.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed != 0 ? seed : 1) {}
  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }

 private:
  uint64_t state_;
};

// Runs one input from an exactly sized heap copy so that reading one byte past the end is caught
// by AddressSanitizer.
void run_one(const Input& in) {
  uint8_t* exact = new uint8_t[in.empty() ? 1 : in.size()];
  if (!in.empty()) std::memcpy(exact, in.data(), in.size());
  LLVMFuzzerTestOneInput(exact, in.size());
  delete[] exact;
}

void load_path(const std::filesystem::path& path, std::vector<Input>* corpus) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
      if (entry.is_regular_file(ec)) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());  // directory order is not stable across machines
    for (const auto& f : files) load_path(f, corpus);
    return;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "fuzz: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  corpus->emplace_back(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

void mutate(Input* in, const std::vector<Input>& corpus, Rng& rng) {
  const size_t edits = 1 + rng.below(4);
  for (size_t e = 0; e < edits; ++e) {
    switch (rng.below(8)) {
      case 0:  // flip one bit
      case 1:
        if (!in->empty()) (*in)[rng.below(in->size())] ^= static_cast<uint8_t>(1u << rng.below(8));
        break;
      case 2:  // overwrite a byte, favouring boundary values
        if (!in->empty()) {
          static const uint8_t kInteresting[] = {0x00, 0x01, 0x3F, 0x40, 0x7F,
                                                 0x80, 0xC0, 0xFE, 0xFF};
          (*in)[rng.below(in->size())] = rng.below(2) != 0
                                             ? kInteresting[rng.below(sizeof(kInteresting))]
                                             : static_cast<uint8_t>(rng.next());
        }
        break;
      case 3:  // truncate
        in->resize(rng.below(in->size() + 1));
        break;
      case 4:  // insert a byte
        if (in->size() < kMaxInputSize) {
          in->insert(in->begin() + static_cast<std::ptrdiff_t>(rng.below(in->size() + 1)),
                     static_cast<uint8_t>(rng.next()));
        }
        break;
      case 5:  // erase a byte
        if (!in->empty())
          in->erase(in->begin() + static_cast<std::ptrdiff_t>(rng.below(in->size())));
        break;
      case 6:  // append a chunk of another input (splicing)
        if (!corpus.empty()) {
          const Input& other = corpus[rng.below(corpus.size())];
          const size_t from = rng.below(other.size() + 1);
          const size_t len = rng.below(other.size() - from + 1);
          if (in->size() + len <= kMaxInputSize) {
            in->insert(in->end(), other.begin() + static_cast<std::ptrdiff_t>(from),
                       other.begin() + static_cast<std::ptrdiff_t>(from + len));
          }
        }
        break;
      default:  // overwrite a 16-bit field (counts, lengths, pointers)
        if (in->size() >= 2) {
          const size_t at = rng.below(in->size() - 1);
          (*in)[at] = static_cast<uint8_t>(rng.next());
          (*in)[at + 1] = static_cast<uint8_t>(rng.next());
        }
        break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  uint64_t runs = 10000;
  uint64_t seed = 0x6774'6D66'757A'7A31ull;  // fixed: runs are reproducible
  std::vector<Input> corpus;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (std::strncmp(arg, "-runs=", 6) == 0) {
      runs = std::strtoull(arg + 6, nullptr, 10);
    } else if (std::strncmp(arg, "-seed=", 6) == 0) {
      seed = std::strtoull(arg + 6, nullptr, 10);
    } else if (arg[0] == '-') {
      std::fprintf(stderr, "fuzz: ignoring option %s\n", arg);  // libFuzzer flags
    } else {
      load_path(arg, &corpus);
    }
  }

  uint64_t inputs = 0;
  for (const Input& in : corpus) {
    run_one(in);
    ++inputs;
  }
  Rng rng(seed);
  Input last;
  for (uint64_t r = 0; r < runs; ++r) {
    Input in;
    if (corpus.empty()) {
      in.resize(rng.below(512));
      for (uint8_t& b : in) b = static_cast<uint8_t>(rng.next());
    } else {
      // Half the time keep mutating the previous input, to reach deeper than a few edits.
      in = (!last.empty() && rng.below(2) != 0) ? last : corpus[rng.below(corpus.size())];
      mutate(&in, corpus, rng);
    }
    run_one(in);
    last = std::move(in);
    ++inputs;
  }
  std::printf("fuzz: %llu inputs, 0 crashes\n", static_cast<unsigned long long>(inputs));
  return 0;
}
