// Fuzz target for the core (libFuzzer), also a replayer of saved inputs.
//
// Input bytes: [mode][capacity: 8][k: 2][sizes: 8 each ...]. `mode` picks the cost
// model and how raw 64-bit words become sizes (tiny values with many ties, moderate,
// huge near the int64 edge, or raw words that may be negative). The ordered
// partitioners get 1 + (k & 3) devices, device d holding capacity >> (2 bits of k >> 2
// from bit 2d), so that capacities differ and may reach 0. Every algorithm runs;
// any exception must be justified by the input, every result must be well formed and,
// for n <= 12, optimal against brute force. A violation aborts.
//
// libFuzzer: clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I csrc csrc/tests/fuzz_core.cpp
// replay:    g++ -std=c++17 -O1 -DLAYERWISE_FAST_REPLAY -I csrc csrc/tests/fuzz_core.cpp -o replay
//            ./replay tests/corpus/core/*
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "layerwise_fast/core.hpp"
#include "oracle.hpp"

namespace lf = layerwise_fast;
namespace lft = layerwise_fast::testing;

namespace {

constexpr size_t kHeader = 11;
constexpr int64_t kMaxLayers = 64;
constexpr int64_t kBruteForceLayers = 12;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_core violation: %s\n", what.c_str());
  std::abort();
}

uint64_t word(const uint8_t* p, size_t bytes) {
  uint64_t w = 0;
  std::memcpy(&w, p, bytes);
  return w;
}

// A size from a raw word, by mode: ties, moderate, huge, or raw (possibly negative).
int64_t size_from(uint64_t w, int mode) {
  switch (mode & 3) {
    case 0: return static_cast<int64_t>(w % 8);
    case 1: return static_cast<int64_t>(w % 1'000'000);
    case 2: return static_cast<int64_t>(w >> 2);  // up to 2^62: sums overflow quickly
    default: return static_cast<int64_t>(w);
  }
}

struct Input {
  int mode;
  int64_t capacity;
  int64_t k;
  std::vector<int64_t> a, b;  // sizes (sum), or weights and live bytes (peak)
};

Input decode(const uint8_t* data, size_t size) {
  Input in{data[0], 0, 0, {}, {}};
  in.capacity = size_from(word(data + 1, 8), in.mode >> 2);
  in.k = static_cast<int64_t>(word(data + 9, 2));
  const bool peak = in.mode & 0x80;
  for (size_t at = kHeader; at + 8 <= size && static_cast<int64_t>(in.a.size()) < kMaxLayers; at += 8) {
    const int64_t value = size_from(word(data + at, 8), in.mode);
    if (peak && in.a.size() > in.b.size()) {
      in.b.push_back(value);
    } else {
      in.a.push_back(value);
    }
  }
  if (peak) in.a.resize(in.b.size());
  return in;
}

bool has_negative(const std::vector<int64_t>& v) {
  for (int64_t x : v) {
    if (x < 0) return true;
  }
  return false;
}

// Runs fn; an exception is acceptable only when `allowed` says the input explains it.
template <class Fn, class Allowed>
bool run_checked(const char* name, Fn&& fn, Allowed&& allowed) {
  try {
    fn();
    return true;
  } catch (const lf::layer_too_large& e) {
    if (!allowed("too_large", e.layer())) fail(std::string(name) + ": unexplained layer_too_large: " + e.what());
  } catch (const std::overflow_error& e) {
    if (!allowed("overflow", -1)) fail(std::string(name) + ": unexplained overflow: " + e.what());
  } catch (const std::invalid_argument& e) {
    if (!allowed("invalid", -1)) fail(std::string(name) + ": unexplained invalid_argument: " + e.what());
  }
  return false;
}

template <class Cost>
void check_model(const Cost& cost, const Input& in, bool negative, __int128 total, int64_t largest) {
  const int64_t n = cost.size();
  const bool overflow = total > lf::kInt64Max;
  const auto explained = [&](const char* kind, int64_t layer) {
    const std::string k(kind);
    if (k == "invalid") return negative || n == 0 || in.capacity < 1 || in.k < 1 || in.k > n;
    if (k == "overflow") return overflow || negative;
    return layer >= 0 && layer < n && lft::group_cost(cost, layer, layer + 1) > in.capacity;
  };

  lf::Partition g, d, f, b;
  const bool greedy_ok = run_checked("greedy", [&] { g = lf::greedy(cost, in.capacity); }, explained);
  const bool dp_ok = run_checked("dp", [&] { d = lf::dp(cost, in.capacity); }, explained);
  const bool fewest_ok = run_checked("balanced_fewest", [&] { f = lf::balanced_fewest(cost, in.capacity); }, explained);
  const bool balanced_ok = run_checked("balanced", [&] { b = lf::balanced(cost, in.k); }, explained);
  if (negative && (greedy_ok || dp_ok || fewest_ok || balanced_ok)) fail("a negative size was accepted");
  if (largest > in.capacity && in.capacity >= 1 && (greedy_ok || dp_ok)) fail("an oversized layer was accepted");

  for (const lf::Partition* p : {greedy_ok ? &g : nullptr, dp_ok ? &d : nullptr, fewest_ok ? &f : nullptr,
                                 balanced_ok ? &b : nullptr}) {
    if (!p) continue;
    const std::string error = lft::shape_error(cost, *p);
    if (!error.empty()) fail("malformed result: " + error);
  }
  if (greedy_ok && g.bottleneck > in.capacity) fail("greedy exceeds the capacity");
  if (greedy_ok && dp_ok && g.k() != d.k()) fail("greedy and dp disagree on the fewest groups");
  if (dp_ok && fewest_ok && (d.k() != f.k() || d.bottleneck != f.bottleneck)) fail("dp and balanced_fewest disagree");
  if (balanced_ok && b.k() != in.k) fail("balanced did not return k groups");

  if (n >= 1 && n <= kBruteForceLayers && !negative && !overflow) {
    const lft::Best best = lft::exhaustive(cost, in.capacity);
    if (balanced_ok && b.bottleneck != best.by_k[static_cast<size_t>(in.k)]) fail("balanced is not optimal");
    if (greedy_ok && g.k() != best.groups) fail("greedy is not minimal");
    if (dp_ok && (d.k() != best.groups || d.bottleneck != best.bottleneck)) fail("dp is not optimal");
  }
}

std::vector<int64_t> device_capacities(const Input& in) {
  std::vector<int64_t> caps(static_cast<size_t>(1 + (in.k & 3)));
  for (size_t d = 0; d < caps.size(); ++d) caps[d] = in.capacity >> ((in.k >> (2 + 2 * d)) & 3);
  return caps;
}

template <class Cost>
void check_ordered(const Cost& cost, const Input& in, bool negative, bool overflow) {
  const int64_t n = cost.size();
  const std::vector<int64_t> caps = device_capacities(in);
  bool bad_cap = false;
  for (int64_t c : caps) bad_cap |= c < 1;
  const auto explained = [&](const char* kind, int64_t) {
    const std::string k(kind);
    if (k == "invalid") return negative || n == 0 || bad_cap;
    return k == "overflow" && (overflow || negative);
  };
  lf::OrderedPartition f, b;
  const bool fit_ok = run_checked("ordered_fit", [&] { f = lf::ordered_fit(cost, caps); }, explained);
  const bool balanced_ok = run_checked("ordered_balanced", [&] { b = lf::ordered_balanced(cost, caps); }, explained);
  if (fit_ok != balanced_ok) fail("ordered_fit and ordered_balanced disagree on the input's validity");
  if (!fit_ok) return;
  if (negative || bad_cap) fail("ordered: invalid input accepted");
  if (f.outcome != b.outcome) fail("ordered_fit and ordered_balanced disagree on feasibility");
  for (const lf::OrderedPartition* p : {&f, &b}) {
    if (p->outcome == lf::OrderedOutcome::device_cannot_start) {
      const auto d = static_cast<size_t>(p->device);
      if (d >= caps.size() || p->layer < 0 || p->layer >= n) fail("ordered: device or layer out of range");
      if (lft::group_cost(cost, p->layer, p->layer + 1) <= caps[d]) fail("ordered: the named layer fits the device");
    } else if (p->outcome == lf::OrderedOutcome::devices_exhausted) {
      if (p->layer < 1 || p->layer >= n) fail("ordered: the layers left are out of range");
    } else {
      const std::string error = lft::shape_error(cost, p->partition);
      if (!error.empty()) fail("ordered: malformed result: " + error);
      if (p->partition.k() > static_cast<int64_t>(caps.size())) fail("ordered: more groups than devices");
      for (int64_t g = 0; g < p->partition.k(); ++g) {
        if (p->partition.group_costs[static_cast<size_t>(g)] > caps[static_cast<size_t>(g)]) {
          fail("ordered: a group exceeds its device");
        }
      }
    }
  }
  if (f.outcome == lf::OrderedOutcome::fits &&
      (f.partition.k() != b.partition.k() || b.partition.bottleneck > f.partition.bottleneck)) {
    fail("ordered_balanced is worse than ordered_fit");
  }
  if (n <= kBruteForceLayers && !overflow) {
    const lft::OrderedBest best = lft::ordered_oracle(cost, caps);
    const bool fits = f.outcome == lf::OrderedOutcome::fits;
    if (fits != (best.groups != lf::kInt64Max)) fail("ordered: feasibility differs from the oracle");
    if (!fits && (f.device != best.stuck_device || f.layer != best.furthest)) {
      fail("ordered: the device or layer named differs from the oracle's");
    }
    if (fits && (f.partition.k() != best.groups || b.partition.bottleneck != best.bottleneck)) {
      fail("ordered: not optimal");
    }
  }
}

void run_one(const uint8_t* data, size_t size) {
  if (size < kHeader) return;
  const Input in = decode(data, size);
  const int64_t n = static_cast<int64_t>(in.a.size());
  const bool peak = in.mode & 0x80;
  const bool negative = has_negative(in.a) || has_negative(in.b);
  __int128 total = 0;
  int64_t largest = 0;
  int64_t max_live = 0;
  for (int64_t i = 0; i < n; ++i) {
    const size_t at = static_cast<size_t>(i);
    const __int128 single = static_cast<__int128>(in.a[at]) + (peak ? in.b[at] : 0);
    total += in.a[at];
    if (peak) max_live = std::max(max_live, in.b[at]);
    if (single > largest) largest = single > lf::kInt64Max ? lf::kInt64Max : static_cast<int64_t>(single);
  }
  total += max_live;
  // Sums of the ordered oracle must fit int64: the `sum` total, or weights plus all live bytes.
  __int128 all_live = 0;
  for (int64_t v : in.b) all_live += v;
  const bool ordered_overflow = total - max_live + all_live > lf::kInt64Max;
  if (peak) {
    const lf::PeakCost cost(in.a.data(), in.b.data(), n);
    check_model(cost, in, negative, total, largest);
    check_ordered(cost, in, negative, ordered_overflow);
  } else {
    const lf::SumCost cost(in.a.data(), n);
    check_model(cost, in, negative, total, largest);
    check_ordered(cost, in, negative, ordered_overflow);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run_one(data, size);
  return 0;
}

#include "replay_main.hpp"
