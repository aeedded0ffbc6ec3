// benches/support/peers.hpp: the runtimes weft is measured against, each
// behind the same two calls so a workload is written once for all of them:
//
//   spawn(fn)  run fn on the pool; from inside the pool, the pool's own
//              cheapest way to start more work (its local queue if any)
//   post(fn)   run fn after what is already queued (what yield_now() does
//              in weft and Tokio: back of the queue, fair to everyone)
//
// - naive: N threads, one std::deque<std::function> behind a mutex and a
//   condition variable: the pool everybody writes first.
// - tbb: oneTBB, a task_arena of N worker threads; spawn from inside is
//   task_group::run (the worker's own deque), from outside and post are
//   task_arena::enqueue (the arena's FIFO).
// - asio: standalone asio, one io_context run by N threads; spawn is
//   asio::defer (a continuation: the thread's private queue), post is
//   asio::post.
//
// tbb and asio are present when CMake found them (WEFT_BENCH_HAVE_TBB,
// WEFT_BENCH_HAVE_ASIO); benches/run installs both.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif

#if WEFT_BENCH_HAVE_ASIO
#include <asio/defer.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#endif

namespace bench {

/// A mutex + condition variable + deque thread pool: the naive baseline.
class naive_pool {
public:
    static constexpr const char* name = "naive";

    explicit naive_pool(unsigned workers) {
        for (unsigned i = 0; i < workers; ++i) {
            m_threads.emplace_back([this] { work(); });
        }
    }
    naive_pool(const naive_pool&) = delete;
    naive_pool& operator=(const naive_pool&) = delete;
    /// Runs what is queued, then joins the threads.
    ~naive_pool() {
        {
            std::lock_guard<std::mutex> hold(m_lock);
            m_stopping = true;
        }
        m_ready.notify_all();
        for (auto& t : m_threads) {
            t.join();
        }
    }

    template <class F>
    void spawn(F&& fn) {
        post(std::forward<F>(fn));
    }

    template <class F>
    void post(F&& fn) {
        {
            std::lock_guard<std::mutex> hold(m_lock);
            m_queue.emplace_back(std::forward<F>(fn));
        }
        m_ready.notify_one();
    }

private:
    void work() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock<std::mutex> hold(m_lock);
                m_ready.wait(hold, [this] { return m_stopping || !m_queue.empty(); });
                if (m_queue.empty()) {
                    return;
                }
                job = std::move(m_queue.front());
                m_queue.pop_front();
            }
            job();
        }
    }

    std::mutex m_lock;
    std::condition_variable m_ready;
    std::deque<std::function<void()>> m_queue;
    bool m_stopping = false;
    std::vector<std::thread> m_threads;
};

#if WEFT_BENCH_HAVE_TBB
/// oneTBB with exactly `workers` worker threads that run everything, the
/// caller staying outside (as a thread outside a weft executor does).
class tbb_pool {
public:
    static constexpr const char* name = "tbb";

    explicit tbb_pool(unsigned workers)
        // TBB's worker limit is max_allowed_parallelism - 1 (it counts the
        // caller's thread); no slot is reserved for the caller.
        : m_limit(tbb::global_control::max_allowed_parallelism, workers + 1),
          m_arena(static_cast<int>(workers), 0) {
        m_arena.initialize();
    }
    tbb_pool(const tbb_pool&) = delete;
    tbb_pool& operator=(const tbb_pool&) = delete;
    ~tbb_pool() {
        m_arena.execute([this] { m_group.wait(); });
    }

    template <class F>
    void spawn(F&& fn) {
        if (tbb::this_task_arena::current_thread_index() != tbb::task_arena::not_initialized) {
            m_group.run(std::forward<F>(fn));
        } else {
            m_arena.enqueue(std::forward<F>(fn));
        }
    }

    template <class F>
    void post(F&& fn) {
        m_arena.enqueue(std::forward<F>(fn));
    }

private:
    tbb::global_control m_limit;
    tbb::task_arena m_arena;
    tbb::task_group m_group;
};
#endif

#if WEFT_BENCH_HAVE_ASIO
/// One asio::io_context run by `workers` threads.
class asio_pool {
public:
    static constexpr const char* name = "asio";

    explicit asio_pool(unsigned workers) : m_io(static_cast<int>(workers)), m_guard(m_io.get_executor()) {
        for (unsigned i = 0; i < workers; ++i) {
            m_threads.emplace_back([this] { m_io.run(); });
        }
    }
    asio_pool(const asio_pool&) = delete;
    asio_pool& operator=(const asio_pool&) = delete;
    ~asio_pool() {
        m_guard.reset();
        m_io.stop();
        for (auto& t : m_threads) {
            t.join();
        }
    }

    asio::io_context& context() { return m_io; }

    template <class F>
    void spawn(F&& fn) {
        asio::defer(m_io, std::forward<F>(fn));
    }

    template <class F>
    void post(F&& fn) {
        asio::post(m_io, std::forward<F>(fn));
    }

private:
    asio::io_context m_io;
    asio::executor_work_guard<asio::io_context::executor_type> m_guard;
    std::vector<std::thread> m_threads;
};
#endif

/// The pools compiled in, as --list shows them.
inline std::vector<const char*> pool_names() {
    std::vector<const char*> names{naive_pool::name};
#if WEFT_BENCH_HAVE_TBB
    names.push_back(tbb_pool::name);
#endif
#if WEFT_BENCH_HAVE_ASIO
    names.push_back(asio_pool::name);
#endif
    return names;
}

/// Builds each pool the options ask for, for `workload`, and calls
/// `fn(pool)` with it; the pool is destroyed before the next one starts.
template <class Fn>
void for_each_pool(const options& opts, const std::string& workload, Fn&& fn) {
    if (opts.wants(workload, naive_pool::name)) {
        naive_pool pool(opts.workers());
        fn(pool);
    }
#if WEFT_BENCH_HAVE_TBB
    if (opts.wants(workload, tbb_pool::name)) {
        tbb_pool pool(opts.workers());
        fn(pool);
    }
#endif
#if WEFT_BENCH_HAVE_ASIO
    if (opts.wants(workload, asio_pool::name)) {
        asio_pool pool(opts.workers());
        fn(pool);
    }
#endif
}

} // namespace bench
