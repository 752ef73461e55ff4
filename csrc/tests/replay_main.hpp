// main() for a fuzz target built without libFuzzer (-DLAYERWISE_FAST_REPLAY): feeds
// each file named on the command line to LLVMFuzzerTestOneInput once, so that saved
// inputs stay regression tests. Include it last, after the target's definition.
#pragma once

#ifdef LAYERWISE_FAST_REPLAY
#include <cstdint>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  int replayed = 0;
  for (int i = 1; i < argc; ++i) {
    std::FILE* f = std::fopen(argv[i], "rb");
    if (!f) {
      std::fprintf(stderr, "cannot open %s\n", argv[i]);
      return 2;
    }
    std::vector<uint8_t> bytes;
    for (int c; (c = std::fgetc(f)) != EOF;) bytes.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++replayed;
  }
  std::printf("replayed %d inputs, no violation\n", replayed);
  return 0;
}
#endif
