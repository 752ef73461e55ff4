// Unit tests of the header-only core, with no Python and no framework: an exhaustive
// oracle over every cut set for small inputs, explicit edge cases and error paths.
// Build: g++ -std=c++17 -O2 -Wall -Wextra -Werror -I csrc csrc/tests/test_core.cpp
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "layerwise_fast/core.hpp"
#include "json_canonical.hpp"
#include "layerwise_fast/json_writer.hpp"
#include "oracle.hpp"

namespace lf = layerwise_fast;
namespace lft = layerwise_fast::testing;
using Sizes = std::vector<int64_t>;

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    ++checks;                                                                \
    if (!(cond)) {                                                           \
      ++failures;                                                            \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

// Runs fn, which must throw E whose message contains `needle`.
template <class E>
static void check_throws(const std::function<void()>& fn, const std::string& needle, int line) {
  ++checks;
  try {
    fn();
  } catch (const E& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return;
    std::fprintf(stderr, "line %d: message '%s' lacks '%s'\n", line, e.what(), needle.c_str());
    ++failures;
    return;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "line %d: wrong exception type: %s\n", line, e.what());
    ++failures;
    return;
  }
  std::fprintf(stderr, "line %d: no exception thrown\n", line);
  ++failures;
}
#define CHECK_THROWS(E, expr, needle) check_throws<E>([&] { (void)(expr); }, needle, __LINE__)

template <class Cost>
static void check_shape(const Cost& cost, const lf::Partition& p) {
  const std::string error = lft::shape_error(cost, p);
  if (!error.empty()) std::fprintf(stderr, "shape: %s\n", error.c_str());
  CHECK(error.empty());
}

template <class Cost>
static void compare_with_oracle(const Cost& cost, int64_t capacity) {
  const lft::Best best = lft::exhaustive(cost, capacity);
  const int64_t n = cost.size();
  for (int64_t k = 1; k <= n; ++k) {
    const lf::Partition p = lf::balanced(cost, k);
    check_shape(cost, p);
    CHECK(p.k() == k);
    CHECK(p.bottleneck == best.by_k[static_cast<size_t>(k)]);
  }
  const lf::Partition g = lf::greedy(cost, capacity);
  check_shape(cost, g);
  CHECK(g.k() == best.groups);
  const lf::Partition d = lf::dp(cost, capacity);
  check_shape(cost, d);
  CHECK(d.k() == best.groups && d.bottleneck == best.bottleneck);
  const lf::Partition f = lf::balanced_fewest(cost, capacity);
  check_shape(cost, f);
  CHECK(f.k() == best.groups && f.bottleneck == best.bottleneck);
}

static void test_exhaustive_random() {
  std::mt19937_64 rng(12345);
  for (int trial = 0; trial < 4000; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 10);
    const int64_t spread = trial % 3 == 0 ? 4 : 1000;
    Sizes w(static_cast<size_t>(n)), live(static_cast<size_t>(n)), sum(static_cast<size_t>(n));
    int64_t largest_sum = 0, largest_peak = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = static_cast<int64_t>(rng() % (spread + 1));
      live[i] = static_cast<int64_t>(rng() % (spread + 1));
      sum[i] = w[i] + live[i];
      largest_sum = std::max(largest_sum, sum[i]);
      largest_peak = std::max(largest_peak, w[i] + live[i]);
    }
    const int64_t extra = static_cast<int64_t>(rng() % (3 * spread + 1));
    compare_with_oracle(lf::SumCost(sum.data(), n), std::max<int64_t>(1, largest_sum + extra));
    compare_with_oracle(lf::PeakCost(w.data(), live.data(), n), std::max<int64_t>(1, largest_peak + extra));
  }
}

static void test_edge_cases() {
  const Sizes zeros(7, 0);
  const lf::SumCost z(zeros.data(), 7);
  CHECK(lf::greedy(z, 1).k() == 1);
  CHECK(lf::balanced(z, 7).k() == 7 && lf::balanced(z, 7).bottleneck == 0);
  CHECK(lf::dp(z, 1).k() == 1);

  const Sizes one{5};
  const lf::SumCost single(one.data(), 1);
  CHECK(lf::greedy(single, 5).k() == 1 && lf::greedy(single, 5).bottleneck == 5);
  CHECK(lf::balanced(single, 1).bottleneck == 5);

  // Sizes at the int64 edge: greedy never forms an overflowing sum.
  const int64_t big = lf::kInt64Max / 2 + 1;
  const Sizes huge{big, big, big};
  const lf::SumCost h(huge.data(), 3);
  CHECK(lf::greedy(h, lf::kInt64Max).k() == 3);
  CHECK(lf::dp(h, lf::kInt64Max).k() == 3);
  CHECK_THROWS(std::overflow_error, lf::balanced(h, 2), "exceeds the int64 range at layer 1");

  const Sizes ws{big, 0}, ls{big, 1};
  CHECK_THROWS(std::overflow_error, lf::greedy(lf::PeakCost(ws.data(), ls.data(), 2), lf::kInt64Max),
               "weights + activations + buffers exceeds the int64 range at layer 0");
}

static void test_errors() {
  const Sizes s{3, 9, 2};
  const lf::SumCost c(s.data(), 3);
  try {
    lf::greedy(c, 8);
    CHECK(false);
  } catch (const lf::layer_too_large& e) {
    CHECK(e.layer() == 1 && e.bytes() == 9 && e.capacity() == 8);
    CHECK(std::string(e.what()) == "layer 1 needs 9 bytes, more than the capacity of 8 bytes (over by 1)");
  }
  CHECK_THROWS(lf::layer_too_large, lf::dp(c, 8), "layer 1 needs 9 bytes");
  CHECK_THROWS(lf::layer_too_large, lf::balanced(c, 2, 8), "layer 1 needs 9 bytes");
  CHECK_THROWS(lf::layer_too_large, lf::balanced_fewest(c, 8), "layer 1 needs 9 bytes");
  CHECK_THROWS(lf::too_few_groups, lf::balanced(c, 1, 10),
               "no partition into k=1 groups fits the capacity of 10 bytes: the smallest bottleneck for k=1 is "
               "14 bytes; at least 3 groups are needed");
  CHECK_THROWS(std::invalid_argument, lf::balanced(c, 0), "k must be between 1 and the number of layers (3), got 0");
  CHECK_THROWS(std::invalid_argument, lf::balanced(c, 4), "got 4");
  CHECK_THROWS(std::invalid_argument, lf::greedy(c, 0), "capacity must be >= 1 byte");
  CHECK_THROWS(std::invalid_argument, lf::greedy(lf::SumCost(s.data(), 0), 5), "sizes is empty");

  const Sizes neg{3, -1, 2};
  const lf::SumCost nc(neg.data(), 3);
  CHECK_THROWS(std::invalid_argument, lf::greedy(nc, 100), "sizes[1] is negative (-1)");
  CHECK_THROWS(std::invalid_argument, lf::balanced(nc, 2), "sizes[1] is negative (-1)");
  CHECK_THROWS(std::invalid_argument, lf::dp(nc, 100), "sizes[1] is negative (-1)");

  const Sizes w{1, 2, 3}, a{1, -4, 1}, out_of_range{0, 0, 0};
  Sizes out(3);
  CHECK_THROWS(std::invalid_argument, lf::combine_sum(w.data(), a.data(), nullptr, 3, out.data()),
               "activations[1] is negative (-4)");
  CHECK_THROWS(std::invalid_argument, lf::combine_live(w.data(), out_of_range.data(), a.data(), 3, out.data()),
               "buffers[1] is negative (-4)");
}

// The seed's DP as written minimises only the bottleneck: on [4, 4, 4] with capacity 12
// it would return three groups. The shipped DP returns one.
static void test_dp_does_not_degenerate() {
  const Sizes s{4, 4, 4};
  const lf::Partition p = lf::dp(lf::SumCost(s.data(), 3), 12);
  CHECK(p.k() == 1 && p.bottleneck == 12);
}

static void test_large_random_against_dp() {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t n = 200 + static_cast<int64_t>(rng() % 800);
    Sizes s(static_cast<size_t>(n));
    int64_t largest = 0;
    for (auto& x : s) {
      x = trial % 2 ? static_cast<int64_t>(rng() % 1000) : static_cast<int64_t>(1) << (rng() % 30);
      largest = std::max(largest, x);
    }
    const lf::SumCost c(s.data(), n);
    const int64_t capacity = largest * (2 + trial % 5);
    const lf::Partition d = lf::dp(c, capacity), f = lf::balanced_fewest(c, capacity), g = lf::greedy(c, capacity);
    check_shape(c, d);
    check_shape(c, f);
    CHECK(d.k() == g.k() && f.k() == g.k());
    CHECK(d.bottleneck == f.bottleneck);
  }
}

// The error a call throws, as "type: message", or "" when it returns.
static std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const lf::layer_too_large& e) {
    return std::string("layer_too_large: ") + e.what();
  } catch (const std::overflow_error& e) {
    return std::string("overflow_error: ") + e.what();
  } catch (const std::invalid_argument& e) {
    return std::string("invalid_argument: ") + e.what();
  }
  return "";
}

template <class Cost>
static void check_sliding_against_scan(const Cost& cost, int64_t capacity) {
  lf::Partition sliding, scanned;
  const std::string sliding_error = error_of([&] { sliding = lf::dp(cost, capacity); });
  const std::string scanned_error = error_of([&] { scanned = lf::detail::dp_scan(cost, capacity, lf::BytesObjective{}); });
  CHECK(sliding_error == scanned_error);
  if (!sliding_error.empty()) return;
  check_shape(cost, sliding);
  CHECK(sliding.boundaries == scanned.boundaries);
  CHECK(sliding.group_costs == scanned.group_costs);
  CHECK(sliding.bottleneck == scanned.bottleneck && sliding.bottleneck_group == scanned.bottleneck_group);
}

// Long windows whose live bytes only fall (every layer a candidate for the largest),
// and groups of one layer each (a new group count at every prefix).
static void test_sliding_dp_long_windows() {
  const int64_t n = 5000;
  Sizes w(static_cast<size_t>(n), 3), live(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) live[static_cast<size_t>(i)] = n - i;
  const lf::PeakCost peak(w.data(), live.data(), n);
  for (int64_t capacity : {int64_t{3} * n + n, int64_t{3} * n / 2 + n, int64_t{3} + n}) {
    check_sliding_against_scan(peak, capacity);
  }
  const lf::SumCost sum(w.data(), n);
  const lf::Partition one_each = lf::dp(sum, 3);
  CHECK(one_each.k() == n && one_each.bottleneck == 3);
  check_sliding_against_scan(sum, 5);
}

// The sliding bytes DP against the scan of every start: the same cuts (the same tie
// rule) and the same errors, on inputs with long plateaus of equal bottlenecks, groups
// as wide as the input, sizes at the int64 edge, and bad layers.
static void test_sliding_dp_against_scan() {
  std::mt19937_64 rng(31);
  for (int trial = 0; trial < 6000; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % (trial % 7 == 0 ? 600 : 60));
    Sizes w(static_cast<size_t>(n)), live(static_cast<size_t>(n));
    int64_t largest_sum = 0, largest_peak = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      switch (trial % 5) {
        case 0: w[i] = static_cast<int64_t>(rng() % 1000); break;
        case 1: w[i] = static_cast<int64_t>(rng() % 3); break;
        case 2: w[i] = static_cast<int64_t>(1) << (rng() % 40); break;
        case 3: w[i] = rng() % 8 == 0 ? static_cast<int64_t>(rng() % 50) : 0; break;
        default: w[i] = lf::kInt64Max / 4 + static_cast<int64_t>(rng() % 3); break;
      }
      // At the int64 edge, live bytes of a quarter of the range make peak costs near half of it.
      const int64_t edge_live = rng() % 2 ? lf::kInt64Max / 4 - static_cast<int64_t>(rng() % 3) : static_cast<int64_t>(rng() % 3);
      live[i] = trial % 5 == 4 ? edge_live : static_cast<int64_t>(rng() % 2000);
      largest_sum = std::max(largest_sum, w[i]);
      largest_peak = std::max(largest_peak, w[i] + live[i]);
    }
    if (trial % 97 == 0) w[rng() % w.size()] = -1;  // an error both must report alike
    int64_t sum_capacity = std::max<int64_t>(1, largest_sum), peak_capacity = std::max<int64_t>(1, largest_peak);
    switch (trial % 4) {
      case 0: break;  // the largest layer exactly
      case 1:
        sum_capacity = lf::saturating_add(sum_capacity, sum_capacity / 2 * static_cast<int64_t>(rng() % 4));
        peak_capacity = lf::saturating_add(peak_capacity, peak_capacity / 2 * static_cast<int64_t>(rng() % 4));
        break;
      case 2: sum_capacity = peak_capacity = lf::kInt64Max; break;  // one group may hold everything
      default: sum_capacity = std::max<int64_t>(1, sum_capacity - 1); break;  // the largest layer does not fit
    }
    check_sliding_against_scan(lf::SumCost(w.data(), n), sum_capacity);
    check_sliding_against_scan(lf::PeakCost(w.data(), live.data(), n), peak_capacity);
  }
}

// Medium sizes, where the `sum` probe keeps cut brackets (k <= n / 9) and greedy's
// block fast path is taken.
static void test_medium_random_against_bisection() {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 3000; ++trial) {
    const int64_t n = 17 + static_cast<int64_t>(rng() % 400);
    Sizes w(static_cast<size_t>(n)), live(static_cast<size_t>(n));
    int64_t largest_sum = 0, largest_peak = 0, total = 0, weights = 0, max_live = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      switch (trial % 4) {
        case 0: w[i] = static_cast<int64_t>(rng() % 1000); break;
        case 1: w[i] = static_cast<int64_t>(1) << (rng() % 40); break;
        case 2: w[i] = static_cast<int64_t>(rng() % 3); break;
        default: w[i] = (i % 2) ? 1'000'000'000 : 3; break;
      }
      live[i] = static_cast<int64_t>(rng() % 5000);
      largest_sum = std::max(largest_sum, w[i]);
      largest_peak = std::max(largest_peak, w[i] + live[i]);
      total += w[i];
      weights += w[i];
      max_live = std::max(max_live, live[i]);
    }
    const lf::SumCost sum(w.data(), n);
    const lf::PeakCost peak(w.data(), live.data(), n);
    for (int64_t k : {int64_t{1}, int64_t{2}, n / 9, n / 9 + 1, n / 2, n}) {
      if (k < 1) continue;
      const lf::Partition p = lf::balanced(sum, k);
      check_shape(sum, p);
      CHECK(p.k() == k && p.bottleneck == lft::bisection_oracle(sum, k, largest_sum, total));
      const lf::Partition q = lf::balanced(peak, k);
      check_shape(peak, q);
      CHECK(q.k() == k && q.bottleneck == lft::bisection_oracle(peak, k, largest_peak, weights + max_live));
    }
    const lf::Partition g = lf::greedy(sum, largest_sum * 3), d = lf::dp(sum, largest_sum * 3);
    check_shape(sum, g);
    CHECK(g.k() == d.k());
  }
}

// The stage-time DP against every cut set: fewest groups under the capacity, then the
// smallest largest stage time (integral times, so that sums are exact).
static void test_stage_time_dp_against_exhaustive() {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 3000; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 9);
    Sizes s(static_cast<size_t>(n));
    std::vector<double> layer(static_cast<size_t>(n)), cut(static_cast<size_t>(n));
    int64_t largest = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      s[i] = static_cast<int64_t>(rng() % 10);
      layer[i] = static_cast<double>(rng() % 20);
      cut[i] = static_cast<double>(rng() % 30);
      largest = std::max(largest, s[i]);
    }
    const int64_t capacity = std::max<int64_t>(1, largest + static_cast<int64_t>(rng() % 25));
    const lf::SumCost cost(s.data(), n);
    int64_t best_groups = lf::kInt64Max;
    double best_time = 0;
    for (uint64_t mask = 0; mask < (uint64_t{1} << (n - 1)); ++mask) {
      int64_t groups = 0, start = 0;
      double worst = 0;
      bool fits = true;
      for (int64_t i = 1; i <= n; ++i) {
        if (i < n && !((mask >> (i - 1)) & 1)) continue;
        int64_t bytes = 0;
        double time = cut[static_cast<size_t>(i) - 1];
        for (int64_t j = start; j < i; ++j) {
          bytes += s[static_cast<size_t>(j)];
          time += layer[static_cast<size_t>(j)];
        }
        fits = fits && bytes <= capacity;
        worst = std::max(worst, time);
        ++groups;
        start = i;
      }
      if (fits && (groups < best_groups || (groups == best_groups && worst < best_time))) {
        best_groups = groups;
        best_time = worst;
      }
    }
    const lf::Partition p = lf::dp(cost, capacity, lf::StageTime{layer.data(), cut.data()});
    check_shape(cost, p);
    double worst = 0;
    for (int64_t g = 0; g < p.k(); ++g) {
      double time = cut[static_cast<size_t>(p.boundaries[static_cast<size_t>(g) + 1]) - 1];
      for (int64_t j = p.boundaries[static_cast<size_t>(g)]; j < p.boundaries[static_cast<size_t>(g) + 1]; ++j) {
        time += layer[static_cast<size_t>(j)];
      }
      worst = std::max(worst, time);
      CHECK(p.group_costs[static_cast<size_t>(g)] <= capacity);
    }
    CHECK(p.k() == best_groups && worst == best_time);
    const std::vector<double> stages = lf::stage_times(lf::StageTime{layer.data(), cut.data()}, p.boundaries);
    CHECK(static_cast<int64_t>(stages.size()) == p.k() && *std::max_element(stages.begin(), stages.end()) == worst);
  }
  const std::vector<double> bad{1.0, -2.0, -1e-9};
  CHECK_THROWS(std::invalid_argument, lf::check_times(bad.data(), 2, "layer_time"), "layer_time[1] = -2 is not a finite time >= 0");
  CHECK_THROWS(std::invalid_argument, lf::check_times(bad.data() + 1, 2, "cut_time"), "cut_time[0] = -2 is not");
  const std::vector<double> tiny{0.0, -1e-9};
  CHECK_THROWS(std::invalid_argument, lf::check_times(tiny.data(), 2, "cut_time"), "cut_time[1] = -1e-09 is not");
}

// greedy() on the `sum` model runs in aligned blocks of 16 layers: groups ending in the
// first or the second half of a block, blocks holding several cuts, the tail after the
// last whole block, and sizes the block pass cannot vouch for (>= 2^59, negative, above
// the capacity), which must give the validating walk's result or error.
static void test_sum_greedy_blocks_against_next_fit() {
  std::mt19937_64 rng(2026);
  const int64_t huge = int64_t{1} << 61;
  for (int trial = 0; trial < 20000; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 120);
    const int64_t spread = trial % 5 == 0 ? 3 : 1000;
    Sizes s(static_cast<size_t>(n));
    for (auto& x : s) x = static_cast<int64_t>(rng() % static_cast<uint64_t>(spread + 1));
    int64_t largest = *std::max_element(s.begin(), s.end());
    int64_t capacity = std::max<int64_t>(1, largest) * (1 + static_cast<int64_t>(rng() % 40)) / 4;
    capacity = std::max(capacity, std::max<int64_t>(largest, 1));
    switch (trial % 8) {
      case 1:  // one layer of 2^61 bytes under an unbounded capacity
        s[rng() % s.size()] = huge;
        capacity = lf::kInt64Max;
        break;
      case 2:  // a negative size somewhere
        s[rng() % s.size()] = -static_cast<int64_t>(1 + rng() % 5);
        break;
      case 3:  // a layer above the capacity somewhere
        s[rng() % s.size()] = capacity + 1 + static_cast<int64_t>(rng() % 5);
        break;
      default:
        break;
    }
    const lf::SumCost cost(s.data(), n);
    const int64_t bad = lft::first_invalid_layer(s, capacity);
    if (bad < 0) {
      const lf::Partition p = lf::greedy(cost, capacity);
      check_shape(cost, p);
      CHECK(p.boundaries == lft::next_fit_cuts(s, capacity));
      continue;
    }
    const std::string layer = std::to_string(bad);
    if (s[static_cast<size_t>(bad)] < 0) {
      CHECK_THROWS(std::invalid_argument, lf::greedy(cost, capacity), "sizes[" + layer + "] is negative");
    } else {
      CHECK_THROWS(lf::layer_too_large, lf::greedy(cost, capacity), "layer " + layer + " needs");
    }
  }
}

static void test_json_int_list() {
  const int64_t values[] = {0, -1, 42, INT64_MAX, INT64_MIN, 9, 10, 99, 100, -1000000};
  CHECK(lf::json_int_list(values, 10) ==
        "[0,-1,42,9223372036854775807,-9223372036854775808,9,10,99,100,-1000000]");
  CHECK(lf::json_int_list(values, 0) == "[]");
  CHECK(lf::json_int_list(values + 2, 1) == "[42]");
  CHECK(lf::json_int_list_size(values, 10) == lf::json_int_list(values, 10).size());
}

static void test_json_strings() {
  std::string out;
  lf::json_append_string(out, std::string_view("a\"b\\c\n\t\b\f\r\x01\x1f\x7f\xc3\xa9", 15));
  CHECK(out == "\"a\\\"b\\\\c\\n\\t\\b\\f\\r\\u0001\\u001f\x7f\xc3\xa9\"");
  std::string text;
  CHECK(lf::json_unescape("x\\u00e9\\ud834\\udd1e\\/\\n", text) && text == "x\xc3\xa9\xf0\x9d\x84\x9e/\n");
  CHECK(!lf::json_unescape("\\ud800", text));           // a high surrogate alone
  CHECK(!lf::json_unescape("\\ud800\\u0041", text));    // followed by no low one
  CHECK(!lf::json_unescape("\\udc00", text));           // a low surrogate first
}

// The reader accepts plain JSON and declines the rest; accepted texts come back in
// canonical form.
static void test_json_reader() {
  CHECK(lft::canonical_json(" {\"a\" : [1, -2, 3.5e-1, true, null, \"x\"], \"b\": {}} ") ==
        "{\"a\":[1,-2,3.5e-1,true,null,\"x\"],\"b\":{}}");
  CHECK(lft::canonical_json("-9223372036854775808") == "-9223372036854775808");
  CHECK(lft::canonical_json("9223372036854775808") == "9223372036854775808");  // as a number text
  CHECK(lft::canonical_json("\"\\u0041\\u00e9\"") == "\"A\xc3\xa9\"");
  for (const char* bad : {"", " ", "[1,]", "{\"a\" 1}", "{'a': 1}", "01", "1.", ".5", "1e", "-", "[1] x",
                          "\"\t\"", "\"\\x\"", "\"\\u12\"", "NaN", "Infinity", "tru", "nul", "[", "{", "\"abc",
                          "\"\\ud800\""}) {
    CHECK(lft::canonical_json(bad).empty());
  }
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  CHECK(lft::canonical_json(deep, 64).empty() && !lft::canonical_json(deep, 65).empty());
}

// Checks both ordered partitioners on one model against the oracle, and, where no
// partition fits, that the outcome names a layer as described in ordered.hpp.
template <class Cost>
static void check_ordered(const Cost& cost, const Sizes& capacities) {
  const lft::OrderedBest best = lft::ordered_oracle(cost, capacities);
  for (const bool balance : {false, true}) {
    const lf::OrderedPartition p = balance ? lf::ordered_balanced(cost, capacities) : lf::ordered_fit(cost, capacities);
    if (best.groups == lf::kInt64Max) {
      const bool stuck = best.stuck_device >= 0;
      CHECK(p.outcome == (stuck ? lf::OrderedOutcome::device_cannot_start : lf::OrderedOutcome::devices_exhausted));
      CHECK(p.device == best.stuck_device && p.layer == best.furthest);
      if (stuck) CHECK(lft::group_cost(cost, p.layer, p.layer + 1) > capacities[static_cast<size_t>(p.device)]);
      continue;
    }
    CHECK(p.outcome == lf::OrderedOutcome::fits);
    if (p.outcome != lf::OrderedOutcome::fits) continue;
    check_shape(cost, p.partition);
    CHECK(p.partition.k() == best.groups);
    for (int64_t g = 0; g < p.partition.k(); ++g) {
      CHECK(p.partition.group_costs[static_cast<size_t>(g)] <= capacities[static_cast<size_t>(g)]);
    }
    if (balance) CHECK(p.partition.bottleneck == best.bottleneck);
  }
}

// Random models and device lists: small ones, and long ones whose layers too large for
// some devices lie across and inside the index's 64-layer blocks.
static void test_ordered_against_oracle() {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 3000; ++trial) {
    const bool long_model = trial % 10 == 0;
    const int64_t n = 1 + static_cast<int64_t>(rng() % (long_model ? 300 : 9));
    const int64_t spread = trial % 3 == 0 ? 4 : 1000;
    Sizes w(static_cast<size_t>(n)), live(static_cast<size_t>(n)), sum(static_cast<size_t>(n));
    for (size_t i = 0; i < w.size(); ++i) {
      const int64_t scale = rng() % 16 == 0 ? 8 : 1;  // a few large layers
      w[i] = scale * static_cast<int64_t>(rng() % (spread + 1));
      live[i] = scale * static_cast<int64_t>(rng() % (spread + 1));
      sum[i] = w[i] + live[i];
    }
    const size_t devices = 1 + rng() % (long_model ? 40 : 6);
    Sizes capacities(devices);
    for (int64_t& c : capacities) {
      const size_t layer = rng() % w.size();
      const bool edge = rng() % 3 == 0;  // a layer as large as the device, or one byte off
      c = edge ? std::max<int64_t>(1, sum[layer] + static_cast<int64_t>(rng() % 3) - 1) : 1 + static_cast<int64_t>(rng() % (spread * (long_model ? 24 : 6) + 1));
    }
    check_ordered(lf::SumCost(sum.data(), n), capacities);
    check_ordered(lf::PeakCost(w.data(), live.data(), n), capacities);
  }
}

// Small sizes on many small devices, every other layer large: reaches split into many
// runs, walks overlap, and the balanced search lands on exact ties.
static void test_ordered_split_reaches() {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 1500; ++trial) {
    const int64_t n = 20 + static_cast<int64_t>(rng() % 100);
    Sizes w(static_cast<size_t>(n)), live(static_cast<size_t>(n)), sum(static_cast<size_t>(n));
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = static_cast<int64_t>(rng() % 3) + (i % 2 ? 6 : 0);
      live[i] = static_cast<int64_t>(rng() % 5);
      sum[i] = w[i] + live[i];
    }
    Sizes capacities(2 + rng() % 12);
    for (int64_t& c : capacities) c = rng() % 4 == 0 ? 5 + static_cast<int64_t>(rng() % 4) : 8 + static_cast<int64_t>(rng() % (4 * n));
    check_ordered(lf::SumCost(sum.data(), n), capacities);
    check_ordered(lf::PeakCost(w.data(), live.data(), n), capacities);
  }
}

static void test_ordered_edge_cases() {
  const Sizes sizes{1, 1, 2};  // next-fit fills device 0 with both 1s and leaves 2 to device 1
  const lf::SumCost c(sizes.data(), 3);
  const lf::OrderedPartition p = lf::ordered_fit(c, {2, 1, 2});
  CHECK(p.outcome == lf::OrderedOutcome::fits && p.partition.boundaries == Sizes({0, 1, 2, 3}));
  const lf::OrderedPartition stuck = lf::ordered_fit(c, {2, 1, 1});
  CHECK(stuck.outcome == lf::OrderedOutcome::device_cannot_start && stuck.device == 2 && stuck.layer == 2);
  const lf::OrderedPartition short_list = lf::ordered_fit(c, {1, 1});
  CHECK(short_list.outcome == lf::OrderedOutcome::devices_exhausted && short_list.layer == 2);
  const Sizes even{3, 3, 3, 3};
  const lf::SumCost e(even.data(), 4);
  CHECK(lf::ordered_fit(e, {9, 9}).partition.boundaries == Sizes({0, 3, 4}));
  CHECK(lf::ordered_balanced(e, {9, 9}).partition.boundaries == Sizes({0, 2, 4}));
  // Where balanced()'s groups each fit their own device, they are the answer (both
  // models); where they do not, a partition with their bottleneck may still fit.
  const Sizes uneven{5, 1, 4, 2, 3, 3, 6};
  const lf::SumCost u(uneven.data(), 7);
  const lf::OrderedPartition roomy = lf::ordered_balanced(u, {12, 13, 12});
  CHECK(roomy.partition.k() == 2 && roomy.partition.boundaries == lf::balanced(u, 2).boundaries);
  const Sizes weights{3, 1, 2, 2}, live{1, 4, 1, 1};
  const lf::PeakCost pk(weights.data(), live.data(), 4);
  const lf::OrderedPartition peak = lf::ordered_balanced(pk, {9, 9});
  CHECK(peak.partition.boundaries == Sizes({0, 2, 4}) && peak.partition.boundaries == lf::balanced(pk, 2).boundaries);
  const Sizes tie{2, 1, 1, 1, 2};
  const lf::SumCost t(tie.data(), 5);
  CHECK(lf::balanced(t, 2).boundaries == Sizes({0, 3, 5}));  // its first group, 4, exceeds device 0
  const lf::OrderedPartition tied = lf::ordered_balanced(t, {3, 4});
  CHECK(tied.partition.boundaries == Sizes({0, 2, 5}) && tied.partition.bottleneck == 4);
  // Device 1 can start a group only at layers 1..63 or at layer 100, the one layer of
  // its index block that fits it, exactly; device 2 can finish only from layer 101.
  Sizes blocks(300, 1);
  std::fill(blocks.begin() + 64, blocks.begin() + 128, 10);
  std::fill(blocks.begin() + 128, blocks.end(), 6);
  blocks[100] = 5;
  const lf::SumCost b(blocks.data(), 300);
  const Sizes around{lft::group_cost(b, 0, 130), 5, lft::group_cost(b, 101, 300)};
  check_ordered(b, around);
  CHECK(lf::ordered_fit(b, around).partition.boundaries == Sizes({0, 100, 101, 300}));
  // Layers 100.. are one byte too large for device 1, from inside an index block on.
  Sizes step(300, 1);
  std::fill(step.begin() + 100, step.end(), 6);
  const lf::SumCost st(step.data(), 300);
  const Sizes over{lft::group_cost(st, 0, 130), 5, lft::group_cost(st, 100, 300)};
  check_ordered(st, over);
  CHECK(lf::ordered_balanced(st, over).partition.boundaries == Sizes({0, 99, 100, 300}));
  // Layers alternately too large for a small device: its reach splits into a run per
  // layer and its walks overlap, sliding one group (and the peak model's queue) along.
  for (const int64_t n : {2, 65, 257}) {
    Sizes small(static_cast<size_t>(n)), large(static_cast<size_t>(n)), alternate(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      small[static_cast<size_t>(i)] = i % 2 ? 1 : 4;   // weights
      large[static_cast<size_t>(i)] = (i * 7) % 11;    // live bytes, in no order
      alternate[static_cast<size_t>(i)] = i % 2 ? 10 : 1;
    }
    const lf::SumCost sum(alternate.data(), n);
    const lf::PeakCost peak(small.data(), large.data(), n);
    const int64_t total = lft::group_cost(sum, 0, n), weights = lft::group_cost(lf::SumCost(small.data(), n), 0, n);
    for (const Sizes& caps : {Sizes{total / 2, 5, total / 3, total}, Sizes{total / 3, 2, 5, total / 2, total}}) {
      check_ordered(sum, caps);
    }
    for (const Sizes& caps : {Sizes{weights / 2 + 10, 12, weights / 3 + 10, weights + 10},
                              Sizes{weights / 4 + 10, 11, 14, weights / 2 + 10, weights + 10}}) {
      check_ordered(peak, caps);
    }
  }
  const Sizes bad{1, -1};
  CHECK_THROWS(std::invalid_argument, lf::ordered_fit(lf::SumCost(bad.data(), 2), {5}), "sizes[1] is negative");
  CHECK_THROWS(std::invalid_argument, lf::ordered_fit(c, {}), "capacities is empty");
  CHECK_THROWS(std::invalid_argument, lf::ordered_balanced(c, {4, 0}), "capacities[1] must be >= 1 byte, got 0");
  CHECK_THROWS(std::invalid_argument, lf::ordered_fit(lf::SumCost(sizes.data(), 0), {4}), "sizes is empty");
  const int64_t big = lf::kInt64Max / 2 + 1;
  const Sizes ws{big, 0}, ls{big, 1};
  CHECK_THROWS(std::overflow_error, lf::ordered_fit(lf::PeakCost(ws.data(), ls.data(), 2), {5}),
               "exceeds the int64 range at layer 0");
}

// The portable fallbacks of builtins.hpp against the compiler's builtins, on the int64
// edges and on random values (this build may use either; both are compared here).
static void test_builtin_fallbacks() {
#if defined(__GNUC__) || defined(__clang__)
  namespace b = lf::builtin;
  std::vector<int64_t> values{0, 1, -1, 2, -2, 10, -10, 3037000499, 3037000500, -3037000500, -3037000501,
                              b::kMax, b::kMin, b::kMax - 1, b::kMin + 1, b::kMax / 10, b::kMin / 10,
                              b::kMax / 10 + 1, b::kMin / 10 - 1, int64_t{1} << 62, -(int64_t{1} << 62)};
  std::mt19937_64 rng(99);
  for (int i = 0; i < 300; ++i) values.push_back(static_cast<int64_t>(rng() >> (rng() % 64)) * (i % 2 ? 1 : -1));
  for (const int64_t x : values) {
    for (const int64_t y : values) {
      int64_t fast = 0, portable = 0;
      CHECK(__builtin_add_overflow(x, y, &fast) == b::portable_add_overflow(x, y, &portable) && fast == portable);
      CHECK(__builtin_sub_overflow(x, y, &fast) == b::portable_sub_overflow(x, y, &portable) && fast == portable);
      CHECK(__builtin_mul_overflow(x, y, &fast) == b::portable_mul_overflow(x, y, &portable) && fast == portable);
    }
    if (x != 0) CHECK(__builtin_clzll(static_cast<uint64_t>(x)) == b::portable_clz64(static_cast<uint64_t>(x)));
  }
  for (int bit = 0; bit < 64; ++bit) {
    const uint64_t v = uint64_t{1} << bit;
    CHECK(b::portable_clz64(v) == 63 - bit && b::portable_clz64(v | (v - 1)) == 63 - bit);
  }
#endif
}

int main() {
  test_builtin_fallbacks();
  test_exhaustive_random();
  test_edge_cases();
  test_errors();
  test_dp_does_not_degenerate();
  test_large_random_against_dp();
  test_sliding_dp_against_scan();
  test_sliding_dp_long_windows();
  test_medium_random_against_bisection();
  test_stage_time_dp_against_exhaustive();
  test_sum_greedy_blocks_against_next_fit();
  test_ordered_against_oracle();
  test_ordered_split_reaches();
  test_ordered_edge_cases();
  test_json_int_list();
  test_json_strings();
  test_json_reader();
  std::printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
