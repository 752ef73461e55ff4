// Dynamic programme over prefixes, with reconstruction: the fewest groups that fit the
// capacity, then the smallest bottleneck among partitions with that many groups.
//
// The seed's DP (section 3.2) minimises only the bottleneck, with no bound on k: its
// optimum isolates the largest layer and degenerates towards one group per layer.
// Minimising (groups, bottleneck) lexicographically fixes that. Works for any
// monotone interval cost that the Cost model can extend to the left; O(n * w) time
// where w is the most layers one group can hold, O(n) memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/partition.hpp"

namespace layerwise_fast {

template <class Cost>
Partition dp(const Cost& cost, int64_t capacity) {
  const int64_t n = cost.size();
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
  const size_t len = static_cast<size_t>(n) + 1;
  // For the prefix of i layers: fewest groups, smallest bottleneck, start of its last group.
  std::vector<int64_t> groups(len, 0), bottleneck(len, 0), last_start(len, 0);
  for (int64_t i = 1; i <= n; ++i) {
    auto group = cost.single(i - 1, capacity);
    int64_t best_groups = kInt64Max, best_bottleneck = kInt64Max, best_start = i - 1;
    // Ties keep the latest start, i.e. the shortest last group.
    for (int64_t j = i - 1;; --j) {
      const int64_t g = groups[static_cast<size_t>(j)] + 1;
      const int64_t b = std::max(bottleneck[static_cast<size_t>(j)], Cost::cost(group));
      if (g < best_groups || (g == best_groups && b < best_bottleneck)) {
        best_groups = g;
        best_bottleneck = b;
        best_start = j;
      }
      if (j == 0 || !cost.try_extend(group, j - 1, capacity)) break;
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
