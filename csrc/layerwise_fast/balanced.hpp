// Exact balanced partitioning: the minimum bottleneck (largest group cost) over all
// partitions into exactly k non-empty contiguous groups.
//
// Bisection on the bottleneck B with a greedy probe "can k groups of cost <= B cover
// all layers?". Each probe's answer tightens the bracket to a value some partition
// actually realises, so the search is exact on integers and needs few probes:
//   feasible at B   -> hi = the largest group cost the probe produced (<= B);
//   infeasible at B -> lo = the smallest cost any of its k groups would have had with
//                      one more layer (> B): below that the probe repeats itself.
// For the `sum` model the probe binary-searches a prefix-sum array, inside windows
// bracketed by earlier probes (greedy cuts are monotone in B), in O(k log(n/k)).
// For other monotone costs it is a linear scan.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/greedy.hpp"
#include "layerwise_fast/partition.hpp"

namespace layerwise_fast {
namespace detail {

struct ProbeResult {
  bool feasible;
  int64_t max_cost;       // largest group cost the probe formed
  int64_t min_extension;  // infeasible probes: smallest cost of a group plus its next layer
};

inline int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

// Smallest B in [lo, hi] for which probe(B) is feasible; hi must be feasible.
template <class Probe>
int64_t min_bottleneck(int64_t lo, int64_t hi, Probe&& probe) {
  while (lo < hi) {
    const ProbeResult r = probe(lo + (hi - lo) / 2);
    if (r.feasible) {
      hi = r.max_cost;
    } else {
      lo = r.min_extension;
    }
  }
  return hi;
}

// Exactly k groups, each a prefix of the greedy group at `bound`, cut early only where
// the layers left are needed to keep every later group non-empty.
// group_end(start, bound, max_stop) -> {stop, cost} with start < stop <= max_stop.
template <class GroupEnd>
Partition clamped_greedy(int64_t n, int64_t k, int64_t bound, GroupEnd&& group_end) {
  Partition result;
  result.boundaries.reserve(static_cast<size_t>(k) + 1);
  result.group_costs.reserve(static_cast<size_t>(k));
  int64_t start = 0;
  for (int64_t g = 1; g <= k; ++g) {
    const auto [stop, cost] = group_end(start, bound, n - (k - g));
    if (g == k && stop != n) throw std::logic_error("balanced: final group does not reach n");
    result.close_group(stop, cost);
    start = stop;
  }
  return result;
}

// Prefix sums P[0..n] of a validated `sum` model; the only O(n) allocation of balanced().
class PrefixSums {
 public:
  PrefixSums(const SumCost& cost, int64_t capacity) : prefix_(static_cast<size_t>(cost.size()) + 1) {
    const int64_t* s = cost.data();
    const int64_t n = cost.size();
    int64_t total = 0, largest = 0;
    prefix_[0] = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (s[i] < 0 || s[i] > capacity) cost.single(i, capacity);  // throws the precise error
      largest = std::max(largest, s[i]);
      if (__builtin_add_overflow(total, s[i], &total)) {
        throw std::overflow_error("the total of " + std::string(cost.column()) +
                                  " exceeds the int64 range at layer " + std::to_string(i) +
                                  "; balanced partitioning needs prefix sums of the whole model");
      }
      prefix_[static_cast<size_t>(i) + 1] = total;
    }
    largest_ = largest;
  }

  int64_t n() const noexcept { return static_cast<int64_t>(prefix_.size()) - 1; }
  int64_t total() const noexcept { return prefix_.back(); }
  int64_t largest() const noexcept { return largest_; }
  int64_t operator[](int64_t i) const noexcept { return prefix_[static_cast<size_t>(i)]; }

  // Largest j in [a, b] with P[j] <= target; requires P[a] <= target.
  int64_t last_within(int64_t a, int64_t b, int64_t target) const noexcept {
    const int64_t* base = prefix_.data();
    return std::upper_bound(base + a + 1, base + b + 1, target) - base - 1;
  }

 private:
  std::vector<int64_t> prefix_;
  int64_t largest_ = 0;
};

// Greedy probe over prefix sums; remembers the cuts of the last feasible and infeasible
// probes as windows for the next one.
class WindowedSumProbe {
 public:
  WindowedSumProbe(const PrefixSums& prefix, int64_t k)
      : p_(prefix), k_(k), low_(static_cast<size_t>(k) + 1), high_(static_cast<size_t>(k) + 1, prefix.n()),
        cuts_(static_cast<size_t>(k) + 1) {
    for (int64_t i = 0; i <= k; ++i) low_[static_cast<size_t>(i)] = i;  // cut i >= i
  }

  ProbeResult operator()(int64_t bound) {
    const int64_t n = p_.n();
    int64_t start = 0, max_cost = 0, min_extension = kInt64Max;
    for (int64_t i = 1; i <= k_; ++i) {
      const size_t at = static_cast<size_t>(i);
      const int64_t lo = std::max(start + 1, low_[at]);
      const int64_t stop = p_.last_within(lo, high_[at], saturating_add(p_[start], bound));
      cuts_[at] = stop;
      max_cost = std::max(max_cost, p_[stop] - p_[start]);
      if (stop == n) {
        std::fill(cuts_.begin() + i + 1, cuts_.end(), n);
        high_.swap(cuts_);
        return {true, max_cost, 0};
      }
      min_extension = std::min(min_extension, p_[stop + 1] - p_[start]);
      start = stop;
    }
    low_.swap(cuts_);
    return {false, max_cost, min_extension};
  }

 private:
  const PrefixSums& p_;
  int64_t k_;
  std::vector<int64_t> low_, high_, cuts_;
};

// Linear greedy probe for any monotone cost model.
template <class Cost>
ProbeResult linear_probe(const Cost& cost, int64_t k, int64_t bound) {
  const int64_t n = cost.size();
  int64_t groups = 1, max_cost = 0, min_extension = kInt64Max;
  auto group = cost.start(0);
  for (int64_t i = 1; i < n; ++i) {
    if (cost.try_extend(group, i, bound)) continue;
    max_cost = std::max(max_cost, Cost::cost(group));
    min_extension = std::min(min_extension, cost.extended_cost(group, i));
    if (++groups > k) return {false, max_cost, min_extension};
    group = cost.start(i);
  }
  return {true, std::max(max_cost, Cost::cost(group)), 0};
}

struct ModelSummary {
  int64_t largest;  // largest single-layer cost
  int64_t lower;    // a lower bound on the bottleneck besides `largest`, times k
  int64_t total;    // cost of all layers as one group
};

// One validating pass for the `peak` model.
inline ModelSummary summarize(const PeakCost& cost, int64_t capacity) {
  int64_t largest = 0, weights = 0, live = 0;
  for (int64_t i = 0; i < cost.size(); ++i) {
    const auto g = cost.single(i, capacity);
    largest = std::max(largest, PeakCost::cost(g));
    weights = checked_add(weights, g.weights, "the total of weights", i);
    live = std::max(live, g.live);
  }
  return {largest, weights, checked_add(weights, live, "the cost of all layers", cost.size() - 1)};
}

inline void check_k(int64_t k, int64_t n) {
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (k < 1 || k > n) {
    throw std::invalid_argument("k must be between 1 and the number of layers (" + std::to_string(n) +
                                "), got " + std::to_string(k));
  }
}

template <class Cost>
Partition balanced_unchecked_capacity(const Cost& cost, int64_t k, int64_t capacity) {
  const int64_t n = cost.size();
  if constexpr (std::is_same_v<Cost, SumCost>) {
    const PrefixSums prefix(cost, capacity);
    const int64_t lo = std::max(prefix.largest(), ceil_div(prefix.total(), k));
    const int64_t hi = std::min(prefix.total(), saturating_add(lo, prefix.largest()));
    const int64_t best = min_bottleneck(lo, hi, WindowedSumProbe(prefix, k));
    return clamped_greedy(n, k, best, [&](int64_t start, int64_t bound, int64_t max_stop) {
      const int64_t stop = std::min(max_stop, prefix.last_within(start + 1, n, saturating_add(prefix[start], bound)));
      return std::pair<int64_t, int64_t>{stop, prefix[stop] - prefix[start]};
    });
  } else {
    const ModelSummary summary = summarize(cost, capacity);
    const int64_t lo = std::max(summary.largest, ceil_div(summary.lower, k));
    const int64_t best = min_bottleneck(lo, summary.total, [&](int64_t bound) { return linear_probe(cost, k, bound); });
    return clamped_greedy(n, k, best, [&](int64_t start, int64_t bound, int64_t max_stop) {
      auto group = cost.start(start);
      int64_t stop = start + 1;
      while (stop < max_stop && cost.try_extend(group, stop, bound)) ++stop;
      return std::pair<int64_t, int64_t>{stop, Cost::cost(group)};
    });
  }
}

}  // namespace detail

// The minimum-bottleneck partition into exactly k non-empty contiguous groups. With a
// capacity, every layer must fit it (layer_too_large otherwise) and so must the result
// (too_few_groups otherwise, naming the best bottleneck and the fewest groups that fit).
template <class Cost>
Partition balanced(const Cost& cost, int64_t k, int64_t capacity = kUnbounded) {
  detail::check_k(k, cost.size());
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
  Partition result = detail::balanced_unchecked_capacity(cost, k, capacity);
  if (result.bottleneck > capacity) {
    throw too_few_groups(k, capacity, result.bottleneck, greedy(cost, capacity).k());
  }
  return result;
}

// The fewest groups that fit the capacity (greedy's k), balanced: the minimum
// bottleneck among all partitions with that many groups.
template <class Cost>
Partition balanced_fewest(const Cost& cost, int64_t capacity) {
  const int64_t k = greedy(cost, capacity).k();
  return detail::balanced_unchecked_capacity(cost, k, capacity);
}

}  // namespace layerwise_fast
