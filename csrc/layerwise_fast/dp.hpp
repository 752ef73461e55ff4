// Dynamic programme over prefixes, with reconstruction: the fewest groups that fit the
// capacity, then the smallest bottleneck among partitions with that many groups.
//
// The seed's DP (section 3.2) minimises only the bottleneck, with no bound on k: its
// optimum isolates the largest layer and degenerates towards one group per layer.
// Minimising (groups, bottleneck) lexicographically fixes that. The capacity applies
// to a monotone Cost model; the bottleneck is measured by an Objective, by default the
// same cost (bytes), or the stage time of a pipeline (StageTime below).
//
// Two evaluations of the same recurrence, with the same answer and the same tie rule
// (the latest start of the last group, i.e. the shortest last group):
// - bytes, on the `sum` and `peak` models: two windows slide over the layers, O(n)
//   amortised plus a binary search per prefix; see dp_sliding below for why it is exact.
// - any other objective or cost: every start of the last group that fits is scanned,
//   O(n * w) where w is the most layers one group can hold.
// The sliding one keeps two arrays of n + 1 entries and queues no longer than a group
// (the steps of the group count in its window; for `peak`, the layers that may hold a
// window's largest live bytes); the scan keeps three arrays.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/partition.hpp"

namespace layerwise_fast {

// An objective measures a group [j, i) that grows to the left: open(i) gives the group
// {i - 1}, extend(group, j) adds layer j, value(group, bytes, i) is its measure given
// its cost under the capacity model.

// The bottleneck in bytes: the capacity model's own cost.
struct BytesObjective {
  using Value = int64_t;
  struct Group {};
  Group open(int64_t) const noexcept { return {}; }
  void extend(Group&, int64_t) const noexcept {}
  Value value(const Group&, int64_t bytes, int64_t) const noexcept { return bytes; }
};

// The bottleneck in time: a stage costs the time of its layers plus the time to send
// what its last layer outputs to the next stage: cut_time[i] for a stage ending with
// layer i (for the final layer, whatever leaving the pipeline costs, often 0).
struct StageTime {
  using Value = double;
  const double* layer_time;  // seconds, n entries
  const double* cut_time;    // seconds, n entries
  struct Group {
    double time;
  };
  Group open(int64_t stop) const noexcept { return {layer_time[stop - 1]}; }
  void extend(Group& g, int64_t j) const noexcept { g.time += layer_time[j]; }
  Value value(const Group& g, int64_t, int64_t stop) const noexcept { return g.time + cut_time[stop - 1]; }
};

// Each group's stage time, summed as the dp sums it (last layer first), so that the
// largest is, to the last bit, the bottleneck the dp minimised. `boundaries` are k + 1
// ascending cuts from 0 to n, as a Partition holds them.
inline std::vector<double> stage_times(const StageTime& objective, const std::vector<int64_t>& boundaries) {
  std::vector<double> times;
  times.reserve(boundaries.empty() ? 0 : boundaries.size() - 1);
  for (size_t g = 1; g < boundaries.size(); ++g) {
    const int64_t start = boundaries[g - 1], stop = boundaries[g];
    auto group = objective.open(stop);
    for (int64_t j = stop - 2; j >= start; --j) objective.extend(group, j);
    times.push_back(objective.value(group, start, stop));
  }
  return times;
}

// The shortest decimal text that reads back as `value` (as Python's repr writes it).
inline std::string shortest_text(double value) {
  char text[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

// Every time must be finite and >= 0.
inline void check_times(const double* times, int64_t n, const char* column) {
  for (int64_t i = 0; i < n; ++i) {
    if (!(times[i] >= 0.0 && times[i] <= std::numeric_limits<double>::max())) {
      throw std::invalid_argument(std::string(column) + "[" + std::to_string(i) + "] = " + shortest_text(times[i]) +
                                  " is not a finite time >= 0");
    }
  }
}

namespace detail {

inline void check_dp_arguments(int64_t n, int64_t capacity) {
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
}

// For the prefix of i layers: the fewest groups, the smallest bottleneck with that many
// groups, and the start of its last group.
template <class Value>
struct PrefixTable {
  std::vector<int64_t> groups, last_start;
  std::vector<Value> bottleneck;

  explicit PrefixTable(int64_t n)
      : groups(static_cast<size_t>(n) + 1, 0),
        last_start(static_cast<size_t>(n) + 1, 0),
        bottleneck(static_cast<size_t>(n) + 1, Value{}) {}
};

// The partition of all n layers into `groups` groups whose last starts are
// last_start[i] for each prefix of i layers.
template <class Cost>
Partition reconstruct(const Cost& cost, int64_t capacity, int64_t groups, const int64_t* last_start) {
  std::vector<int64_t> cuts(static_cast<size_t>(groups) + 1);
  for (int64_t i = cost.size(), c = groups; c >= 0; --c) {
    cuts[static_cast<size_t>(c)] = i;
    i = last_start[i];
  }
  Partition result;
  result.boundaries.reserve(cuts.size());
  result.group_costs.reserve(cuts.size() - 1);
  for (size_t g = 1; g < cuts.size(); ++g) {
    auto group = cost.start(cuts[g - 1]);
    for (int64_t i = cuts[g - 1] + 1; i < cuts[g]; ++i) cost.try_extend(group, i, capacity);
    result.close_group(cuts[g], Cost::cost(group));
  }
  return result;
}

// Every start of the last group that fits, for any monotone cost and any objective.
template <class Cost, class Objective>
Partition dp_scan(const Cost& cost, int64_t capacity, const Objective& objective) {
  using Value = typename Objective::Value;
  const int64_t n = cost.size();
  check_dp_arguments(n, capacity);
  PrefixTable<Value> table(n);
  for (int64_t i = 1; i <= n; ++i) {
    auto group = cost.single(i - 1, capacity);
    auto measured = objective.open(i);
    int64_t best_groups = kInt64Max, best_start = i - 1;
    Value best_bottleneck{};
    // Ties keep the latest start, i.e. the shortest last group.
    for (int64_t j = i - 1;; --j) {
      const int64_t g = table.groups[static_cast<size_t>(j)] + 1;
      const Value b =
          std::max(table.bottleneck[static_cast<size_t>(j)], objective.value(measured, Cost::cost(group), i));
      if (g < best_groups || (g == best_groups && b < best_bottleneck)) {
        best_groups = g;
        best_bottleneck = b;
        best_start = j;
      }
      if (j == 0 || !cost.try_extend(group, j - 1, capacity)) break;
      objective.extend(measured, j - 1);
    }
    const size_t at = static_cast<size_t>(i);
    table.groups[at] = best_groups;
    table.bottleneck[at] = best_bottleneck;
    table.last_start[at] = best_start;
  }
  return reconstruct(cost, capacity, table.groups.back(), table.last_start.data());
}

// A group of consecutive, validated layers that grows on the right and shrinks on the
// left, with its cost in O(1) amortised per layer. Its cost always fits the capacity,
// so no sum in it can overflow.
template <class Cost>
class Window;

template <>
class Window<SumCost> {
 public:
  explicit Window(const SumCost& cost) noexcept : sizes_(cost.data()) {}

  // Whether layer i (at most `limit` alone) can join without exceeding `limit`.
  bool fits_with(int64_t i, int64_t limit) const noexcept { return sizes_[i] <= limit - sum_; }
  void push(int64_t i) noexcept { sum_ += sizes_[i]; }
  void pop(int64_t first) noexcept { sum_ -= sizes_[first]; }
  int64_t cost() const noexcept { return sum_; }
  // The cost with layer i, next to the window, added (the caller knows it fits).
  int64_t cost_with(int64_t i) const noexcept { return sum_ + sizes_[i]; }

 private:
  const int64_t* sizes_;
  int64_t sum_ = 0;
};

template <>
class Window<PeakCost> {
 public:
  explicit Window(const PeakCost& cost) noexcept : cost_(cost) {}

  bool fits_with(int64_t i, int64_t limit) const noexcept {
    const PeakCost::Group layer = cost_.start(i);
    // Both terms are at most `limit`, so the unsigned sum cannot wrap.
    const uint64_t grown = static_cast<uint64_t>(layer.weights) + static_cast<uint64_t>(std::max(live(), layer.live));
    return grown <= static_cast<uint64_t>(limit - weights_);
  }

  void push(int64_t i) {
    const PeakCost::Group layer = cost_.start(i);
    weights_ += layer.weights;
    // The layers that may yet hold the largest live bytes: decreasing from the front.
    while (!by_live_.empty() && live_of(by_live_.back()) <= layer.live) by_live_.pop_back();
    by_live_.push_back(i);
  }

  void pop(int64_t first) noexcept {
    weights_ -= cost_.start(first).weights;
    if (!by_live_.empty() && by_live_.front() == first) by_live_.pop_front();
  }

  int64_t cost() const noexcept { return weights_ + live(); }

  int64_t cost_with(int64_t i) const noexcept {
    const PeakCost::Group layer = cost_.start(i);
    return weights_ + layer.weights + std::max(live(), layer.live);
  }

 private:
  int64_t live_of(int64_t layer) const noexcept { return cost_.start(layer).live; }
  int64_t live() const noexcept { return by_live_.empty() ? 0 : live_of(by_live_.front()); }

  const PeakCost& cost_;
  int64_t weights_ = 0;
  std::deque<int64_t> by_live_;  // layer indices, at most one per layer of the window
};

template <class Cost>
inline constexpr bool kSlides = std::is_same_v<Cost, SumCost> || std::is_same_v<Cost, PeakCost>;

// The bytes DP by two sliding windows. With B[j] the best bottleneck of prefix j, G[j]
// its fewest groups and c(j, i) the cost of layers [j, i), the recurrence picks, among
// the starts j in [a_i, i) whose group fits (a_i the first), the latest that minimises
// (G[j] + 1, max(B[j], c(j, i))). Because the cost is monotone:
// - G never decreases, so the starts with the fewest groups form a block [a_i, last];
// - within a block B never decreases (cut an optimal partition of a longer prefix short:
//   the same number of groups, none costlier), while c(j, i) never increases in j;
//   so max(B[j], c(j, i)) falls until the crossing t_i, the first j with
//   c(j, i) <= B[j], and rises after it: the best start is t_i - 1 or the last j
//   with B[j] = B[t_i];
// - a_i and t_i never decrease with i (c(j, i) only grows with i), so both windows,
//   [a_i, i) and [t_i, i), only slide right.
template <class Cost>
Partition dp_sliding(const Cost& cost, int64_t capacity) {
  const int64_t n = cost.size();
  check_dp_arguments(n, capacity);
  // B and the last group's start for each prefix; G is kept as the starts of its steps.
  // Every entry is written before it is read, so the arrays are left uninitialised.
  const std::unique_ptr<int64_t[]> best(new int64_t[static_cast<size_t>(n) + 1]);
  const std::unique_ptr<int64_t[]> last_start(new int64_t[static_cast<size_t>(n) + 1]);
  best[0] = last_start[0] = 0;
  // first_prefix[g - oldest]: the shortest prefix that needs g groups, for g from
  // oldest = G[fit_start] on (earlier ones are dropped: fit_start never moves back).
  std::deque<int64_t> first_prefix{0};
  int64_t oldest = 0, groups = 0;     // groups: G[i - 1]
  Window<Cost> fit(cost), tail(cost);  // layers [fit_start, i) and [tail_start, i)
  int64_t fit_start = 0, tail_start = 0;
  for (int64_t i = 1; i <= n; ++i) {
    cost.single(i - 1, capacity);
    while (!fit.fits_with(i - 1, capacity)) fit.pop(fit_start++);
    fit.push(i - 1);
    while (tail_start < fit_start) tail.pop(tail_start++);
    tail.push(i - 1);

    while (first_prefix.size() > 1 && first_prefix[1] <= fit_start) {
      first_prefix.pop_front();
      ++oldest;
    }
    const int64_t last = first_prefix.size() > 1 ? first_prefix[1] - 1 : i - 1;
    while (tail_start <= last && tail.cost() > best[tail_start]) tail.pop(tail_start++);

    int64_t start, bottleneck;
    const bool crossed = tail_start <= last;
    if (crossed && (tail_start == fit_start || best[tail_start] <= tail.cost_with(tail_start - 1))) {
      bottleneck = best[tail_start];
      start = last;  // the plateau of B[t_i] most often reaches the end of the block
      if (best[last] != bottleneck) {
        start = std::upper_bound(&best[tail_start], &best[last], bottleneck) - &best[0] - 1;
      }
    } else {
      bottleneck = tail.cost_with(tail_start - 1);
      start = tail_start - 1;
    }
    best[i] = bottleneck;
    last_start[i] = start;
    if (oldest + 1 > groups) {  // G[i] = G[fit_start] + 1: a new group count
      groups = oldest + 1;
      first_prefix.push_back(i);
    }
  }
  return reconstruct(cost, capacity, groups, last_start.get());
}

}  // namespace detail

// Fewest groups under `capacity`, then the smallest bottleneck under `objective`.
template <class Cost, class Objective = BytesObjective>
Partition dp(const Cost& cost, int64_t capacity, const Objective& objective = {}) {
  if constexpr (std::is_same_v<Objective, BytesObjective> && detail::kSlides<Cost>) {
    return detail::dp_sliding(cost, capacity);
  } else {
    return detail::dp_scan(cost, capacity, objective);
  }
}

}  // namespace layerwise_fast
