// Helpers shared by the run queues' contract tests (local_queue_test.cpp,
// lifo_queue_test.cpp): both queues have the same owner interface.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "catch.hpp"

namespace weft_test {

// Records what a push hands to the overflow callback.
struct overflow_sink {
    std::vector<int> tasks;
    std::vector<std::size_t> batch_sizes;

    void operator()(std::span<int> batch) {
        tasks.insert(tasks.end(), batch.begin(), batch.end());
        batch_sizes.push_back(batch.size());
    }
};

// Pushes `first, first + 1, ..., first + count - 1`; REQUIREs no overflow.
template <class Queue>
void push_range(Queue& q, int first, int count) {
    overflow_sink sink;
    for (int i = 0; i < count; ++i) {
        REQUIRE_FALSE(q.push_back_or_overflow(first + i, sink));
    }
    REQUIRE(sink.tasks.empty());
}

// Pops everything left, in the order the queue hands it out.
template <class Queue>
std::vector<int> pop_all(Queue& q) {
    std::vector<int> out;
    int task = 0;
    while (q.pop(task)) {
        out.push_back(task);
    }
    return out;
}

} // namespace weft_test
