// Dynamic programme over prefixes, with reconstruction: the fewest groups that fit the
// capacity, then the smallest bottleneck among partitions with that many groups.
//
// The seed's DP (section 3.2) minimises only the bottleneck, with no bound on k: its
// optimum isolates the largest layer and degenerates towards one group per layer.
// Minimising (groups, bottleneck) lexicographically fixes that. The capacity applies
// to a monotone Cost model; the bottleneck is measured by an Objective, by default the
// same cost (bytes), or the stage time of a pipeline (StageTime below). O(n * w) time
// where w is the most layers one group can hold, O(n) memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
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

// Every time must be finite and >= 0.
inline void check_times(const double* times, int64_t n, const char* column) {
  for (int64_t i = 0; i < n; ++i) {
    if (!(times[i] >= 0.0 && times[i] <= std::numeric_limits<double>::max())) {
      throw std::invalid_argument(std::string(column) + "[" + std::to_string(i) + "] = " + std::to_string(times[i]) +
                                  " is not a finite time >= 0");
    }
  }
}

template <class Cost, class Objective = BytesObjective>
Partition dp(const Cost& cost, int64_t capacity, const Objective& objective = {}) {
  using Value = typename Objective::Value;
  const int64_t n = cost.size();
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
  const size_t len = static_cast<size_t>(n) + 1;
  // For the prefix of i layers: fewest groups, smallest bottleneck, start of its last group.
  std::vector<int64_t> groups(len, 0), last_start(len, 0);
  std::vector<Value> bottleneck(len, Value{});
  for (int64_t i = 1; i <= n; ++i) {
    auto group = cost.single(i - 1, capacity);
    auto measured = objective.open(i);
    int64_t best_groups = kInt64Max, best_start = i - 1;
    Value best_bottleneck{};
    // Ties keep the latest start, i.e. the shortest last group.
    for (int64_t j = i - 1;; --j) {
      const int64_t g = groups[static_cast<size_t>(j)] + 1;
      const Value b = std::max(bottleneck[static_cast<size_t>(j)], objective.value(measured, Cost::cost(group), i));
      if (g < best_groups || (g == best_groups && b < best_bottleneck)) {
        best_groups = g;
        best_bottleneck = b;
        best_start = j;
      }
      if (j == 0 || !cost.try_extend(group, j - 1, capacity)) break;
      objective.extend(measured, j - 1);
    }
    const size_t at = static_cast<size_t>(i);
    groups[at] = best_groups;
    bottleneck[at] = best_bottleneck;
    last_start[at] = best_start;
  }

  std::vector<int64_t> cuts(static_cast<size_t>(groups.back()) + 1);
  for (int64_t i = n, c = groups.back(); c >= 0; --c) {
    cuts[static_cast<size_t>(c)] = i;
    i = last_start[static_cast<size_t>(i)];
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

}  // namespace layerwise_fast
