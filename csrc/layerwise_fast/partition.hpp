// The result shared by every algorithm: cut indices and the cost of each group.
#pragma once

#include <cstdint>
#include <vector>

namespace layerwise_fast {

struct Partition {
  std::vector<int64_t> boundaries{0};  // k + 1 cut indices: 0, ..., n
  std::vector<int64_t> group_costs;    // k costs, group g = [boundaries[g], boundaries[g+1])
  int64_t bottleneck = 0;              // largest group cost
  int64_t bottleneck_group = 0;        // first group whose cost is the bottleneck

  int64_t k() const noexcept { return static_cast<int64_t>(group_costs.size()); }

  // Ends the current group at layer index `stop` (exclusive) with cost `cost`.
  void close_group(int64_t stop, int64_t cost) {
    const bool larger = group_costs.empty() || cost > bottleneck;  // selects, no branch
    bottleneck_group = larger ? k() : bottleneck_group;
    bottleneck = larger ? cost : bottleneck;
    boundaries.push_back(stop);
    group_costs.push_back(cost);
  }
};

}  // namespace layerwise_fast
