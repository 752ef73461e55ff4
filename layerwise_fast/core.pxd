# Cython declarations of the header-only C++ core, for other Cython code:
#
#     from layerwise_fast.core cimport SumCost, Partition, greedy
#
# Compile with include_dirs=[layerwise_fast.get_include()] and C++17. Declarations only:
# nothing here is compiled into layerwise_fast itself. C++ exceptions become Python
# exceptions through `except +` (std::invalid_argument, including a layer larger than
# the capacity, -> ValueError; std::overflow_error -> OverflowError).

from libc.stdint cimport int64_t
from libcpp.vector cimport vector

cdef extern from "layerwise_fast/core.hpp" namespace "layerwise_fast" nogil:
    const int64_t kUnbounded  # capacity meaning "no limit"

    cdef cppclass Partition:
        vector[int64_t] boundaries   # k + 1 cut indices from 0 to n
        vector[int64_t] group_costs  # k group costs in bytes
        int64_t bottleneck
        int64_t bottleneck_group
        int64_t k()

    # `sum` model: a group costs the sum of its sizes. Holds the pointer, not a copy.
    cdef cppclass SumCost:
        SumCost(const int64_t* sizes, int64_t n)

    # `peak` model: sum of weights + the largest live bytes (activations + buffers).
    cdef cppclass PeakCost:
        PeakCost(const int64_t* weights, const int64_t* live, int64_t n)

    Partition greedy[Cost](const Cost& cost, int64_t capacity) except +
    Partition balanced[Cost](const Cost& cost, int64_t k, int64_t capacity) except +
    Partition balanced_fewest[Cost](const Cost& cost, int64_t capacity) except +
    Partition dp[Cost](const Cost& cost, int64_t capacity) except +

    # Devices in a fixed pipeline order, group g on device g (see ordered.hpp).
    enum class OrderedOutcome(int):
        fits                 # `partition` holds the groups
        device_cannot_start  # device `device` cannot hold layer `layer`, the furthest a group can start
        devices_exhausted    # layers from `layer` on remain after the last device

    cdef cppclass OrderedPartition:
        OrderedOutcome outcome
        Partition partition
        int64_t device
        int64_t layer

    OrderedPartition ordered_fit[Cost](const Cost& cost, const vector[int64_t]& capacities) except +
    OrderedPartition ordered_balanced[Cost](const Cost& cost, const vector[int64_t]& capacities) except +
