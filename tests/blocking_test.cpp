// spawn_blocking: blocking calls run on a separate, bounded pool of threads
// that grows on demand, queues when full, retires idle threads, and is shut
// down before the workers (queued jobs destroyed, running ones waited for).
// Threads are counted by name in /proc/self/task; nothing here depends on
// wall-clock speed (time limits only turn hangs into failures).
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

using namespace std::chrono_literals;

weft::settings named(const char* prefix) {
    weft::settings s;
    s.thread_name_prefix = prefix;
    return s;
}

/// Lets gated jobs go; a job that waits longer than the limit records a
/// failure instead of hanging the test.
struct gate {
    std::atomic<bool> open{false};
    std::atomic<int> hung{0};
    void wait() {
        if (!weft_test::wait_until([this] { return open.load(); })) {
            hung.fetch_add(1);
        }
    }
};

struct counted {
    static inline std::atomic<int> alive{0};
    counted() { alive.fetch_add(1); }
    counted(const counted&) { alive.fetch_add(1); }
    ~counted() { alive.fetch_sub(1); }
};

struct two_threads : weft::default_options {
    static constexpr std::uint32_t max_blocking_threads = 2;
    static constexpr std::uint32_t blocking_queue_capacity = 2;
};

struct one_thread : weft::default_options {
    static constexpr std::uint32_t max_blocking_threads = 1;
    static constexpr std::uint32_t blocking_queue_capacity = 4;
};

} // namespace

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("a blocking job's result and exception reach its joiner, by get() and by co_await", "[blocking]") {
    weft::executor<2> ex(named("bres"));
    REQUIRE(ex.spawn_blocking([] { return 42; }).get() == 42);
    REQUIRE(ex.spawn_blocking([] { return std::string("board"); }).get() == "board");
    std::atomic<int> ran{0};
    ex.spawn_blocking([&ran] { ran.fetch_add(1); }).get();
    REQUIRE(ran.load() == 1);
    auto thrower = ex.spawn_blocking([]() -> int { throw std::runtime_error("driver said no"); });
    REQUIRE_THROWS_WITH(thrower.get(), "driver said no");

    auto root = [&]() -> weft::task<int> {
        int value = co_await weft::spawn_blocking([] { return 20; });
        try {
            co_await weft::spawn_blocking([] { throw std::runtime_error("inner"); });
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == "inner") {
                value += 22;
            }
        }
        co_return value;
    };
    REQUIRE(ex.block_on(root()) == 42);
}
#endif

TEST_CASE("16 blocked jobs run at once on 16 blocking threads, and the pool never grows beyond",
          "[blocking]") {
    weft::executor<2> ex(named("bgrow"));
    REQUIRE(weft_test::threads_named("bgrow-blk-") == 0); // started on demand only
    gate g;
    std::atomic<int> running{0};
    std::atomic<int> most_running{0};
    auto job = [&] {
        const int now = running.fetch_add(1) + 1;
        int seen = most_running.load();
        while (now > seen && !most_running.compare_exchange_weak(seen, now)) {
        }
        g.wait();
        running.fetch_sub(1);
        return now;
    };
    std::vector<weft::join_handle<int>> handles;
    for (int i = 0; i < 16; ++i) {
        handles.push_back(ex.spawn_blocking(job));
    }
    // All 16 block at the same time: they run concurrently, one per thread.
    REQUIRE(weft_test::wait_until([&] { return running.load() == 16; }));
    REQUIRE(weft_test::threads_named("bgrow-blk-") == 16);
    REQUIRE(ex.metrics().blocking_threads == 16);
    // 16 more while every thread is busy: they queue, no 17th thread.
    for (int i = 0; i < 16; ++i) {
        handles.push_back(ex.spawn_blocking(job));
    }
    REQUIRE(ex.metrics().blocking_queue_depth == 16);
    REQUIRE(weft_test::threads_named("bgrow-blk-") == 16);
    REQUIRE(running.load() == 16);
    g.open.store(true);
    for (auto& h : handles) {
        REQUIRE(h.get() >= 1);
    }
    REQUIRE(most_running.load() == 16);
    REQUIRE(weft_test::threads_named("bgrow-blk-") <= 16);
    REQUIRE(g.hung.load() == 0);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("with 2 threads and a queue of 2, jobs queue, a full queue refuses, and everything queued runs",
          "[blocking]") {
    counted::alive.store(0);
    weft::executor<1, 256, two_threads> ex(named("bcap"));
    gate g;
    std::atomic<int> ran{0};
    std::vector<weft::join_handle<int>> handles;
    for (int i = 0; i < 4; ++i) {
        handles.push_back(ex.spawn_blocking([&g, &ran, i] {
            g.wait();
            ran.fetch_add(1);
            return i;
        }));
    }
    // Two run (or are about to), two wait: the queue is full.
    REQUIRE(ex.metrics().blocking_queue_depth >= 2);
    std::atomic<bool> refused_ran{false};
    try {
        auto h = ex.spawn_blocking([c = counted{}, &refused_ran] { refused_ran.store(true); });
        FAIL("a fifth job was accepted past the queue's bound");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::capacity_exhausted);
        REQUIRE(std::string(e.what()).find("blocking_queue_capacity") != std::string::npos);
    }
    REQUIRE(counted::alive.load() == 0); // the refused job's callable is gone
    REQUIRE(weft_test::threads_named("bcap-blk-") <= 2);
    g.open.store(true);
    for (int i = 0; i < 4; ++i) {
        REQUIRE(handles[static_cast<std::size_t>(i)].get() == i);
    }
    REQUIRE(ran.load() == 4);
    REQUIRE_FALSE(refused_ran.load());
    // Room again once the queue drained.
    REQUIRE(ex.spawn_blocking([] { return 5; }).get() == 5);
    REQUIRE(weft_test::threads_named("bcap-blk-") <= 2);
    REQUIRE(g.hung.load() == 0);
}
#endif

TEST_CASE("idle blocking threads retire after the keep-alive, and the pool starts them again", "[blocking]") {
    weft::settings s = named("bret");
    s.blocking_keep_alive = 50ms;
    weft::executor<1> ex(s);
    gate g;
    std::atomic<int> running{0};
    std::vector<weft::join_handle<void>> handles;
    for (int i = 0; i < 4; ++i) {
        handles.push_back(ex.spawn_blocking([&] {
            running.fetch_add(1);
            g.wait();
        }));
    }
    REQUIRE(weft_test::wait_until([&] { return running.load() == 4; }));
    REQUIRE(weft_test::threads_named("bret-blk-") == 4);
    g.open.store(true);
    for (auto& h : handles) {
        h.get();
    }
    REQUIRE(weft_test::threads_gone("bret-blk-"));
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().blocking_threads == 0; }));
    REQUIRE(ex.metrics().idle_blocking_threads == 0);
    // A retired thread's slot is reused.
    REQUIRE(ex.spawn_blocking([] { return 7; }).get() == 7);
    REQUIRE(weft_test::threads_named("bret-blk-") <= 1);
    REQUIRE(g.hung.load() == 0);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("shutdown waits for a running blocking job and cancels the queued ones", "[blocking][shutdown]") {
    counted::alive.store(0);
    std::atomic<bool> shutdown_returned{false};
    std::atomic<int> queued_ran{0};
    std::atomic<int> awaiter_saw_abort{0};
    gate g;
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    weft::join_handle<int> running;
    std::vector<weft::join_handle<void>> queued;
    weft::join_handle<void> awaiting_task;
    {
        weft::executor<1, 256, one_thread> ex(named("bshut"));
        running = ex.spawn_blocking([&] {
            started.store(true);
            g.wait();
            finished.store(true);
            return 9;
        });
        REQUIRE(weft_test::wait_until([&] { return started.load(); }));
        for (int i = 0; i < 3; ++i) {
            queued.push_back(ex.spawn_blocking([c = counted{}, &queued_ran] { queued_ran.fetch_add(1); }));
        }
        // A task awaits a fourth queued job: it learns of the abort while the
        // workers still run (they stop only after the blocking jobs).
        auto last = ex.spawn_blocking([c = counted{}, &queued_ran] { queued_ran.fetch_add(1); });
        awaiting_task = ex.spawn([&awaiter_saw_abort, h = std::move(last)]() mutable -> weft::task<void> {
            try {
                co_await h;
            } catch (const weft::error& e) {
                if (e.code() == weft::errc::task_aborted) {
                    awaiter_saw_abort.fetch_add(1);
                }
            }
        });
        REQUIRE(counted::alive.load() == 4);
        std::thread stopper([&] {
            ex.shutdown();
            shutdown_returned.store(true);
        });
        // The queued jobs are destroyed at once; the running one is waited for.
        REQUIRE(weft_test::wait_until([] { return counted::alive.load() == 0; }));
        REQUIRE(weft_test::wait_until([&] { return awaiter_saw_abort.load() == 1; }));
        REQUIRE_FALSE(shutdown_returned.load());
        REQUIRE_FALSE(finished.load());
        try {
            auto h = ex.spawn_blocking([] {});
            FAIL("a blocking job was accepted during shutdown");
        } catch (const weft::error& e) {
            REQUIRE(e.code() == weft::errc::executor_shut_down);
        }
        g.open.store(true);
        stopper.join();
        REQUIRE(shutdown_returned.load());
        REQUIRE(weft_test::threads_gone("bshut-")); // every thread joined
    }
    REQUIRE(finished.load());
    REQUIRE(running.get() == 9);
    for (auto& h : queued) {
        REQUIRE(weft_test::join_aborted(h));
    }
    REQUIRE(queued_ran.load() == 0);
    awaiting_task.get();
    REQUIRE(g.hung.load() == 0);
}
#endif

TEST_CASE("abort of a queued blocking job cancels it; a running one runs to completion", "[blocking]") {
    counted::alive.store(0);
    weft::executor<1, 256, one_thread> ex(named("babort"));
    gate g;
    std::atomic<bool> started{false};
    std::atomic<bool> queued_ran{false};
    auto first = ex.spawn_blocking([&] {
        started.store(true);
        g.wait();
        return 1;
    });
    REQUIRE(weft_test::wait_until([&] { return started.load(); }));
    auto second = ex.spawn_blocking([c = counted{}, &queued_ran] { queued_ran.store(true); });
    REQUIRE(counted::alive.load() == 1);
    second.abort();
    first.abort(); // already running: no effect on it
    g.open.store(true);
    REQUIRE(first.get() == 1);
    REQUIRE(weft_test::join_aborted(second));
    REQUIRE_FALSE(queued_ran.load());
    REQUIRE(counted::alive.load() == 0);
    REQUIRE(g.hung.load() == 0);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("spawn_blocking outside an executor raises no_current_executor", "[blocking]") {
    try {
        auto h = weft::spawn_blocking([] { return 1; });
        FAIL("spawn_blocking worked outside any executor");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::no_current_executor);
    }
}
#endif

TEST_CASE("a task awaiting a blocking job leaves its worker free for other tasks", "[blocking]") {
    weft::executor<1> ex(named("bfree"));
    std::atomic<bool> other_ran{false};
    std::atomic<bool> job_saw_other{false};
    auto root = [&]() -> weft::task<int> {
        // The job blocks until another task has run on the only worker:
        // that can happen only if awaiting the job does not block it.
        auto job = weft::spawn_blocking([&] {
            job_saw_other.store(weft_test::wait_until([&] { return other_ran.load(); }));
            return 7;
        });
        auto other = weft::spawn([&] { other_ran.store(true); });
        const int value = co_await job;
        co_await other;
        co_return value;
    };
    REQUIRE(ex.block_on(root()) == 7);
    REQUIRE(job_saw_other.load());
}

TEST_CASE("inside a blocking job, weft::spawn, get(), block_on and spawn_blocking work", "[blocking]") {
    weft::executor<2> ex(named("binner"));
    auto h = ex.spawn_blocking([&ex] {
        int sum = weft::spawn([] { return 1; }).get(); // to the executor; get() may block here
        sum += ex.block_on([]() -> weft::task<int> { co_return 2; }());
        sum += weft::spawn_blocking([] { return 4; }).get();
        return sum;
    });
    REQUIRE(h.get() == 7);
}

TEST_CASE("blocking threads are named <prefix>-blk-<i>", "[blocking]") {
    weft::executor<1> ex(named("bname"));
    std::string name;
    ex.spawn_blocking([&name] {
          char buf[16] = {};
          ::pthread_getname_np(::pthread_self(), buf, sizeof buf);
          name = buf;
      }).get();
    REQUIRE(name == "bname-blk-0");
    // A long prefix is cut so that "-blk-<i>" survives.
    weft::executor<1> ex2(named("averyverylongprefix"));
    ex2.spawn_blocking([&name] {
           char buf[16] = {};
           ::pthread_getname_np(::pthread_self(), buf, sizeof buf);
           name = buf;
       })
        .get();
    REQUIRE(name.size() <= 15);
    REQUIRE(name.find("-blk-0") == name.size() - 6);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("shutdown() with a blocking timeout gives up with timed_out, and a later one finishes",
          "[blocking][shutdown]") {
    weft::settings s = named("btime");
    s.blocking_shutdown_timeout = 20ms;
    weft::executor<1> ex(s);
    gate g;
    std::atomic<bool> started{false};
    auto h = ex.spawn_blocking([&] {
        started.store(true);
        g.wait();
        return 3;
    });
    REQUIRE(weft_test::wait_until([&] { return started.load(); }));
    try {
        ex.shutdown();
        FAIL("shutdown returned while a blocking job still ran");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::timed_out);
    }
    // The executor still runs tasks, but takes no blocking job.
    REQUIRE(ex.block_on([]() -> weft::task<int> { co_return 1; }()) == 1);
    REQUIRE_THROWS_AS(ex.spawn_blocking([] {}), weft::error);
    g.open.store(true);
    REQUIRE(h.get() == 3);
    ex.shutdown();
    REQUIRE(weft_test::threads_gone("btime-"));
    REQUIRE(g.hung.load() == 0);
}

TEST_CASE("a blocking job cannot shut down its own executor", "[blocking][shutdown]") {
    weft::executor<1> ex(named("bself"));
    auto h = ex.spawn_blocking([&ex] {
        try {
            ex.shutdown();
        } catch (const weft::error& e) {
            return e.code() == weft::errc::blocking_on_worker;
        }
        return false;
    });
    REQUIRE(h.get());
}
#endif
