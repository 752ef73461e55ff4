# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False
from libc.stdint cimport int64_t
from libcpp.vector cimport vector
from layerwise_fast.core cimport (SumCost, PeakCost, Partition, greedy, balanced, balanced_fewest, dp, kUnbounded,
                                  OrderedPartition, ordered_fit, ordered_balanced)

def run_greedy(const int64_t[::1] sizes, int64_t capacity):
    cdef Partition p = greedy(SumCost(&sizes[0], sizes.shape[0]), capacity)
    return list(p.boundaries), list(p.group_costs), p.bottleneck

def run_balanced(const int64_t[::1] sizes, int64_t k):
    cdef Partition p = balanced(SumCost(&sizes[0], sizes.shape[0]), k, kUnbounded)
    return list(p.boundaries), p.bottleneck

def run_fewest_peak(const int64_t[::1] weights, const int64_t[::1] live, int64_t capacity):
    cdef Partition p = balanced_fewest(PeakCost(&weights[0], &live[0], weights.shape[0]), capacity)
    return list(p.boundaries), p.bottleneck

def run_dp(const int64_t[::1] sizes, int64_t capacity):
    cdef Partition p = dp(SumCost(&sizes[0], sizes.shape[0]), capacity)
    return list(p.boundaries), p.bottleneck

def run_ordered(const int64_t[::1] sizes, capacities, bint balance):
    '''(outcome, boundaries, device, layer), as layerwise_fast._core.ordered_fit / ordered_balanced.'''
    cdef vector[int64_t] caps = capacities
    cdef OrderedPartition p
    if balance:
        p = ordered_balanced(SumCost(&sizes[0], sizes.shape[0]), caps)
    else:
        p = ordered_fit(SumCost(&sizes[0], sizes.shape[0]), caps)
    return <int>p.outcome, list(p.partition.boundaries), p.device, p.layer

def greedy_calls(const int64_t[::1] sizes, int64_t capacity, int64_t calls):
    '''Makes `calls` greedy calls without the GIL; returns the sum of k (so none is skipped).'''
    cdef int64_t total = 0, i
    cdef const int64_t* data = &sizes[0]
    cdef int64_t n = sizes.shape[0]
    with nogil:
        for i in range(calls):
            total += greedy(SumCost(data, n), capacity).k()
    return total

def balanced_calls(const int64_t[::1] sizes, int64_t k, int64_t calls):
    '''Makes `calls` balanced calls without the GIL; returns the sum of the bottlenecks.'''
    cdef int64_t total = 0, i
    cdef const int64_t* data = &sizes[0]
    cdef int64_t n = sizes.shape[0]
    with nogil:
        for i in range(calls):
            total += balanced(SumCost(data, n), k, kUnbounded).bottleneck
    return total
