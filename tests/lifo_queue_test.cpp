// tests/lifo_queue_test.cpp
//
// The lifo run queue's contract (queue_order = lifo), on the production
// (std) policy, at capacities 2, 4 and 256: the owner pops newest first,
// a thief takes the oldest half and runs the oldest task of it, overflow
// sends the oldest half away. Indices start at 0 and just below 2^16, so
// they wrap within the first operations. The weak-memory side is the model
// test's job: tests/model/lifo_queue_model.cpp.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include <weft/detail/lifo_queue.hpp>

#include "support/catch.hpp"
#include "support/queue_util.hpp"
#include "support/util.hpp"

namespace {

template <std::uint32_t N>
using capacity = std::integral_constant<std::uint32_t, N>;

template <class Cap>
using queue_of = weft::detail::lifo_queue<int, Cap::value>;

// Where the indices start: 0, and close enough to 2^16 (the owner's pushes
// move h down, the thieves move t and s down) that they wrap at once.
template <class Cap>
std::uint16_t any_start() {
    return GENERATE(std::uint16_t{0}, std::uint16_t{1}, static_cast<std::uint16_t>(Cap::value),
                    std::uint16_t{0xFFFF});
}

using weft_test::overflow_sink;
using weft_test::pop_all;
using weft_test::push_range;

// first, first - 1, ..., first - count + 1
std::vector<int> down_from(int first, int count) {
    std::vector<int> v;
    for (int i = 0; i < count; ++i) {
        v.push_back(first - i);
    }
    return v;
}

} // namespace

TEMPLATE_TEST_CASE("the owner pops the newest task first", "[lifo_queue]", capacity<2>, capacity<4>,
                   capacity<256>) {
    constexpr int cap = static_cast<int>(TestType::value);
    queue_of<TestType> q(any_start<TestType>());
    int task = -1;
    REQUIRE_FALSE(q.pop(task));
    REQUIRE(task == -1); // an empty pop leaves `out` alone

    // Several laps of the ring: fill, pop half, push half again, pop all.
    int next = 0;
    for (int lap = 0; lap < 6; ++lap) {
        push_range(q, next, cap);
        next += cap;
        for (int i = 0; i < cap / 2; ++i) {
            REQUIRE(q.pop(task));
            REQUIRE(task == next - 1 - i);
        }
        push_range(q, next, cap / 2);
        next += cap / 2;
        // The newest half, then what was left of the first fill.
        std::vector<int> expected = down_from(next - 1, cap / 2);
        const std::vector<int> rest = down_from(next - cap / 2 - cap / 2 - 1, cap / 2);
        expected.insert(expected.end(), rest.begin(), rest.end());
        REQUIRE(pop_all(q) == expected);
        REQUIRE(q.is_empty());
        REQUIRE(q.remaining_slots() == TestType::value);
    }
}

TEMPLATE_TEST_CASE("a steal takes half, from the oldest end, and runs the oldest", "[lifo_queue]",
                   capacity<2>, capacity<4>, capacity<256>) {
    constexpr int cap = static_cast<int>(TestType::value);
    queue_of<TestType> q(any_start<TestType>());
    queue_of<TestType> thief(any_start<TestType>());
    const int count = GENERATE_COPY(1, cap / 2 + 1, cap);
    push_range(q, 0, count);

    int out = -1;
    const std::uint32_t n = q.steal_into(thief, out);
    const int taken = count - count / 2; // half, rounded up
    REQUIRE(n == static_cast<std::uint32_t>(taken));
    REQUIRE(out == 0); // the oldest task runs at once
    // The rest of the batch lands in the thief's queue, newest first.
    REQUIRE(thief.len() == n - 1);
    REQUIRE(pop_all(thief) == down_from(taken - 1, taken - 1));
    // The owner keeps its newest tasks.
    REQUIRE(pop_all(q) == down_from(count - 1, count - taken));
    REQUIRE(q.remaining_slots() == TestType::value);
}

TEMPLATE_TEST_CASE("a steal lands at the newest end of what the thief already holds", "[lifo_queue]",
                   capacity<4>, capacity<256>) {
    queue_of<TestType> q(any_start<TestType>());
    queue_of<TestType> thief(any_start<TestType>());
    push_range(q, 100, 4);
    push_range(thief, 0, 1);
    int out = -1;
    REQUIRE(q.steal_into(thief, out) == 2);
    REQUIRE(out == 100);
    REQUIRE(pop_all(thief) == std::vector<int>{101, 0});
}

TEMPLATE_TEST_CASE("a thief whose own queue is over half full steals nothing", "[lifo_queue]", capacity<2>,
                   capacity<4>, capacity<256>) {
    constexpr int cap = static_cast<int>(TestType::value);
    queue_of<TestType> q(any_start<TestType>());
    queue_of<TestType> thief(any_start<TestType>());
    push_range(q, 0, cap);
    push_range(thief, 1000, cap / 2 + 1);
    int out = -1;
    REQUIRE(q.steal_into(thief, out) == 0);
    REQUIRE(out == -1);
    REQUIRE(q.len() == TestType::value);
}

TEMPLATE_TEST_CASE("stealing from an empty queue takes nothing", "[lifo_queue]", capacity<2>, capacity<4>,
                   capacity<256>) {
    queue_of<TestType> q(any_start<TestType>());
    queue_of<TestType> thief(any_start<TestType>());
    int out = -1;
    REQUIRE(q.steal_into(thief, out) == 0);
    push_range(q, 0, 1);
    int task = 0;
    REQUIRE(q.pop(task));
    REQUIRE(q.steal_into(thief, out) == 0);
    REQUIRE(out == -1);
    REQUIRE(thief.is_empty());
}

TEMPLATE_TEST_CASE("a full ring sends its oldest half and the new task away, oldest first", "[lifo_queue]",
                   capacity<2>, capacity<4>, capacity<256>) {
    constexpr int cap = static_cast<int>(TestType::value);
    queue_of<TestType> q(any_start<TestType>());
    push_range(q, 0, cap);
    REQUIRE(q.remaining_slots() == 0);

    overflow_sink sink;
    REQUIRE(q.push_back_or_overflow(cap, sink));
    REQUIRE(sink.batch_sizes == std::vector<std::size_t>{static_cast<std::size_t>(cap / 2 + 1)});
    std::vector<int> expected;
    for (int i = 0; i < cap / 2; ++i) {
        expected.push_back(i);
    }
    expected.push_back(cap);
    REQUIRE(sink.tasks == expected);
    // The newest half stays, and the ring has room again.
    REQUIRE(q.len() == TestType::value / 2);
    REQUIRE(q.remaining_slots() == TestType::value / 2);
    REQUIRE_FALSE(q.push_back_or_overflow(cap + 1, sink));
    std::vector<int> rest{cap + 1};
    const std::vector<int> kept = down_from(cap - 1, cap / 2);
    rest.insert(rest.end(), kept.begin(), kept.end());
    REQUIRE(pop_all(q) == rest);
}

TEMPLATE_TEST_CASE("push_back_n puts a batch at the newest end, popped in the order given", "[lifo_queue]",
                   capacity<2>, capacity<4>, capacity<256>) {
    constexpr int cap = static_cast<int>(TestType::value);
    queue_of<TestType> q(any_start<TestType>());
    push_range(q, 1000, cap / 2);
    int next = 0;
    q.push_back_n(q.remaining_slots(), [&] { return next++; });
    REQUIRE(next == cap - cap / 2);
    REQUIRE(q.remaining_slots() == 0);
    q.push_back_n(0, [&] { return -1; }); // nothing to push: no change
    std::vector<int> expected;
    for (int i = 0; i < next; ++i) {
        expected.push_back(i);
    }
    const std::vector<int> older = down_from(1000 + cap / 2 - 1, cap / 2);
    expected.insert(expected.end(), older.begin(), older.end());
    REQUIRE(pop_all(q) == expected);
}

TEMPLATE_TEST_CASE("len and remaining_slots follow pushes, pops, steals and overflow", "[lifo_queue]",
                   capacity<2>, capacity<4>, capacity<256>) {
    constexpr auto cap = TestType::value;
    queue_of<TestType> q(any_start<TestType>());
    queue_of<TestType> thief;
    REQUIRE(q.len() == 0);
    REQUIRE(q.remaining_slots() == cap);
    push_range(q, 0, static_cast<int>(cap));
    REQUIRE(q.len() == cap);
    REQUIRE(q.remaining_slots() == 0);
    int task = 0;
    REQUIRE(q.steal_into(thief, task) == cap / 2);
    REQUIRE(q.len() == cap / 2);
    REQUIRE(q.remaining_slots() == cap / 2);
    REQUIRE(q.pop(task));
    REQUIRE(q.len() == cap / 2 - 1);
    REQUIRE(q.remaining_slots() == cap / 2 + 1);
}

namespace {

void run_task() {
    for (int i = 0; i < 32; ++i) {
        std::atomic_signal_fence(std::memory_order_seq_cst); // not optimised away
    }
}

} // namespace

// Concurrency: the owner pushes (overflowing whenever the ring is full) and
// pops, as a fork-join worker does, while two thieves steal into their own
// queues and pop them. Every task comes out exactly once. The thieves stop
// only when the owner is done and nothing is left: no timing assumptions.
TEMPLATE_TEST_CASE("an owner and two thieves obtain every task exactly once, lifo", "[lifo_queue][stress]",
                   capacity<2>, capacity<4>, capacity<256>) {
    using queue = queue_of<TestType>;
    const auto tasks = static_cast<int>(weft_test::scaled(1'000'000));
    std::vector<std::atomic<std::uint8_t>> taken(static_cast<std::size_t>(tasks)); // C++20: zeroed
    auto take = [&](int id) {
        taken[static_cast<std::size_t>(id)].fetch_add(1, std::memory_order_relaxed);
        run_task();
    };

    queue owner_queue(0xFF00); // wraps past 2^16 at once
    std::atomic<int> thieves_ready{0};
    std::atomic<bool> owner_done{false};
    struct thief_report {
        std::atomic<std::uint64_t> attempts{0};
        std::uint64_t steals = 0;
        std::uint64_t obtained = 0;
        std::uint64_t order_errors = 0; // a stolen batch's `out` must be its oldest (smallest) task
    };
    thief_report reports[2];

    auto thief = [&](thief_report& report) {
        queue mine;
        int task = 0;
        std::uint32_t idle_spins = 0;
        thieves_ready.fetch_add(1, std::memory_order_release);
        for (;;) {
            const std::uint32_t n = owner_queue.steal_into(mine, task);
            report.attempts.fetch_add(1, std::memory_order_relaxed);
            if (n != 0) {
                ++report.steals;
                ++report.obtained;
                int first_kept = 0;
                if (n > 1 && mine.pop(first_kept)) {
                    // The kept tasks are newer than the one we run.
                    report.order_errors += first_kept > task ? 0 : 1;
                    ++report.obtained;
                    take(first_kept);
                }
                take(task);
            }
            if (mine.pop(task)) {
                ++report.obtained;
                take(task);
                continue;
            }
            if (n == 0) {
                if (owner_done.load(std::memory_order_acquire)) {
                    return;
                }
                if (++idle_spins % 16 == 0) {
                    std::this_thread::yield();
                } else {
                    weft::detail::cpu_relax();
                }
            }
        }
    };
    std::thread thieves[2] = {std::thread(thief, std::ref(reports[0])),
                              std::thread(thief, std::ref(reports[1]))};

    std::uint64_t popped = 0;
    std::uint64_t overflowed = 0;
    auto overflow = [&](std::span<int> batch) {
        overflowed += batch.size();
        for (int id : batch) {
            taken[static_cast<std::size_t>(id)].fetch_add(1, std::memory_order_relaxed);
        }
    };
    auto pop_one = [&] {
        int task = 0;
        if (!owner_queue.pop(task)) {
            return false;
        }
        ++popped;
        take(task);
        return true;
    };
    // Progress handshake as in local_queue_test: between rounds the owner
    // waits for one more steal attempt, so on a busy machine the thieves
    // do run while the owner works (thieves never block: the wait ends).
    constexpr int round = 1024;
    auto steal_attempts = [&] {
        return reports[0].attempts.load(std::memory_order_relaxed) +
               reports[1].attempts.load(std::memory_order_relaxed);
    };
    std::uint64_t seen = 0;
    while (thieves_ready.load(std::memory_order_acquire) != 2) {
        std::this_thread::yield();
    }
    for (int id = 0; id < tasks; ++id) {
        owner_queue.push_back_or_overflow(id, overflow);
        if (id % round == round - 1) {
            for (std::uint32_t spins = 1; steal_attempts() == seen; ++spins) {
                if (spins % 64 == 0) {
                    std::this_thread::yield();
                } else {
                    weft::detail::cpu_relax();
                }
            }
            seen = steal_attempts();
        }
        if (id % 2 == 1) {
            pop_one();
        }
    }
    while (pop_one()) {
    }
    owner_done.store(true, std::memory_order_release);
    for (std::thread& t : thieves) {
        t.join();
    }

    INFO("popped " << popped << ", overflowed " << overflowed << ", stolen " << reports[0].obtained << " + "
                   << reports[1].obtained << " in " << reports[0].steals << " + " << reports[1].steals
                   << " steals");
    REQUIRE(reports[0].order_errors == 0);
    REQUIRE(reports[1].order_errors == 0);
    REQUIRE(popped + overflowed + reports[0].obtained + reports[1].obtained ==
            static_cast<std::uint64_t>(tasks));
    int wrong = 0;
    for (int i = 0; i < tasks; ++i) {
        wrong += taken[static_cast<std::size_t>(i)].load(std::memory_order_relaxed) != 1 ? 1 : 0;
    }
    REQUIRE(wrong == 0);
    REQUIRE(owner_queue.is_empty());
    REQUIRE(owner_queue.remaining_slots() == TestType::value);
}
