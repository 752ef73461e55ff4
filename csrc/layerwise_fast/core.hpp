// layerwise_fast: header-only partition core, free of Python.
//
//   greedy(cost, capacity)           fewest contiguous groups under the capacity, O(n)
//   balanced(cost, k[, capacity])    minimum bottleneck over exactly k groups, exact
//   balanced_fewest(cost, capacity)  greedy's k, then the minimum bottleneck
//   dp(cost, capacity)               (fewest groups, smallest bottleneck), O(n) amortised
//   ordered_fit(cost, capacities)    fewest groups, group g fitting capacities[g]
//   ordered_balanced(cost, capacities)  the same k, then the smallest bottleneck
//
// cost is SumCost or PeakCost (cost.hpp). All sizes are int64 bytes; every sum is
// checked and overflow throws std::overflow_error. Bad arguments throw
// std::invalid_argument; a layer larger than the capacity throws layer_too_large.
#pragma once

#include "layerwise_fast/balanced.hpp"
#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/dp.hpp"
#include "layerwise_fast/errors.hpp"
#include "layerwise_fast/greedy.hpp"
#include "layerwise_fast/ordered.hpp"
#include "layerwise_fast/partition.hpp"
