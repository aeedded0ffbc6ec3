// tests/model/inject_queue_model.cpp
//
// Runs the real weft::detail::inject_queue (the global queue) under Relacy,
// through relacy_policy.hpp: its spinlock, its length word, and its head,
// tail and closed flag (policy cells) are checked; so are the nodes' links
// (`queue_next` here is a checked variable), so a link read without a
// happens-before edge from its write is reported as a data race.
//
// Scenarios (3 threads each):
//   (a) batches     two producers (one push then a push_batch of 2; a
//                   push_batch of 3) vs one consumer taking pop_n(2) and
//                   pop(): FIFO per producer, each batch contiguous.
//   (b) two takers  one producer (push, push_batch, push) vs two consumers
//                   racing with pop_n(2) and pop().
//   (c) close       a producer pushes and batches while another thread
//                   closes the queue and a consumer takes: after the first
//                   refused push every later one is refused, a refused node
//                   stays with its pusher, queued nodes still come out.
// Every scenario checks in `after()` that each node was obtained exactly
// once (taken by a consumer, drained at the end, or refused to its pusher)
// and that the length is back to zero.
//
// Usage: inject_queue_model [iterations] [bound]
//   iterations   random-scheduler iterations per scenario (default 300000)
//   bound        context bound of the systematic runs (default 3)
// The defaults take about 10 s on a busy 2-core machine; `inject_queue_model 1000000 3` about
// 10 CPU seconds (1 minute of wall time).
//
// Built with -DWEFT_MODEL_SEEDED_BUG, the spinlock's unlock is weakened from
// release to relaxed, so a hold no longer publishes its writes to the next;
// that build must fail (registered with WILL_FAIL).
#undef NDEBUG

#include <array>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <span>

#include "relacy_policy.hpp"

#include "model_harness.hpp"
#include <weft/detail/inject_queue.hpp>

namespace {

struct node {
    weft::model::checked_link<node> queue_next;
    int id = 0;
};

using queue = weft::detail::inject_queue<node, weft::model::relacy_policy>;

constexpr int max_id = 8;
constexpr std::uint64_t max_operations = 5000;

struct coverage {
    std::uint64_t taken_by_consumers = 0; // nodes a consumer thread got
    std::uint64_t refused = 0;            // nodes refused after close
    std::uint64_t empty_takes = 0;        // pop / pop_n that found nothing
};
coverage g_coverage;

template <class Scenario>
struct inject_model : rl::test_suite<inject_model<Scenario>, 3> {
    queue q;
    std::array<node, max_id + 1> nodes{};
    // Plain bookkeeping (Relacy runs one fiber at a time; invisible to it).
    std::array<int, max_id + 1> times_taken{};
    std::array<int, max_id> order{}; // ids in the order they left the queue (one-consumer scenarios)
    int order_len = 0;
    bool refused_once = false;

    void before() {
        weft::model::relacy_policy::limit_operations_per_iteration(max_operations);
        for (int id = 1; id <= max_id; ++id) {
            nodes[static_cast<std::size_t>(id)].id = id;
        }
    }

    void thread(unsigned index) { Scenario::thread(*this, index); }

    void after() {
        // Whatever is left comes out in order, after what consumers took.
        while (node* n = q.pop()) {
            take(n);
        }
        RL_ASSERT(q.is_empty());
        for (int id = 1; id <= Scenario::ids; ++id) {
            RL_ASSERT(times_taken[static_cast<std::size_t>(id)] == 1);
        }
        Scenario::check_order(*this);
    }

    void take(node* n) {
        RL_ASSERT(n != nullptr && n->id >= 1 && n->id <= Scenario::ids);
        RL_ASSERT(times_taken[static_cast<std::size_t>(n->id)] == 0);
        ++times_taken[static_cast<std::size_t>(n->id)];
        order[static_cast<std::size_t>(order_len++)] = n->id;
    }

    // Pushes ids [first, first + count) as one push (count 1) or one batch;
    // a refused push leaves them with the pusher.
    void push(int first, int count) {
        std::array<node*, max_id> batch{};
        for (int i = 0; i < count; ++i) {
            batch[static_cast<std::size_t>(i)] = &nodes[static_cast<std::size_t>(first + i)];
        }
        const bool accepted =
            count == 1 ? q.push(batch[0])
                       : q.push_batch(std::span<node*>(batch.data(), static_cast<std::size_t>(count)));
        if (!accepted) {
            refused_once = true;
            g_coverage.refused += static_cast<std::uint64_t>(count);
            for (int i = 0; i < count; ++i) {
                ++times_taken[static_cast<std::size_t>(first + i)];
            }
        } else {
            RL_ASSERT(!refused_once); // closed stays closed
        }
    }

    // One pop_n(max): takes the chain, which the caller owns and walks
    // without the lock.
    void take_n(std::size_t max) {
        std::size_t taken = 0;
        node* n = q.pop_n(max, taken);
        RL_ASSERT(taken <= max);
        if (taken == 0) {
            RL_ASSERT(n == nullptr);
            ++g_coverage.empty_takes;
            return;
        }
        for (std::size_t i = 0; i < taken; ++i) {
            node* next = n->queue_next;
            RL_ASSERT((next == nullptr) == (i + 1 == taken)); // the chain ends where it should
            take(n);
            ++g_coverage.taken_by_consumers;
            n = next;
        }
    }

    void take_one() {
        if (node* n = q.pop()) {
            take(n);
            ++g_coverage.taken_by_consumers;
        } else {
            ++g_coverage.empty_takes;
        }
    }

    // Position of `id` in the order things left the queue.
    int position(int id) const {
        for (int i = 0; i < order_len; ++i) {
            if (order[static_cast<std::size_t>(i)] == id) {
                return i;
            }
        }
        return -1;
    }
};

struct scenario_batches {
    static constexpr int ids = 6;
    template <class M>
    static void thread(M& m, unsigned index) {
        if (index == 0) {
            m.push(1, 1);
            m.push(2, 2); // batch {2, 3}
        } else if (index == 1) {
            m.push(4, 3); // batch {4, 5, 6}
        } else {
            m.take_n(2);
            m.take_one();
            m.take_n(2);
        }
    }
    template <class M>
    static void check_order(M& m) {
        // One consumer: `order` is the queue's order. Per producer FIFO,
        // and each batch sits in one piece.
        RL_ASSERT(m.position(1) < m.position(2));
        RL_ASSERT(m.position(3) == m.position(2) + 1);
        RL_ASSERT(m.position(5) == m.position(4) + 1);
        RL_ASSERT(m.position(6) == m.position(4) + 2);
    }
};

struct scenario_two_takers {
    static constexpr int ids = 4;
    template <class M>
    static void thread(M& m, unsigned index) {
        if (index == 0) {
            m.push(1, 1);
            m.push(2, 2);
            m.push(4, 1);
        } else {
            m.take_n(2);
            m.take_one();
        }
    }
    template <class M>
    static void check_order(M&) {}
};

struct scenario_close {
    static constexpr int ids = 4;
    template <class M>
    static void thread(M& m, unsigned index) {
        if (index == 0) {
            m.push(1, 1);
            m.push(2, 2);
            m.push(4, 1);
        } else if (index == 1) {
            m.q.close();
        } else {
            m.take_n(2);
            m.take_one();
        }
    }
    template <class M>
    static void check_order(M&) {}
};

template <class Scenario>
weft::model::run_result run(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations,
                            unsigned context_bound) {
    g_coverage = coverage{};
    return weft::model::run_model<inject_model<Scenario>>(name, scheduler, iterations, context_bound, [] {
        std::cout << "coverage: taken by consumers " << g_coverage.taken_by_consumers << ", refused "
                  << g_coverage.refused << ", empty takes " << g_coverage.empty_takes << std::endl;
    });
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t iterations = weft::model::count_argument(argc, argv, 1, 300'000);
    const auto bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 2, 3));
#if defined(WEFT_MODEL_SEEDED_BUG)
    std::cout << "SEEDED BUG BUILD: the spinlock's unlock is relaxed; this run must fail.\n\n";
    weft::model::relacy_policy::seed_bug("unlock", std::memory_order_release, std::memory_order_relaxed);
#endif
    using weft::model::bounded;
    using weft::model::random;
    const weft::model::run_result results[] = {
        run<scenario_batches>("(a) batches, 2 producers", bounded, 0, bound),
        run<scenario_two_takers>("(b) two consumers", bounded, 0, bound),
        run<scenario_close>("(c) close vs push and take", bounded, 0, bound),
        run<scenario_batches>("(a) batches, 2 producers", random, iterations, 0),
        run<scenario_two_takers>("(b) two consumers", random, iterations, 0),
        run<scenario_close>("(c) close vs push and take", random, iterations, 0),
    };
    return weft::model::summarize(results);
}
