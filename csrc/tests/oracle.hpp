// Test oracles for the core: brute force over every cut set, plain bisection over
// linear probes, and a structural check of any result. Shared by the unit tests and
// the fuzz target; slow on purpose and independent of the algorithms' own machinery.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "layerwise_fast/core.hpp"

namespace layerwise_fast::testing {

// Cost of layers [a, b) under any cost model, built by plain extension.
template <class Cost>
int64_t group_cost(const Cost& cost, int64_t a, int64_t b) {
  auto group = cost.start(a);
  for (int64_t j = a + 1; j < b; ++j) cost.try_extend(group, j, kUnbounded);
  return Cost::cost(group);
}

struct Best {
  int64_t groups = kInt64Max;      // fewest groups under the capacity
  int64_t bottleneck = kInt64Max;  // smallest bottleneck among those
  std::vector<int64_t> by_k;       // smallest bottleneck for each k (index k)
};

// Every cut set of n layers (n <= 20 or so): the exhaustive oracle. Costs must fit int64.
template <class Cost>
Best exhaustive(const Cost& cost, int64_t capacity) {
  const int64_t n = cost.size();
  Best best;
  best.by_k.assign(static_cast<size_t>(n) + 1, kInt64Max);
  for (uint64_t mask = 0; mask < (uint64_t{1} << (n - 1)); ++mask) {
    int64_t groups = 0, worst = 0, start = 0;
    for (int64_t i = 1; i <= n; ++i) {
      if (i < n && !((mask >> (i - 1)) & 1)) continue;
      worst = std::max(worst, group_cost(cost, start, i));
      ++groups;
      start = i;
    }
    auto& slot = best.by_k[static_cast<size_t>(groups)];
    slot = std::min(slot, worst);
    if (worst <= capacity && (groups < best.groups || (groups == best.groups && worst < best.bottleneck))) {
      best.groups = groups;
      best.bottleneck = worst;
    }
  }
  return best;
}

// The smallest bound at which k groups cover all layers, by plain bisection over
// linear probes: independent of the estimates, brackets and clamping of balanced().
template <class Cost>
int64_t bisection_oracle(const Cost& cost, int64_t k, int64_t largest, int64_t total) {
  int64_t lo = largest, hi = total;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (detail::linear_probe(cost, k, mid).feasible) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// Next-fit one layer at a time on the `sum` model, in plain checked arithmetic: the
// cuts greedy() must return. Sizes must be >= 0 and each at most the capacity.
inline std::vector<int64_t> next_fit_cuts(const std::vector<int64_t>& sizes, int64_t capacity) {
  std::vector<int64_t> cuts{0};
  int64_t cost = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    int64_t grown;
    if (i > 0 && (builtin::add_overflow(cost, sizes[i], &grown) || grown > capacity)) {
      cuts.push_back(static_cast<int64_t>(i));
      cost = sizes[i];
    } else {
      cost = i > 0 ? grown : sizes[i];
    }
  }
  cuts.push_back(static_cast<int64_t>(sizes.size()));
  return cuts;
}

// The first layer greedy() must reject: negative, or alone above the capacity; -1 if none.
inline int64_t first_invalid_layer(const std::vector<int64_t>& sizes, int64_t capacity) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0 || sizes[i] > capacity) return static_cast<int64_t>(i);
  }
  return -1;
}

// Devices in a fixed order, group g on device g: (fewest groups, then smallest
// bottleneck) by dynamic programming over (devices used, boundary), O(m n^2) group
// costs; groups == kInt64Max where no partition fits. Then, as ordered.hpp reports it:
// where a device can end no group, that device and the furthest boundary (< n) a group
// could start it at; where the devices run out, the furthest boundary reached.
struct OrderedBest {
  int64_t groups = kInt64Max;
  int64_t bottleneck = kInt64Max;
  int64_t stuck_device = -1;
  int64_t furthest = -1;
};

template <class Cost>
OrderedBest ordered_oracle(const Cost& cost, const std::vector<int64_t>& capacities) {
  const auto n = static_cast<size_t>(cost.size());
  const auto furthest = [n](const std::vector<int64_t>& reach) {
    int64_t last = -1;
    for (size_t j = 0; j < n; ++j) last = reach[j] != kInt64Max ? static_cast<int64_t>(j) : last;
    return last;
  };
  // best[j]: the smallest bottleneck of g groups on devices 0..g-1 ending at boundary j
  std::vector<int64_t> best(n + 1, kInt64Max);
  best[0] = 0;
  for (size_t g = 0; g < capacities.size(); ++g) {
    std::vector<int64_t> next(n + 1, kInt64Max);
    for (size_t c = 0; c < n; ++c) {
      if (best[c] == kInt64Max) continue;
      for (size_t j = c + 1; j <= n; ++j) {
        const int64_t group = group_cost(cost, static_cast<int64_t>(c), static_cast<int64_t>(j));
        if (group > capacities[g]) break;  // monotone: longer groups cost no less
        next[j] = std::min(next[j], std::max(best[c], group));
      }
    }
    if (furthest(next) < 0 && next[n] == kInt64Max) {
      OrderedBest stuck;
      stuck.stuck_device = static_cast<int64_t>(g);
      stuck.furthest = furthest(best);
      return stuck;
    }
    best = std::move(next);
    if (best[n] != kInt64Max) return {static_cast<int64_t>(g) + 1, best[n], -1, -1};
  }
  OrderedBest exhausted;
  exhausted.furthest = furthest(best);
  return exhausted;
}

// "" if p is a well-formed partition of the model's layers: cuts from 0 to n, strictly
// increasing, costs equal to the model's cost of each group, bottleneck and its group
// consistent. Otherwise what is wrong.
template <class Cost>
std::string shape_error(const Cost& cost, const Partition& p) {
  const int64_t n = cost.size();
  if (p.boundaries.empty() || p.boundaries.front() != 0 || p.boundaries.back() != n) return "cuts do not span 0..n";
  if (static_cast<int64_t>(p.boundaries.size()) != p.k() + 1) return "k + 1 cuts expected";
  int64_t worst = -1, first_worst = -1;
  for (int64_t g = 0; g < p.k(); ++g) {
    const int64_t a = p.boundaries[static_cast<size_t>(g)], b = p.boundaries[static_cast<size_t>(g) + 1];
    if (a >= b) return "empty group " + std::to_string(g);
    const int64_t c = group_cost(cost, a, b);
    if (c != p.group_costs[static_cast<size_t>(g)]) return "wrong cost of group " + std::to_string(g);
    if (c > worst) {
      worst = c;
      first_worst = g;
    }
  }
  if (worst != p.bottleneck || first_worst != p.bottleneck_group) return "wrong bottleneck";
  return "";
}

}  // namespace layerwise_fast::testing
