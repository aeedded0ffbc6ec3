// tests/local_queue_test.cpp
//
// The local run queue's contract, on the production (std) policy, at
// capacities 2, 4 and 256: tiny rings make wrap-around and overflow happen in
// every test. Indices start at 0 and just below 2^32. The weak-memory side
// (every interleaving of owner and thieves, every value a load may return) is
// the model test's job: tests/model/local_queue_model.cpp.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include <weft/detail/local_queue.hpp>

#include "support/catch.hpp"
#include "support/queue_util.hpp"
#include "support/util.hpp"

namespace {

template <std::uint32_t N>
using capacity = std::integral_constant<std::uint32_t, N>;

template <class Cap>
using queue_of = weft::detail::local_queue<int, Cap::value>;

// Where the indices start: 0, and close enough to 2^32 that they wrap within
// the first few operations (or exactly when the ring first fills).
template <class Cap>
std::uint32_t any_start() {
    return GENERATE(0u, 0xFFFF'FFF0u, 0u - Cap::value, 0xFFFF'FFFFu);
}

using weft_test::overflow_sink;
using weft_test::pop_all;
using weft_test::push_range;

std::vector<int> iota(int first, int count) {
    std::vector<int> v;
    for (int i = 0; i < count; ++i) {
        v.push_back(first + i);
    }
    return v;
}

} // namespace

TEMPLATE_TEST_CASE("the owner pops tasks in the order it pushed them", "[local_queue]", capacity<2>,
                   capacity<4>, capacity<256>) {
    constexpr int cap = static_cast<int>(TestType::value);
    queue_of<TestType> q(any_start<TestType>());
    int pushed = 0;
    int expected = 0;
    int task = -1;

    REQUIRE_FALSE(q.pop(task));
    REQUIRE(task == -1); // an empty pop leaves `out` alone

    // Several laps of the ring, alternating full and half-full.
    for (int lap = 0; lap < 6; ++lap) {
        push_range(q, pushed, cap);
        pushed += cap;
        for (int i = 0; i < cap / 2; ++i) {
            REQUIRE(q.pop(task));
            REQUIRE(task == expected++);
        }
        push_range(q, pushed, cap / 2);
        pushed += cap / 2;
        for (int i = 0; i < cap; ++i) {
            REQUIRE(q.pop(task));
            REQUIRE(task == expected++);
        }
        REQUIRE(q.is_empty());
    }
    REQUIRE_FALSE(q.pop(task));
}

TEMPLATE_TEST_CASE("indices wrap past 2^32 without losing order or count", "[local_queue]", capacity<2>,
                   capacity<4>, capacity<256>) {
    constexpr std::uint32_t cap = TestType::value;
    // 0xFFFFFFF0 + 16 = 2^32: whatever the capacity, the loop below crosses
    // the wrap many times over for 2 and 4 and in its first lap for 256.
    queue_of<TestType> q(0xFFFF'FFF0u);
    queue_of<TestType> thief(0xFFFF'FFF8u);
    int next = 0;
    int expected = 0;
    int task = -1;

    for (std::uint32_t lap = 0; lap < 8; ++lap) {
        // Fill, check the count, pop one, refill the slot, drain.
        push_range(q, next, static_cast<int>(cap));
        next += static_cast<int>(cap);
        REQUIRE(q.len() == cap);
        REQUIRE(q.remaining_slots() == 0);
        REQUIRE(q.pop(task));
        REQUIRE(task == expected++);
        push_range(q, next++, 1);
        REQUIRE(q.len() == cap);

        // A steal across the wrap takes the oldest half.
        int stolen = -1;
        const std::uint32_t n = q.steal_into(thief, stolen);
        REQUIRE(n == cap / 2);
        REQUIRE(stolen == expected + static_cast<int>(n) - 1);
        REQUIRE(pop_all(thief) == iota(expected, static_cast<int>(n) - 1));
        expected += static_cast<int>(n);

        REQUIRE(q.len() == cap - n);
        REQUIRE(pop_all(q) == iota(expected, static_cast<int>(cap - n)));
        expected += static_cast<int>(cap - n);
        REQUIRE(q.is_empty());
        REQUIRE(q.remaining_slots() == cap);
    }
    REQUIRE(expected == next);
}

TEMPLATE_TEST_CASE(
    "a full queue sends the newer half and the new task to overflow; the older half stays, in order",
    "[local_queue]", capacity<2>, capacity<4>, capacity<256>) {
    constexpr std::uint32_t cap = TestType::value;
    constexpr int half = static_cast<int>(cap / 2);
    queue_of<TestType> q(any_start<TestType>());

    push_range(q, 0, static_cast<int>(cap));
    REQUIRE(q.remaining_slots() == 0);

    overflow_sink sink;
    REQUIRE(q.push_back_or_overflow(static_cast<int>(cap), sink));

    // One batch: tasks half .. cap-1 (the newer half, oldest first), then the
    // new task.
    REQUIRE(sink.batch_sizes == std::vector<std::size_t>{cap / 2 + 1});
    REQUIRE(sink.tasks == iota(half, half + 1));
    REQUIRE(queue_of<TestType>::overflow_half == cap / 2);

    // The older half stays and pops first, in order.
    REQUIRE(q.len() == cap / 2);
    REQUIRE(q.remaining_slots() == cap / 2);

    SECTION("and pops in order") { REQUIRE(pop_all(q) == iota(0, half)); }
    SECTION("and the queue keeps working: new pushes queue behind it") {
        push_range(q, 1000, half);
        REQUIRE(q.remaining_slots() == 0);
        std::vector<int> expected = iota(0, half);
        const std::vector<int> later = iota(1000, half);
        expected.insert(expected.end(), later.begin(), later.end());
        REQUIRE(pop_all(q) == expected);
    }
    SECTION("and a thief steals from the older half") {
        queue_of<TestType> thief;
        int stolen = -1;
        const std::uint32_t n = q.steal_into(thief, stolen);
        REQUIRE(n == (cap / 2 + 1) / 2);
        REQUIRE(stolen == static_cast<int>(n) - 1);
        REQUIRE(pop_all(thief) == iota(0, static_cast<int>(n) - 1));
        REQUIRE(pop_all(q) == iota(static_cast<int>(n), half - static_cast<int>(n)));
    }
}

TEMPLATE_TEST_CASE("a steal takes half, from the oldest end", "[local_queue]", capacity<2>, capacity<4>,
                   capacity<256>) {
    constexpr std::uint32_t cap = TestType::value;
    const std::uint32_t start = any_start<TestType>();

    // Every fill level: n = ceil(k / 2) tasks move; the newest of them comes
    // back as `out`, the others land in the thief's queue in order, and the
    // victim keeps the rest in order.
    for (std::uint32_t k = 1; k <= cap; ++k) {
        CAPTURE(k);
        queue_of<TestType> victim(start);
        queue_of<TestType> thief(start + 7);
        push_range(victim, 0, static_cast<int>(k));

        int out = -1;
        const std::uint32_t n = victim.steal_into(thief, out);
        REQUIRE(n == (k + 1) / 2);
        REQUIRE(out == static_cast<int>(n) - 1);
        REQUIRE(thief.len() == n - 1);
        REQUIRE(pop_all(thief) == iota(0, static_cast<int>(n) - 1));
        REQUIRE(victim.len() == k - n);
        REQUIRE(pop_all(victim) == iota(static_cast<int>(n), static_cast<int>(k - n)));
    }
}

TEMPLATE_TEST_CASE("a steal lands behind what the thief already holds", "[local_queue]", capacity<2>,
                   capacity<4>, capacity<256>) {
    constexpr std::uint32_t cap = TestType::value;
    const std::uint32_t start = any_start<TestType>();
    queue_of<TestType> victim(start);
    queue_of<TestType> thief(start);

    push_range(thief, 500, static_cast<int>(cap / 2)); // half full: still allowed to steal
    push_range(victim, 0, static_cast<int>(cap));

    int out = -1;
    const std::uint32_t n = victim.steal_into(thief, out);
    REQUIRE(n == cap / 2);
    REQUIRE(out == static_cast<int>(n) - 1);
    REQUIRE(thief.len() == cap / 2 + n - 1);

    std::vector<int> expected = iota(500, static_cast<int>(cap / 2));
    const std::vector<int> stolen = iota(0, static_cast<int>(n) - 1);
    expected.insert(expected.end(), stolen.begin(), stolen.end());
    REQUIRE(pop_all(thief) == expected);
}

TEMPLATE_TEST_CASE("a thief whose own queue is over half full steals nothing", "[local_queue]", capacity<2>,
                   capacity<4>, capacity<256>) {
    constexpr std::uint32_t cap = TestType::value;
    queue_of<TestType> victim(any_start<TestType>());
    queue_of<TestType> thief;
    push_range(victim, 0, static_cast<int>(cap));
    push_range(thief, 100, static_cast<int>(cap / 2 + 1));

    int out = -1;
    REQUIRE(victim.steal_into(thief, out) == 0);
    REQUIRE(out == -1);
    REQUIRE(victim.len() == cap);
    REQUIRE(thief.len() == cap / 2 + 1);
}

TEMPLATE_TEST_CASE("stealing from an empty queue takes nothing", "[local_queue]", capacity<2>, capacity<4>,
                   capacity<256>) {
    queue_of<TestType> victim(any_start<TestType>());
    queue_of<TestType> thief;
    int out = -1;
    REQUIRE(victim.steal_into(thief, out) == 0);
    REQUIRE(out == -1);

    // Also once it has been used and emptied.
    push_range(victim, 0, 1);
    REQUIRE(pop_all(victim) == iota(0, 1));
    REQUIRE(victim.steal_into(thief, out) == 0);
    REQUIRE(out == -1);
    REQUIRE(thief.is_empty());
}

TEMPLATE_TEST_CASE("len and remaining_slots follow pushes, pops, steals and overflow", "[local_queue]",
                   capacity<2>, capacity<4>, capacity<256>) {
    constexpr std::uint32_t cap = TestType::value;
    queue_of<TestType> q(any_start<TestType>());
    queue_of<TestType> thief;
    overflow_sink sink;
    int task = 0;

    REQUIRE(q.len() == 0);
    REQUIRE(q.is_empty());
    REQUIRE(q.remaining_slots() == cap);

    for (std::uint32_t i = 1; i <= cap; ++i) {
        REQUIRE_FALSE(q.push_back_or_overflow(static_cast<int>(i), sink));
        REQUIRE(q.len() == i);
        REQUIRE(q.remaining_slots() == cap - i);
    }
    REQUIRE_FALSE(q.is_empty());

    REQUIRE(q.pop(task));
    REQUIRE(q.len() == cap - 1);
    REQUIRE(q.remaining_slots() == 1);

    const std::uint32_t n = q.steal_into(thief, task);
    REQUIRE(n == cap / 2); // ceil((cap - 1) / 2)
    REQUIRE(q.len() == cap - 1 - n);
    REQUIRE(q.remaining_slots() == 1 + n);
    REQUIRE(thief.len() == n - 1);
    REQUIRE(thief.remaining_slots() == cap - (n - 1));

    // Refill to the brim, then overflow.
    push_range(q, 100, static_cast<int>(1 + n));
    REQUIRE(q.remaining_slots() == 0);
    REQUIRE(q.push_back_or_overflow(999, sink));
    REQUIRE(q.len() == cap / 2);
    REQUIRE(q.remaining_slots() == cap / 2);
}

TEMPLATE_TEST_CASE("push_back_n appends a batch that pops in order", "[local_queue]", capacity<2>,
                   capacity<4>, capacity<256>) {
    constexpr std::uint32_t cap = TestType::value;
    queue_of<TestType> q(any_start<TestType>());
    int task = 0;

    push_range(q, 0, 1);
    REQUIRE(q.pop(task)); // the batch starts mid-ring
    int next = 1;
    q.push_back_n(q.remaining_slots(), [&] { return next++; });
    REQUIRE(q.len() == cap);
    REQUIRE(q.remaining_slots() == 0);
    REQUIRE(pop_all(q) == iota(1, static_cast<int>(cap)));
}

namespace {

// Stands in for running a task: a little work between queue operations. (How
// much the threads overlap only changes how hard the test is, never whether
// it passes.)
void run_task() {
    for (int i = 0; i < 32; ++i) {
        std::atomic_signal_fence(std::memory_order_seq_cst); // not optimised away
    }
}

} // namespace

// Concurrency: the owner pushes (overflowing whenever the ring is full) and
// pops while two thieves steal into their own queues and pop them. Every task
// must come out exactly once: popped by the owner, stolen, or overflowed. No
// sleeps and no timing assumptions: the thieves stop only when the owner is
// done and nothing is left for them, whatever the interleaving was.
TEMPLATE_TEST_CASE("an owner and two thieves obtain every task exactly once", "[local_queue][stress]",
                   capacity<2>, capacity<4>, capacity<256>) {
    using queue = queue_of<TestType>;
    const auto tasks = static_cast<int>(weft_test::scaled(1'000'000));

    // Each task's id indexes a counter; a duplicate shows as a 2.
    std::vector<std::atomic<std::uint8_t>> taken(static_cast<std::size_t>(tasks)); // C++20: zeroed
    auto take = [&](int id) {
        taken[static_cast<std::size_t>(id)].fetch_add(1, std::memory_order_relaxed);
        run_task();
    };

    queue owner_queue(0xFFFF'0000u); // wraps past 2^32 after 65536 pushes
    std::atomic<int> thieves_ready{0};
    std::atomic<bool> owner_done{false};

    struct thief_report {
        std::atomic<std::uint64_t> attempts{0}; // steal_into calls, read by the owner
        std::uint64_t steals = 0;               // steal_into calls that took something
        std::uint64_t obtained = 0;             // tasks: stolen `out`s plus own pops
        std::uint64_t order_errors = 0;         // FIFO violations seen by the thief
    };
    thief_report reports[2];

    auto thief = [&](thief_report& report) {
        queue mine;
        int last_out = -1;    // each steal's `out` is newer than the last
        int last_popped = -1; // own queue pops come out increasing
        int task = 0;
        std::uint32_t idle_spins = 0;
        thieves_ready.fetch_add(1, std::memory_order_release);
        for (;;) {
            const std::uint32_t n = owner_queue.steal_into(mine, task);
            report.attempts.fetch_add(1, std::memory_order_relaxed);
            if (n != 0) {
                ++report.steals;
                ++report.obtained;
                report.order_errors += task > last_out ? 0 : 1;
                last_out = task;
                take(task);
            }
            // Pop one, then go back to stealing: the thief's own queue is
            // sometimes over half full, so it refuses to steal.
            if (mine.pop(task)) {
                ++report.obtained;
                report.order_errors += task > last_popped ? 0 : 1;
                last_popped = task;
                take(task);
                continue;
            }
            if (n == 0) {
                // Nothing stolen and own queue empty. Once the owner is done
                // its queue is empty for good, so this thief is finished.
                if (owner_done.load(std::memory_order_acquire)) {
                    return;
                }
                // Spin (contention is the point), but let a descheduled
                // owner run now and then on a busy machine.
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
    std::uint64_t owner_order_errors = 0;
    int last_popped = -1;
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
        owner_order_errors += task > last_popped ? 0 : 1;
        last_popped = task;
        take(task);
        return true;
    };

    // The owner runs in rounds of `round` pushes and, between rounds, waits
    // until a thief has made another steal attempt. On an idle multi-core
    // machine the threads overlap anyway; on a busy one (or under TSan) this
    // stops the owner from finishing within one time slice with the thieves
    // never scheduled. It is a progress handshake, not a timing assumption:
    // thieves never block, so the wait always ends.
    constexpr int round = 1024;
    auto steal_attempts = [&] {
        return reports[0].attempts.load(std::memory_order_relaxed) +
               reports[1].attempts.load(std::memory_order_relaxed);
    };
    std::uint64_t seen = 0;
    auto wait_for_a_thief = [&] {
        for (std::uint32_t spins = 1; steal_attempts() == seen; ++spins) {
            if (spins % 64 == 0) {
                std::this_thread::yield();
            } else {
                weft::detail::cpu_relax();
            }
        }
        seen = steal_attempts();
    };
    while (thieves_ready.load(std::memory_order_acquire) != 2) {
        std::this_thread::yield();
    }
    for (int id = 0; id < tasks; ++id) {
        owner_queue.push_back_or_overflow(id, overflow);
        if (id % round == round - 1) {
            wait_for_a_thief(); // right after a push: there is something to steal
        }
        if (id % 2 == 1) {
            pop_one(); // pushes outpace pops: the ring fills, thieves find work, overflow happens
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
    REQUIRE(owner_order_errors == 0);
    REQUIRE(reports[0].order_errors == 0);
    REQUIRE(reports[1].order_errors == 0);
    REQUIRE(popped + overflowed + reports[0].obtained + reports[1].obtained ==
            static_cast<std::uint64_t>(tasks));
    int wrong = 0;
    int first_wrong = -1;
    for (int i = 0; i < tasks; ++i) {
        if (taken[static_cast<std::size_t>(i)].load(std::memory_order_relaxed) != 1) {
            ++wrong;
            first_wrong = first_wrong < 0 ? i : first_wrong;
        }
    }
    INFO("first task not taken exactly once: " << first_wrong);
    REQUIRE(wrong == 0);
    REQUIRE(owner_queue.is_empty());
}
