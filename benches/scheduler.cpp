// scheduler: Tokio's scheduler workloads (benches/rt_multi_threaded.rs, same
// constants), weft against the peers, and spawn_floor.
//
//   spawn_many_local         inside a task: 10,000 spawns, each decrements a
//                            counter, the last signals; wait for it
//   spawn_many_remote_idle   from a thread outside: 10,000 spawns, keep the
//                            join handles, join them all
//   spawn_many_remote_busy1  the same while 2 x workers background tasks loop
//                            { yield; STALL }
//   spawn_many_remote_busy2  1,000 remote spawns while `workers` chains each
//                            respawn themselves after a STALL
//   yield_many               from outside: 200 tasks each yield 1,000 times
//   ping_pong                inside a task: 1,000 pings, each spawns a partner
//                            and trades two oneshots with it
//   chained_spawn            inside a task: a chain of 1,000 spawns, each
//                            spawned by the one before
//
// Runtimes: weft; naive, tbb, asio (benches/support/peers.hpp: peers have
// no join handles or oneshots, so a counter and a callback oneshot stand
// in); floor (spawn_many_* only: the same number of bare coroutines
// created, run and destroyed on one thread, support/floor.hpp).
//
// Differences from Tokio worth knowing: weft's block_on runs its task on a
// worker, so spawn_many_local's spawns go to a worker's local queue (Tokio's
// block_on runs on the calling thread: its spawns go to the inject queue).
//
//   usage: scheduler [--workers N] [--reps N] [--quick] [--runtime ...] [--workload ...]
#include <weft/weft.hpp>

#include "support/countdown.hpp"
#include "support/floor.hpp"
#include "support/harness.hpp"
#include "support/peers.hpp"
#include "support/workers.hpp"

#include <atomic>
#include <cstddef>
#include <vector>

namespace {

constexpr const char* family = "scheduler";
constexpr std::size_t spawn_count = 10'000; // Tokio's NUM_SPAWN
constexpr std::size_t busy2_spawn_count = 1'000;
constexpr std::size_t yield_tasks = 200;
constexpr std::size_t yields_per_task = 1'000;
constexpr std::size_t ping_count = 1'000;
constexpr std::size_t chain_length = 1'000;

const std::vector<const char*> workloads{"spawn_many_local",
                                         "spawn_many_remote_idle",
                                         "spawn_many_remote_busy1",
                                         "spawn_many_remote_busy2",
                                         "yield_many",
                                         "ping_pong",
                                         "chained_spawn"};

// ---- weft ---------------------------------------------------------------------

weft::task<> spawn_many_local(bench::countdown& c) {
    c.left.store(spawn_count, std::memory_order_relaxed);
    for (std::size_t i = 0; i < spawn_count; ++i) {
        weft::spawn([&c] { c.hit(); }).detach();
    }
    co_await c.done.notified();
}

template <class Executor>
double spawn_remote(Executor& ex, std::vector<weft::join_handle<void>>& handles, std::size_t n) {
    return bench::ns_per_op(static_cast<double>(n), [&] {
        for (std::size_t i = 0; i < n; ++i) {
            handles.push_back(ex.spawn([] {}));
        }
        for (auto& h : handles) {
            h.get();
        }
        handles.clear();
    });
}

weft::task<> busy_yielder(const std::atomic<bool>& running) {
    while (running.load(std::memory_order_relaxed)) {
        co_await weft::yield_now();
        bench::stall();
    }
}

struct respawn_chains {
    std::atomic<bool> running{true};
    bench::latch stopped;

    explicit respawn_chains(std::uint32_t chains) : stopped(chains) {}

    void next() {
        weft::spawn([this] {
            if (running.load(std::memory_order_relaxed)) {
                bench::stall();
                next();
            } else {
                stopped.count_down();
            }
        }).detach();
    }
};

weft::task<> yielder(bench::latch& done) {
    for (std::size_t i = 0; i < yields_per_task; ++i) {
        co_await weft::yield_now();
    }
    done.count_down();
}

weft::task<> pong(weft::oneshot_receiver<int> rx, weft::oneshot_sender<int> tx) {
    (void)co_await rx;
    (void)tx.send(1);
}

weft::task<> ping(bench::countdown& c) {
    auto [tx1, rx1] = weft::make_oneshot<int>();
    auto [tx2, rx2] = weft::make_oneshot<int>();
    weft::spawn(pong(std::move(rx1), std::move(tx2))).detach();
    (void)tx1.send(1);
    (void)co_await rx2;
    c.hit();
}

weft::task<> ping_pong(bench::countdown& c) {
    c.left.store(ping_count, std::memory_order_relaxed);
    for (std::size_t i = 0; i < ping_count; ++i) {
        weft::spawn(ping(c)).detach();
    }
    co_await c.done.notified();
}

weft::task<> chain_link(bench::countdown& c, std::size_t left) {
    if (left == 0) {
        c.hit();
    } else {
        weft::spawn(chain_link(c, left - 1)).detach();
    }
    co_return;
}

weft::task<> chained_spawn(bench::countdown& c) {
    c.left.store(1, std::memory_order_relaxed);
    weft::spawn(chain_link(c, chain_length)).detach();
    co_await c.done.notified();
}

template <class Executor>
void run_weft(const bench::options& opts) {
    const int reps = opts.reps();
    const auto wants = [&](const char* workload) { return opts.wants(workload, "weft"); };
    constexpr std::uint32_t workers = Executor::worker_count;

    // The workloads that run inside a task: block_on(root(countdown)),
    // which returns when the countdown reaches zero.
    const auto inside = [&](const char* workload, const char* unit, std::size_t ops,
                            weft::task<> (*root)(bench::countdown&)) {
        if (!wants(workload)) {
            return;
        }
        Executor ex;
        bench::countdown c;
        auto r = bench::make_result(opts, family, workload, "weft", unit);
        r.samples = bench::repeat(
            reps, [&] { return bench::ns_per_op(static_cast<double>(ops), [&] { ex.block_on(root(c)); }); });
        bench::print(r);
    };

    inside("spawn_many_local", "ns/task", spawn_count, spawn_many_local);
    if (wants("spawn_many_remote_idle")) {
        Executor ex;
        std::vector<weft::join_handle<void>> handles;
        handles.reserve(spawn_count);
        auto r = bench::make_result(opts, family, "spawn_many_remote_idle", "weft", "ns/task");
        r.samples = bench::repeat(reps, [&] { return spawn_remote(ex, handles, spawn_count); });
        bench::print(r);
    }
    if (wants("spawn_many_remote_busy1")) {
        Executor ex;
        std::atomic<bool> running{true};
        std::vector<weft::join_handle<void>> background;
        for (std::uint32_t i = 0; i < 2 * workers; ++i) {
            background.push_back(ex.spawn(busy_yielder(running)));
        }
        std::vector<weft::join_handle<void>> handles;
        handles.reserve(spawn_count);
        auto r = bench::make_result(opts, family, "spawn_many_remote_busy1", "weft", "ns/task");
        r.samples = bench::repeat(reps, [&] { return spawn_remote(ex, handles, spawn_count); });
        running.store(false, std::memory_order_relaxed);
        for (auto& h : background) {
            h.get();
        }
        bench::print(r);
    }
    if (wants("spawn_many_remote_busy2")) {
        Executor ex;
        respawn_chains chains(workers);
        for (std::uint32_t i = 0; i < workers; ++i) {
            ex.spawn([&chains] { chains.next(); }).detach();
        }
        std::vector<weft::join_handle<void>> handles;
        handles.reserve(busy2_spawn_count);
        auto r = bench::make_result(opts, family, "spawn_many_remote_busy2", "weft", "ns/task");
        r.samples = bench::repeat(reps, [&] { return spawn_remote(ex, handles, busy2_spawn_count); });
        chains.running.store(false, std::memory_order_relaxed);
        chains.stopped.wait();
        bench::print(r);
    }
    if (wants("yield_many")) {
        Executor ex;
        bench::latch done;
        auto r = bench::make_result(opts, family, "yield_many", "weft", "ns/yield");
        r.samples = bench::repeat(reps, [&] {
            return bench::ns_per_op(yield_tasks * yields_per_task, [&] {
                done.reset(yield_tasks);
                for (std::size_t i = 0; i < yield_tasks; ++i) {
                    ex.spawn(yielder(done)).detach();
                }
                done.wait();
            });
        });
        bench::print(r);
    }
    inside("ping_pong", "ns/ping", ping_count, ping_pong);
    inside("chained_spawn", "ns/hop", chain_length, chained_spawn);
}

// ---- peers (benches/support/peers.hpp) ---------------------------------------

/// The join a peer without join handles does: a counter, and a latch the
/// outside thread waits on.
struct pool_countdown {
    std::atomic<std::size_t> left{0};
    bench::latch done;

    void arm(std::size_t n) {
        left.store(n, std::memory_order_relaxed);
        done.reset(1);
    }
    void hit() {
        if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            done.count_down();
        }
    }
};

/// yield_now() for a callback pool: the rest of the task is posted to the
/// back of the queue.
template <class Pool>
struct pool_yielder {
    Pool* pool;
    bench::latch* done;
    std::size_t left;
    void operator()() const {
        if (left == 0) {
            done->count_down();
            return;
        }
        pool->post(pool_yielder{pool, done, left - 1});
    }
};

/// The background work of busy1 ({ yield; STALL } in a loop) and busy2 (a
/// chain that STALLs, then respawns itself): for a callback pool both are
/// STALL and post yourself again. Post, not spawn: under TBB a task
/// respawning itself into its worker's own deque runs forever ahead of the
/// arena's queue, and the remote spawns of the workload would never run.
template <class Pool>
struct pool_stall_loop {
    Pool* pool;
    const std::atomic<bool>* running;
    bench::latch* stopped;
    void operator()() const {
        if (!running->load(std::memory_order_relaxed)) {
            stopped->count_down();
            return;
        }
        bench::stall();
        pool->post(*this);
    }
};

/// A oneshot for callback pools: the receiver leaves a continuation, the
/// sender schedules it (a wake-up) or the receiver finds the value and
/// goes on inline (a ready await).
struct callback_oneshot {
    std::atomic<int> state{0}; // 0 empty, 1 sent, 2 receiver waiting

    template <class Pool, class Continue>
    void send(Pool& pool, Continue next) {
        // acq_rel: whoever runs `next` sees what the other side wrote.
        if (state.exchange(1, std::memory_order_acq_rel) == 2) {
            pool.spawn(next);
        }
    }
    /// Returns true if the value was there: the caller continues inline.
    bool park() { return state.exchange(2, std::memory_order_acq_rel) == 1; }
};

template <class Pool>
struct pool_ping {
    Pool* pool;
    pool_countdown* counter;

    struct state {
        Pool* pool;
        pool_countdown* counter;
        callback_oneshot first;
        callback_oneshot second;
    };

    static void finish(state* s) {
        s->counter->hit();
        delete s;
    }
    static void answer(state* s) {
        s->second.send(*s->pool, [s] { finish(s); });
    }

    void operator()() const {
        auto* s = new state{pool, counter, {}, {}};
        pool->spawn([s] { // the partner: await the first, answer on the second
            if (s->first.park()) {
                answer(s);
            }
        });
        s->first.send(*pool, [s] { answer(s); });
        if (s->second.park()) {
            finish(s);
        }
    }
};

template <class Pool>
struct pool_chain_link {
    Pool* pool;
    pool_countdown* counter;
    std::size_t left;
    void operator()() const {
        if (left == 0) {
            counter->hit();
        } else {
            pool->spawn(pool_chain_link{pool, counter, left - 1});
        }
    }
};

template <class Pool>
double pool_spawn_remote(Pool& pool, pool_countdown& c, std::size_t n) {
    return bench::ns_per_op(static_cast<double>(n), [&] {
        c.arm(n);
        for (std::size_t i = 0; i < n; ++i) {
            pool.spawn([&c] { c.hit(); });
        }
        c.done.wait();
    });
}

void run_pools(const bench::options& opts) {
    const int reps = opts.reps();
    const unsigned workers = opts.workers();

    bench::for_each_pool(opts, "spawn_many_local", [&](auto& pool) {
        pool_countdown c;
        auto r = bench::make_result(opts, family, "spawn_many_local", pool.name, "ns/task");
        r.samples = bench::repeat(reps, [&] {
            return bench::ns_per_op(spawn_count, [&] {
                c.arm(spawn_count);
                pool.spawn([&] {
                    for (std::size_t i = 0; i < spawn_count; ++i) {
                        pool.spawn([&c] { c.hit(); });
                    }
                });
                c.done.wait();
            });
        });
        bench::print(r);
    });
    // The three remote workloads: spawns from outside, while `background`
    // stall loops keep the workers busy (none for remote_idle).
    struct remote_workload {
        const char* name;
        unsigned background;
        std::size_t spawns;
    };
    for (const remote_workload& w :
         {remote_workload{"spawn_many_remote_idle", 0, spawn_count},
          remote_workload{"spawn_many_remote_busy1", 2 * workers, spawn_count},
          remote_workload{"spawn_many_remote_busy2", workers, busy2_spawn_count}}) {
        bench::for_each_pool(opts, w.name, [&](auto& pool) {
            using pool_type = std::remove_reference_t<decltype(pool)>;
            std::atomic<bool> running{true};
            bench::latch stopped(w.background);
            for (unsigned i = 0; i < w.background; ++i) {
                pool.post(pool_stall_loop<pool_type>{&pool, &running, &stopped});
            }
            pool_countdown c;
            auto r = bench::make_result(opts, family, w.name, pool.name, "ns/task");
            r.samples = bench::repeat(reps, [&] { return pool_spawn_remote(pool, c, w.spawns); });
            running.store(false, std::memory_order_relaxed);
            stopped.wait();
            bench::print(r);
        });
    }
    bench::for_each_pool(opts, "yield_many", [&](auto& pool) {
        using pool_type = std::remove_reference_t<decltype(pool)>;
        bench::latch done;
        auto r = bench::make_result(opts, family, "yield_many", pool.name, "ns/yield");
        r.samples = bench::repeat(reps, [&] {
            return bench::ns_per_op(yield_tasks * yields_per_task, [&] {
                done.reset(yield_tasks);
                for (std::size_t i = 0; i < yield_tasks; ++i) {
                    pool.spawn(pool_yielder<pool_type>{&pool, &done, yields_per_task});
                }
                done.wait();
            });
        });
        bench::print(r);
    });
    bench::for_each_pool(opts, "ping_pong", [&](auto& pool) {
        using pool_type = std::remove_reference_t<decltype(pool)>;
        pool_countdown c;
        auto r = bench::make_result(opts, family, "ping_pong", pool.name, "ns/ping");
        r.samples = bench::repeat(reps, [&] {
            return bench::ns_per_op(ping_count, [&] {
                c.arm(ping_count);
                pool.spawn([&] {
                    for (std::size_t i = 0; i < ping_count; ++i) {
                        pool.spawn(pool_ping<pool_type>{&pool, &c});
                    }
                });
                c.done.wait();
            });
        });
        bench::print(r);
    });
    bench::for_each_pool(opts, "chained_spawn", [&](auto& pool) {
        using pool_type = std::remove_reference_t<decltype(pool)>;
        pool_countdown c;
        auto r = bench::make_result(opts, family, "chained_spawn", pool.name, "ns/hop");
        r.samples = bench::repeat(reps, [&] {
            return bench::ns_per_op(chain_length, [&] {
                c.arm(1);
                pool.spawn(pool_chain_link<pool_type>{&pool, &c, chain_length});
                c.done.wait();
            });
        });
        bench::print(r);
    });
}

// ---- spawn_floor ------------------------------------------------------------

bench::floor_task<> empty_coroutine() { co_return; }

void run_floor(const bench::options& opts) {
    for (const char* workload : {"spawn_many_local", "spawn_many_remote_idle", "spawn_many_remote_busy1",
                                 "spawn_many_remote_busy2"}) {
        if (!opts.wants(workload, "floor")) {
            continue;
        }
        const std::size_t n =
            std::string_view(workload) == "spawn_many_remote_busy2" ? busy2_spawn_count : spawn_count;
        std::vector<bench::floor_task<>> tasks;
        tasks.reserve(n);
        auto r = bench::make_result(opts, family, workload, "floor", "ns/task");
        r.samples = bench::repeat(opts.reps(), [&] {
            return bench::ns_per_op(static_cast<double>(n), [&] {
                for (std::size_t i = 0; i < n; ++i) {
                    tasks.push_back(empty_coroutine());
                }
                for (auto& t : tasks) {
                    t.run();
                }
                tasks.clear();
            });
        });
        bench::print(r);
    }
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opts(argc, argv);
    if (opts.list()) {
        std::vector<const char*> runtimes{"weft"};
        for (const char* name : bench::pool_names()) {
            runtimes.push_back(name);
        }
        runtimes.push_back("floor");
        bench::print_list(family, workloads, runtimes);
        return 0;
    }
    bench::with_workers(opts.workers(), [&](auto tag) { run_weft<bench::executor_of<decltype(tag)>>(opts); });
    run_pools(opts);
    run_floor(opts);
    return 0;
}
