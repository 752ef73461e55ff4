// Fuzz target for the JSON reader and writer (libFuzzer), also a replayer of saved
// inputs. Any text the reader accepts must give a canonical text that reads back to
// itself (reader, json_unescape and json_append_string agree); sanitizers catch any
// read out of bounds. A violation aborts.
//
// libFuzzer: clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I csrc csrc/tests/fuzz_json.cpp
// replay:    g++ -std=c++17 -O1 -DLAYERWISE_FAST_REPLAY -I csrc csrc/tests/fuzz_json.cpp -o replay
//            ./replay tests/corpus/json/*
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "json_canonical.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace lft = layerwise_fast::testing;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string canonical = lft::canonical_json(input);
  if (canonical.empty()) return 0;
  const std::string again = lft::canonical_json(canonical);
  if (again != canonical) {
    std::fprintf(stderr, "fuzz_json violation: the canonical text does not read back to itself\n");
    std::abort();
  }
  return 0;
}

#include "replay_main.hpp"
