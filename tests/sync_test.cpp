// Sync primitives: exact accounting under contention from 8 tasks on 2
// workers, FIFO fairness, and cancellation safety (an aborted or timed-out
// waiter loses no permit, value or notification, and leaks nothing).
#include <weft/weft.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

using namespace std::chrono_literals;

namespace {

using executor2 = weft::executor<2>;

// Catch2's REQUIRE is not thread-safe: checks inside tasks count failures
// here, and each test REQUIREs the count on the main thread.
std::atomic<int> g_task_failures{0};
#define TASK_CHECK(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            g_task_failures.fetch_add(1);                                                                    \
        }                                                                                                    \
    } while (false)

bool no_task_failures() { return g_task_failures.exchange(0) == 0; }

void join_all(std::vector<weft::join_handle<void>>& handles) {
    for (auto& h : handles) {
        h.get();
    }
    handles.clear();
}

// Aborts a task and waits until it is gone (its awaiters' destructors ran).
void abort_and_join(weft::join_handle<void>& h) {
    h.abort();
    REQUIRE(weft_test::join_aborted(h));
}

template <class Ex>
bool no_live_tasks(Ex& ex) {
    return weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; });
}

void raise_high_water(std::atomic<int>& high, int now) {
    int seen = high.load();
    while (now > seen && !high.compare_exchange_weak(seen, now)) {
    }
}

// A coroutine that is not a weft task: runs eagerly on the calling thread
// and keeps the exception that ended it.
std::exception_ptr g_plain_error;
struct plain_coroutine {
    struct promise_type {
        plain_coroutine get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { g_plain_error = std::current_exception(); }
    };
};

} // namespace

// ---- semaphore --------------------------------------------------------------------

TEST_CASE("semaphore: 8 tasks never hold more than its permits, and every permit comes back", "[sync]") {
    executor2 ex;
    weft::semaphore sem(3);
    std::atomic<int> inside{0};
    std::atomic<int> high{0};
    std::atomic<std::uint64_t> entries{0};
    const std::uint64_t rounds = weft_test::scaled(5'000);
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            for (std::uint64_t i = 0; i < rounds; ++i) {
                auto permit = co_await sem.acquire();
                raise_high_water(high, inside.fetch_add(1) + 1);
                entries.fetch_add(1);
                if (i % 7 == 0) {
                    co_await weft::yield_now(); // hold it across a suspension
                }
                inside.fetch_sub(1);
            }
        }));
    }
    join_all(handles);
    REQUIRE(high.load() <= 3);
    REQUIRE(high.load() >= 1);
    REQUIRE(entries.load() == 8 * rounds);
    REQUIRE(sem.available() == 3);
    REQUIRE(sem.waiting() == 0);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("semaphore: waiters acquire in order of arrival, and a big request at the head blocks smaller ones",
          "[sync]") {
    executor2 ex;
    weft::semaphore sem(0);
    std::vector<int> order;
    std::atomic<int> recorded{0};
    weft::mutex order_lock; // guards `order`
    std::vector<weft::join_handle<void>> handles;
    // Arrivals: 0 wants 1, 1 wants 3 (big), then 2..7 want 1 each.
    for (int i = 0; i < 8; ++i) {
        const std::size_t want = i == 1 ? 3 : 1;
        handles.push_back(ex.spawn([&, i, want]() -> weft::task<> {
            auto permit = co_await sem.acquire(want);
            auto g = co_await order_lock.lock();
            order.push_back(i);
            recorded.fetch_add(1);
            permit.forget(); // keep the permits out: the test hands them out one by one
        }));
        REQUIRE(weft_test::wait_until([&] { return sem.waiting() == static_cast<std::size_t>(i + 1); }));
    }
    sem.release(1); // -> 0
    REQUIRE(weft_test::wait_until([&] { return recorded.load() == 1; }));
    sem.release(2); // 2 < 3: the big request at the head keeps waiting, and so does everyone behind it
    REQUIRE(sem.waiting() == 7);
    REQUIRE(!sem.try_acquire()); // no barging past waiters either
    sem.release(1);              // 3 -> 1
    REQUIRE(weft_test::wait_until([&] { return recorded.load() == 2; }));
    for (int k = 2; k < 8; ++k) {
        sem.release(1); // one at a time, so the order of recording is the order of acquiring
        REQUIRE(weft_test::wait_until([&] { return recorded.load() == k + 1; }));
    }
    join_all(handles);
    REQUIRE(order == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
    REQUIRE(sem.available() == 0);
    REQUIRE(no_task_failures());
}

TEST_CASE("semaphore: aborting one of two waiters loses no permit: one release reaches the other", "[sync]") {
    executor2 ex;
    weft::semaphore sem(0);
    std::atomic<int> acquired{0};
    auto waiter = [&]() -> weft::task<> {
        auto p = co_await sem.acquire();
        acquired.fetch_add(1);
    };
    auto first = ex.spawn(waiter);
    REQUIRE(weft_test::wait_until([&] { return sem.waiting() == 1; }));
    auto second = ex.spawn(waiter);
    REQUIRE(weft_test::wait_until([&] { return sem.waiting() == 2; }));
    abort_and_join(first);
    REQUIRE(sem.waiting() == 1);
    sem.release(1);
    second.get();
    REQUIRE(acquired.load() == 1);
    REQUIRE(sem.available() == 1);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("semaphore: a timeout around acquire fires, then the semaphore still works and nothing leaked",
          "[sync]") {
    executor2 ex;
    weft::semaphore sem(2);
    ex.block_on([&]() -> weft::task<> {
        auto a = co_await sem.acquire(2);
        auto timed = co_await weft::timeout(2ms, sem.acquire());
        TASK_CHECK(!timed);
        TASK_CHECK(timed.error() == weft::errc::timed_out);
        TASK_CHECK(sem.waiting() == 0);
        a.release();
        auto b = co_await weft::timeout(1s, sem.acquire(2));
        TASK_CHECK(b);
        TASK_CHECK(b->count() == 2);
    }());
    REQUIRE(sem.available() == 2);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(ex.metrics().armed_timers == 0);
    REQUIRE(no_task_failures());
}

TEST_CASE("semaphore: timeouts racing hand-overs under contention never lose a permit", "[sync]") {
    executor2 ex;
    weft::semaphore sem(2);
    std::atomic<int> inside{0};
    std::atomic<int> high{0};
    std::atomic<std::uint64_t> got{0};
    std::atomic<std::uint64_t> timed_out{0};
    const std::uint64_t rounds = weft_test::scaled(1'000);
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&, t]() -> weft::task<> {
            std::minstd_rand rng(static_cast<unsigned>(t + 1));
            for (std::uint64_t i = 0; i < rounds; ++i) {
                auto p = co_await weft::timeout(std::chrono::microseconds(rng() % 1000), sem.acquire());
                if (!p) {
                    timed_out.fetch_add(1);
                    continue;
                }
                raise_high_water(high, inside.fetch_add(1) + 1);
                got.fetch_add(1);
                // Hold it for a while, so that others wait and their timeouts
                // fire while permits are being handed over.
                if (rng() % 4 == 0) {
                    co_await weft::sleep_for(std::chrono::microseconds(rng() % 300));
                } else {
                    co_await weft::yield_now();
                }
                inside.fetch_sub(1);
            }
        }));
    }
    join_all(handles);
    REQUIRE(got.load() + timed_out.load() == 8 * rounds);
    REQUIRE(high.load() <= 2);
    REQUIRE(sem.available() == 2);
    REQUIRE(sem.waiting() == 0);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("semaphore: try_acquire, permits released by RAII, and forget", "[sync]") {
    weft::semaphore sem(2);
    {
        auto a = sem.try_acquire(2);
        REQUIRE(a);
        REQUIRE(a.count() == 2);
        REQUIRE(!sem.try_acquire());
        REQUIRE(sem.available() == 0);
    }
    REQUIRE(sem.available() == 2);
    auto b = sem.try_acquire();
    weft::semaphore::permit moved = std::move(b);
    REQUIRE(!b);
    REQUIRE(sem.available() == 1);
    moved.forget();
    REQUIRE(sem.available() == 1);
    sem.release(1);
    REQUIRE(sem.available() == 2);
    REQUIRE(no_task_failures());
}

TEST_CASE("semaphore: acquiring without waiting spends budget and yields", "[sync]") {
    executor2 ex;
    weft::semaphore sem(1);
    ex.block_on([&]() -> weft::task<> {
        for (int i = 0; i < 1000; ++i) {
            auto p = co_await sem.acquire();
        }
    }());
    std::uint64_t forced = 0;
    for (const auto& w : ex.metrics().workers) {
        forced += w.budget_forced_yields;
    }
    REQUIRE(forced >= 1000 / 128);
    REQUIRE(no_task_failures());
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("awaiting a sync primitive outside a weft task raises no_current_executor", "[sync]") {
    weft::semaphore sem(1);
    bool raised = false;
    [&]() -> plain_coroutine { auto p = co_await sem.acquire(); }();
    try {
        std::rethrow_exception(std::exchange(g_plain_error, nullptr));
    } catch (const weft::error& e) {
        raised = e.code() == weft::errc::no_current_executor;
    }
    REQUIRE(raised);
    REQUIRE(sem.available() == 1);
    REQUIRE(no_task_failures());
}
#endif

namespace {

struct every_tick_events : weft::default_options {
    static constexpr std::uint32_t event_interval = 1; // timers fire at every tick
};

// Run inline by a task on a one-worker executor: queues a blocker (a task
// that holds the worker for 5 ms) just ahead of the caller's next turn, then
// spends the caller's whole budget: the caller's next operation must yield,
// even one that could complete at once, and the blocker runs before the
// caller resumes. Returns the blocker, to be joined.
weft::task<weft::join_handle<void>> blocker_then_no_budget() {
    auto blocker = weft::spawn([]() -> weft::task<> {
        co_await weft::yield_now(); // let the caller take its next turn first
        std::this_thread::sleep_for(5ms);
    });
    co_await weft::yield_now(); // the blocker runs and queues behind us; a fresh budget
    weft::semaphore spare(1);
    for (std::uint32_t i = 0; i < every_tick_events::budget; ++i) {
        auto p = co_await spare.acquire(); // spends it all
    }
    co_return blocker;
}

} // namespace

TEST_CASE("an operation cancelled by its timeout during a budget yield gives back what it took", "[sync]") {
    // One worker. A blocker task is queued just ahead of this task's next
    // turn; the task spends its whole budget, so its next operation completes
    // but must yield; the blocker then holds the worker past the timeout's
    // deadline, so the timeout usually wins the race and destroys the
    // completed operation. Whichever wins, nothing may be lost.
    weft::executor<1, 256, every_tick_events> ex;
    weft::semaphore sem(1);
    weft::notify n;
    weft::channel<int, 1> ch;
    n.notify_one();
    REQUIRE(ch.try_send(5));
    std::atomic<int> kept{0}; // operations whose result the task did get
    ex.block_on([&]() -> weft::task<> {
        for (int op = 0; op < 3; ++op) {
            auto blocker = co_await blocker_then_no_budget();
            if (op == 0) {
                auto r = co_await weft::timeout(1ms, sem.acquire());
                if (r) {
                    kept.fetch_add(1); // the permit is released right here
                }
            } else if (op == 1) {
                auto r = co_await weft::timeout(1ms, n.notified());
                if (r) {
                    kept.fetch_add(1);
                    n.notify_one(); // put it back, for the check below
                }
            } else {
                auto r = co_await weft::timeout(1ms, ch.recv());
                if (r) {
                    kept.fetch_add(1);
                    TASK_CHECK(ch.try_send(**r)); // put it back
                }
            }
            co_await blocker;
        }
    }());
    REQUIRE(sem.available() == 1);
    REQUIRE(ch.try_recv().value() == 5);
    const bool notified = ex.block_on([&]() -> weft::task<bool> {
        auto r = co_await weft::timeout(1s, n.notified());
        co_return static_cast<bool>(r);
    }());
    REQUIRE(notified);
    REQUIRE(no_live_tasks(ex));
}

TEST_CASE("a send that must yield for its budget sends nothing before it resumes: timed_out means unsent",
          "[sync]") {
    // As above, around a send. A sent value cannot be taken back, so a send
    // whose budget is spent yields before its value goes in. It used to push
    // the value and then yield: the timeout, winning the race, reported
    // timed_out for a value that was in the channel.
    weft::executor<1, 256, every_tick_events> ex;
    weft::channel<int, 4> ch;
    std::atomic<int> timed_out{0};
    ex.block_on([&]() -> weft::task<> {
        for (int op = 0; op < 5; ++op) {
            auto blocker = co_await blocker_then_no_budget();
            auto r = co_await weft::timeout(1ms, ch.send(op));
            co_await blocker;
            if (!r) {
                TASK_CHECK(r.error() == weft::errc::timed_out);
                timed_out.fetch_add(1);
            }
            int delivered = 0;
            while (auto v = ch.try_recv()) {
                TASK_CHECK(*v == op);
                ++delivered;
            }
            TASK_CHECK(delivered == (r ? 1 : 0)); // sent exactly when the send said so
        }
    }());
    REQUIRE(no_task_failures());
    INFO("sends cut short by their timeout: " << timed_out.load() << " of 5");
    REQUIRE(no_live_tasks(ex));
    // Nothing is left granted: the channel takes and gives 4 values.
    for (int i = 0; i < 4; ++i) {
        REQUIRE(ch.try_send(i));
    }
    REQUIRE(!ch.try_send(4));
}

TEST_CASE("a barrier's leader does not yield for its budget: timed_out means the generation waits",
          "[sync]") {
    // As above, around the last arrival at a barrier of one: it releases the
    // generation with this task as leader, so it must not then yield (the
    // timeout, winning the race, would report timed_out for an arrival
    // that counted).
    weft::executor<1, 256, every_tick_events> ex;
    weft::barrier b(1);
    ex.block_on([&]() -> weft::task<> {
        for (std::uint64_t op = 0; op < 5; ++op) {
            auto blocker = co_await blocker_then_no_budget();
            auto r = co_await weft::timeout(1ms, b.arrive_and_wait());
            co_await blocker;
            TASK_CHECK(r.has_value() && r->is_leader());
            TASK_CHECK(b.generation() == op + 1); // each arrival released its generation
        }
    }());
    REQUIRE(no_task_failures());
    REQUIRE(no_live_tasks(ex));
}

// ---- mutex ------------------------------------------------------------------------

TEST_CASE("mutex: 8 tasks x 10,000 increments under the lock add up exactly", "[sync]") {
    executor2 ex;
    weft::mutex m;
    std::uint64_t counter = 0; // plain: the mutex is what protects it
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    const std::uint64_t rounds = weft_test::scaled(10'000);
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            for (std::uint64_t i = 0; i < rounds; ++i) {
                auto g = co_await m.lock();
                if (inside.fetch_add(1) != 0) {
                    overlaps.fetch_add(1);
                }
                ++counter;
                if (i % 101 == 0) {
                    co_await weft::yield_now();
                }
                inside.fetch_sub(1);
            }
        }));
    }
    join_all(handles);
    REQUIRE(overlaps.load() == 0);
    REQUIRE(counter == 8 * rounds);
    REQUIRE(!m.is_locked());
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("mutex: aborting a waiter and a timeout around lock leave it usable", "[sync]") {
    executor2 ex;
    weft::mutex m;
    auto held = m.try_lock();
    REQUIRE(held);
    REQUIRE(!m.try_lock());
    std::atomic<int> entered{0};
    auto locker = [&]() -> weft::task<> {
        auto g = co_await m.lock();
        entered.fetch_add(1);
    };
    auto first = ex.spawn(locker);
    REQUIRE(weft_test::wait_until([&] { return m.waiting() == 1; }));
    auto second = ex.spawn(locker);
    REQUIRE(weft_test::wait_until([&] { return m.waiting() == 2; }));
    abort_and_join(first);
    auto timed = ex.block_on([&]() -> weft::task<bool> {
        auto r = co_await weft::timeout(1ms, m.lock());
        co_return !r && r.error() == weft::errc::timed_out;
    }());
    REQUIRE(timed);
    REQUIRE(m.waiting() == 1);
    held.unlock();
    second.get();
    REQUIRE(entered.load() == 1);
    REQUIRE(!m.is_locked());
    REQUIRE(m.try_lock());
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

// ---- notify -------------------------------------------------------------------------

TEST_CASE("notify: a notify_one before the wait is not lost, and only one is stored", "[sync]") {
    executor2 ex;
    weft::notify n;
    n.notify_one();
    n.notify_one(); // coalesces with the first
    ex.block_on([&]() -> weft::task<> {
        co_await n.notified(); // completes at once: the stored permit
        auto second = co_await weft::timeout(2ms, n.notified());
        TASK_CHECK(!second); // only one was stored
    }());
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("notify: notify_all wakes every current waiter and stores nothing", "[sync]") {
    executor2 ex;
    weft::notify n;
    std::atomic<int> woken{0};
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            co_await n.notified();
            woken.fetch_add(1);
        }));
    }
    REQUIRE(weft_test::wait_until([&] { return n.waiting() == 8; }));
    n.notify_all();
    join_all(handles);
    REQUIRE(woken.load() == 8);
    ex.block_on([&]() -> weft::task<> {
        auto r = co_await weft::timeout(2ms, n.notified());
        TASK_CHECK(!r); // notify_all left no permit behind
    }());
    REQUIRE(no_task_failures());
}

TEST_CASE("notify: 8 waiting tasks receive exactly as many notify_one calls as were made", "[sync]") {
    executor2 ex;
    weft::notify n;
    std::atomic<std::uint64_t> received{0};
    std::atomic<bool> done{false};
    std::atomic<int> finished{0};
    const std::uint64_t total = weft_test::scaled(20'000);
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            for (;;) {
                co_await n.notified();
                if (done.load()) {
                    break;
                }
                received.fetch_add(1);
            }
            finished.fetch_add(1);
        }));
    }
    handles.push_back(ex.spawn([&]() -> weft::task<> {
        for (std::uint64_t i = 0; i < total; ++i) {
            n.notify_one();
            while (received.load() < i + 1) { // one at a time: none may coalesce
                co_await weft::yield_now();
            }
        }
        done.store(true);
        while (finished.load() < 8) {
            n.notify_all();
            co_await weft::yield_now();
        }
    }));
    join_all(handles);
    REQUIRE(received.load() == total);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("notify: aborting one of two waiters, then one notify_one wakes the other", "[sync]") {
    executor2 ex;
    weft::notify n;
    std::atomic<int> woken{0};
    auto waiter = [&]() -> weft::task<> {
        co_await n.notified();
        woken.fetch_add(1);
    };
    auto first = ex.spawn(waiter);
    REQUIRE(weft_test::wait_until([&] { return n.waiting() == 1; }));
    auto second = ex.spawn(waiter);
    REQUIRE(weft_test::wait_until([&] { return n.waiting() == 2; }));
    abort_and_join(first);
    n.notify_one();
    second.get();
    REQUIRE(woken.load() == 1);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("notify: a timeout around notified fires, then notifications still arrive", "[sync]") {
    executor2 ex;
    weft::notify n;
    ex.block_on([&]() -> weft::task<> {
        auto r = co_await weft::timeout(2ms, n.notified());
        TASK_CHECK(!r);
        TASK_CHECK(r.error() == weft::errc::timed_out);
        TASK_CHECK(n.waiting() == 0);
        n.notify_one();
        auto s = co_await weft::timeout(1s, n.notified());
        TASK_CHECK(s);
    }());
    REQUIRE(no_live_tasks(ex));
    REQUIRE(ex.metrics().armed_timers == 0);
    REQUIRE(no_task_failures());
}

TEST_CASE("notify: a notify_one handed to a waiter whose timeout fires is passed on", "[sync]") {
    // Waiters keep timing out while a producer notifies; every notification
    // is consumed exactly once, by someone (a pass-on that were lost would
    // hang the producer's handshake).
    executor2 ex;
    weft::notify n;
    std::atomic<std::uint64_t> received{0};
    std::atomic<bool> done{false};
    const std::uint64_t total = weft_test::scaled(3'000);
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&, t]() -> weft::task<> {
            std::minstd_rand rng(static_cast<unsigned>(t + 7));
            while (!done.load()) {
                auto r = co_await weft::timeout(std::chrono::microseconds(rng() % 100), n.notified());
                if (r && !done.load()) {
                    received.fetch_add(1);
                }
            }
        }));
    }
    handles.push_back(ex.spawn([&]() -> weft::task<> {
        for (std::uint64_t i = 0; i < total; ++i) {
            n.notify_one();
            while (received.load() < i + 1) {
                co_await weft::yield_now();
            }
        }
        done.store(true);
    }));
    join_all(handles);
    REQUIRE(received.load() == total);
    REQUIRE(n.waiting() == 0);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("notify: a notify_one that reaches a waiter just as its timeout fires is passed on", "[sync]") {
    // One worker. The waiter is notified while a blocker holds the worker
    // past the waiter's deadline, so when the waiter is next polled both have
    // happened and the timeout wins: the notification must be stored again.
    weft::executor<1, 256, every_tick_events> ex;
    weft::notify n;
    std::atomic<bool> blocking{false};
    std::atomic<int> outcome{0}; // 1: the waiter got it, 2: it timed out
    auto waiter = ex.spawn([&]() -> weft::task<> {
        auto r = co_await weft::timeout(2ms, n.notified());
        outcome.store(r ? 1 : 2);
    });
    // A slow machine may time the waiter out before it is seen waiting: the
    // check below holds either way.
    REQUIRE(weft_test::wait_until([&] { return n.waiting() == 1 || outcome.load() != 0; }));
    auto blocker = ex.spawn([&] {
        blocking.store(true);
        std::this_thread::sleep_for(10ms);
    });
    REQUIRE(weft_test::wait_until([&] { return blocking.load(); }));
    n.notify_one(); // usually lands while the blocker runs
    blocker.get();
    waiter.get();
    const bool second = ex.block_on([&]() -> weft::task<bool> {
        auto r = co_await weft::timeout(2ms, n.notified());
        co_return static_cast<bool>(r);
    }());
    // Exactly one of the two waits consumed the one notification.
    REQUIRE((outcome.load() == 1) != second);
    REQUIRE(n.waiting() == 0);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

// ---- oneshot ----------------------------------------------------------------------------

TEST_CASE("oneshot: the value crosses once; a dropped sender closes; a dropped receiver fails the send",
          "[sync]") {
    executor2 ex;
    {
        auto [tx, rx] = weft::make_oneshot<int>();
        auto h = ex.spawn([tx = std::move(tx)]() mutable -> weft::task<> {
            co_await weft::yield_now();
            TASK_CHECK(tx.send(42));
        });
        auto v = ex.block_on([&r = rx]() -> weft::task<weft::result<int>> { co_return co_await r; }());
        h.get();
        REQUIRE(v);
        REQUIRE(*v == 42);
        REQUIRE(rx.try_recv().error() == weft::errc::closed); // taken
    }
    {
        auto [tx, rx] = weft::make_oneshot<int>();
        REQUIRE(rx.try_recv().error() == std::errc::resource_unavailable_try_again);
        auto h = ex.spawn([tx = std::move(tx)]() mutable -> weft::task<> {
            co_await weft::yield_now();
            auto gone = std::move(tx); // dropped unsent
        });
        auto v = ex.block_on([&r = rx]() -> weft::task<weft::result<int>> { co_return co_await r.recv(); }());
        h.get();
        REQUIRE(!v);
        REQUIRE(v.error() == weft::errc::closed);
    }
    {
        auto [tx, rx] = weft::make_oneshot<std::vector<int>>();
        { auto gone = std::move(rx); }
        REQUIRE(tx.is_closed());
        std::vector<int> payload{1, 2, 3};
        auto sent = tx.send(std::move(payload));
        REQUIRE(!sent);
        REQUIRE(sent.error() == weft::errc::closed);
        REQUIRE(payload.size() == 3); // not moved from
    }
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("oneshot: 8 task pairs x many rounds deliver every value exactly once", "[sync]") {
    executor2 ex;
    std::atomic<std::uint64_t> sum{0};
    std::atomic<int> failures{0};
    const std::uint64_t rounds = weft_test::scaled(2'000);
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            for (std::uint64_t i = 0; i < rounds; ++i) {
                auto [tx, rx] = weft::make_oneshot<std::uint64_t>();
                auto sender = weft::spawn([&failures, tx = std::move(tx), i]() mutable {
                    if (!tx.send(i)) {
                        failures.fetch_add(1);
                    }
                });
                auto v = co_await rx;
                if (!v) {
                    failures.fetch_add(1);
                } else {
                    sum.fetch_add(*v);
                }
                co_await sender;
            }
        }));
    }
    join_all(handles);
    REQUIRE(failures.load() == 0);
    REQUIRE(sum.load() == 8 * (rounds * (rounds - 1) / 2));
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("oneshot: a timed-out receive can be awaited again; aborting the receiver fails the send",
          "[sync]") {
    executor2 ex;
    {
        auto [tx, rx] = weft::make_oneshot<int>();
        auto v = ex.block_on([&r = rx, &t = tx]() -> weft::task<weft::result<int>> {
            auto early = co_await weft::timeout(2ms, r.recv());
            TASK_CHECK(!early);
            TASK_CHECK(early.error() == weft::errc::timed_out);
            TASK_CHECK(t.send(5));
            co_return co_await r;
        }());
        REQUIRE(v);
        REQUIRE(*v == 5);
    }
    {
        auto [tx, rx] = weft::make_oneshot<int>();
        auto receiver = ex.spawn([rx = std::move(rx)]() mutable -> weft::task<> { (void)co_await rx; });
        abort_and_join(receiver); // the receiver died with its task
        auto sent = tx.send(1);
        REQUIRE(!sent);
        REQUIRE(sent.error() == weft::errc::closed);
    }
    REQUIRE(no_live_tasks(ex));
    REQUIRE(ex.metrics().armed_timers == 0);
    REQUIRE(no_task_failures());
}

// ---- channel ------------------------------------------------------------------------------

TEST_CASE("channel: 8 producers and 8 consumers over a 2-slot ring move every value exactly once", "[sync]") {
    executor2 ex;
    weft::channel<std::uint64_t, 2> ch;
    const std::uint64_t per_producer = weft_test::scaled(5'000);
    std::atomic<std::uint64_t> sum{0};
    std::atomic<std::uint64_t> count{0};
    std::atomic<int> failures{0};
    std::atomic<int> producers_left{8};
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&, t]() -> weft::task<> {
            for (std::uint64_t i = 0; i < per_producer; ++i) {
                if (!co_await ch.send(static_cast<std::uint64_t>(t) * per_producer + i)) {
                    failures.fetch_add(1);
                }
            }
            if (producers_left.fetch_sub(1) == 1) {
                ch.close();
            }
        }));
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            for (;;) {
                auto v = co_await ch.recv();
                if (!v) {
                    if (v.error() != weft::errc::closed) {
                        failures.fetch_add(1);
                    }
                    break;
                }
                sum.fetch_add(*v);
                count.fetch_add(1);
            }
        }));
    }
    join_all(handles);
    const std::uint64_t n = 8 * per_producer;
    REQUIRE(failures.load() == 0);
    REQUIRE(count.load() == n);
    REQUIRE(sum.load() == n * (n - 1) / 2);
    REQUIRE(ch.size() == 0);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("channel: close lets receivers drain, then reports closed; sends after close fail", "[sync]") {
    executor2 ex;
    weft::channel<int, 4> ch;
    REQUIRE(ch.try_send(1));
    REQUIRE(ch.try_send(2));
    REQUIRE(ch.try_send(3));
    REQUIRE(ch.try_send(4));
    REQUIRE(ch.try_send(5).error() == std::errc::resource_unavailable_try_again);
    weft::channel<std::vector<int>, 1> vectors;
    REQUIRE(vectors.try_send(std::vector<int>{1}));
    std::vector<int> kept{1, 2, 3};
    REQUIRE(vectors.try_send(std::move(kept)).error() == std::errc::resource_unavailable_try_again);
    REQUIRE(kept.size() == 3); // not moved from: it did not go in
    ch.close();
    REQUIRE(ch.is_closed());
    REQUIRE(ch.try_send(6).error() == weft::errc::closed);
    ex.block_on([&]() -> weft::task<> {
        auto failed = co_await ch.send(7);
        TASK_CHECK(failed.error() == weft::errc::closed);
        for (int expected = 1; expected <= 4; ++expected) {
            auto v = co_await ch.recv();
            TASK_CHECK(v);
            TASK_CHECK(*v == expected);
        }
        auto end = co_await ch.recv();
        TASK_CHECK(end.error() == weft::errc::closed);
    }());
    REQUIRE(ch.try_recv().error() == weft::errc::closed);

    // Waiting senders and receivers are woken by close.
    weft::channel<int, 1> full_ch;
    REQUIRE(full_ch.try_send(1));
    auto blocked_sender =
        ex.spawn([&]() -> weft::task<weft::result<void>> { co_return co_await full_ch.send(2); });
    REQUIRE(weft_test::wait_until([&] { return full_ch.waiting_senders() == 1; }));
    weft::channel<int, 1> empty_ch;
    auto blocked_receiver =
        ex.spawn([&]() -> weft::task<weft::result<int>> { co_return co_await empty_ch.recv(); });
    REQUIRE(weft_test::wait_until([&] { return empty_ch.waiting_receivers() == 1; }));
    full_ch.close();
    empty_ch.close();
    REQUIRE(blocked_sender.get().error() == weft::errc::closed);
    REQUIRE(blocked_receiver.get().error() == weft::errc::closed);
    REQUIRE(full_ch.try_recv().value() == 1); // what was in before close still drains
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("channel: aborting a waiting receiver or sender loses no value", "[sync]") {
    executor2 ex;
    weft::channel<int, 1> ch;
    std::atomic<int> got{-1};
    auto first = ex.spawn([&]() -> weft::task<> {
        auto v = co_await ch.recv();
        got.store(v ? *v : -2);
    });
    REQUIRE(weft_test::wait_until([&] { return ch.waiting_receivers() == 1; }));
    auto second = ex.spawn([&]() -> weft::task<> {
        auto v = co_await ch.recv();
        got.store(v ? *v : -2);
    });
    REQUIRE(weft_test::wait_until([&] { return ch.waiting_receivers() == 2; }));
    abort_and_join(first);
    REQUIRE(ch.try_send(11));
    second.get();
    REQUIRE(got.load() == 11);

    // Senders: the ring is full, two wait; abort the first, make room once.
    REQUIRE(ch.try_send(1));
    auto s1 = ex.spawn([&]() -> weft::task<> { (void)co_await ch.send(2); });
    REQUIRE(weft_test::wait_until([&] { return ch.waiting_senders() == 1; }));
    auto s2 = ex.spawn([&]() -> weft::task<> { (void)co_await ch.send(3); });
    REQUIRE(weft_test::wait_until([&] { return ch.waiting_senders() == 2; }));
    abort_and_join(s1);
    REQUIRE(ch.try_recv().value() == 1);
    s2.get();
    REQUIRE(ch.try_recv().value() == 3);
    REQUIRE(ch.try_recv().error() == std::errc::resource_unavailable_try_again);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("channel: timeouts around send and recv under contention lose and duplicate nothing", "[sync]") {
    executor2 ex;
    weft::channel<std::uint64_t, 2> ch;
    const std::uint64_t per_producer = weft_test::scaled(2'000);
    std::atomic<std::uint64_t> sent_sum{0};
    std::atomic<std::uint64_t> sent_count{0};
    std::atomic<std::uint64_t> recv_sum{0};
    std::atomic<std::uint64_t> recv_count{0};
    std::atomic<int> producers_left{4};
    std::atomic<int> failures{0};
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 4; ++t) {
        handles.push_back(ex.spawn([&, t]() -> weft::task<> {
            std::minstd_rand rng(static_cast<unsigned>(t + 1));
            for (std::uint64_t i = 0; i < per_producer; ++i) {
                const std::uint64_t value = static_cast<std::uint64_t>(t) * per_producer + i + 1;
                if (rng() % 8 == 0) {
                    co_await weft::sleep_for(std::chrono::microseconds(rng() % 300)); // receivers wait
                }
                auto r = co_await weft::timeout(std::chrono::microseconds(rng() % 500), ch.send(value));
                if (r && *r) { // in time, and accepted
                    sent_sum.fetch_add(value);
                    sent_count.fetch_add(1);
                } else if (r) {
                    failures.fetch_add(1); // closed: nobody closes before the producers end
                }
            }
            if (producers_left.fetch_sub(1) == 1) {
                ch.close();
            }
        }));
    }
    for (int t = 0; t < 4; ++t) {
        handles.push_back(ex.spawn([&, t]() -> weft::task<> {
            std::minstd_rand rng(static_cast<unsigned>(t + 100));
            for (;;) {
                if (rng() % 8 == 0) {
                    co_await weft::sleep_for(std::chrono::microseconds(rng() % 300)); // senders wait
                }
                auto r = co_await weft::timeout(std::chrono::microseconds(rng() % 500), ch.recv());
                if (!r) {
                    continue; // timed out: try again
                }
                if (!*r) {
                    break; // closed and drained
                }
                recv_sum.fetch_add(**r);
                recv_count.fetch_add(1);
            }
        }));
    }
    join_all(handles);
    REQUIRE(failures.load() == 0);
    REQUIRE(recv_count.load() == sent_count.load());
    REQUIRE(recv_sum.load() == sent_sum.load());
    REQUIRE(sent_count.load() > 0);
    REQUIRE(ch.size() == 0);
    REQUIRE(ch.waiting_receivers() == 0);
    REQUIRE(ch.waiting_senders() == 0);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(ex.metrics().armed_timers == 0);
    REQUIRE(no_task_failures());
}

TEST_CASE("channel: a timeout around recv fires, then the channel still works", "[sync]") {
    executor2 ex;
    weft::channel<int, 2> ch;
    ex.block_on([&]() -> weft::task<> {
        auto r = co_await weft::timeout(2ms, ch.recv());
        TASK_CHECK(!r);
        TASK_CHECK(r.error() == weft::errc::timed_out);
        TASK_CHECK(ch.waiting_receivers() == 0);
        TASK_CHECK(co_await ch.send(9));
        auto v = co_await ch.recv();
        TASK_CHECK(v);
        TASK_CHECK(*v == 9);
    }());
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

// ---- once_cell -------------------------------------------------------------------------------

TEST_CASE("once_cell: 100 concurrent callers, exactly one initializer runs", "[sync]") {
    executor2 ex;
    weft::once_cell<std::vector<int>> cell;
    std::atomic<int> inits{0};
    std::atomic<int> wrong{0};
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 100; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            std::vector<int>& v = co_await cell.get_or_init([&]() -> weft::task<std::vector<int>> {
                inits.fetch_add(1);
                co_await weft::sleep_for(1ms); // others arrive meanwhile
                co_return std::vector<int>{1, 2, 3};
            });
            if (v.size() != 3 || &v != cell.get()) {
                wrong.fetch_add(1);
            }
        }));
    }
    join_all(handles);
    REQUIRE(inits.load() == 1);
    REQUIRE(wrong.load() == 0);
    REQUIRE(cell.initialized());
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("once_cell: a failing initializer lets the next caller retry", "[sync]") {
    executor2 ex;
    weft::once_cell<int> cell;
    std::atomic<int> attempts{0};
    auto init = [&]() -> weft::task<int> {
        const int attempt = attempts.fetch_add(1);
        co_await weft::sleep_for(1ms);
        if (attempt == 0) {
            throw std::runtime_error("first attempt fails");
        }
        co_return 7;
    };
    std::atomic<int> threw{0};
    std::atomic<int> got_seven{0};
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            try {
                int& v = co_await cell.get_or_init(init);
                if (v == 7) {
                    got_seven.fetch_add(1);
                }
            } catch (const std::runtime_error&) {
                threw.fetch_add(1);
            }
        }));
    }
    join_all(handles);
    REQUIRE(threw.load() == 1); // only the failed initializer's caller sees the exception
    REQUIRE(got_seven.load() == 7);
    REQUIRE(attempts.load() == 2);
    REQUIRE(*cell.get() == 7);
    REQUIRE(no_task_failures());
}
#endif

TEST_CASE("once_cell: an aborted or timed-out initializer lets a waiter take over", "[sync]") {
    executor2 ex;
    weft::once_cell<int> cell;
    weft::notify never;
    std::atomic<int> attempts{0};
    auto stuck_init = [&]() -> weft::task<int> {
        attempts.fetch_add(1);
        co_await never.notified();
        co_return 1;
    };
    auto first = ex.spawn([&]() -> weft::task<> { (void)co_await cell.get_or_init(stuck_init); });
    REQUIRE(weft_test::wait_until([&] { return never.waiting() == 1; }));
    auto waiter = ex.spawn([&]() -> weft::task<int> {
        co_return co_await cell.get_or_init([]() -> weft::task<int> { co_return 2; });
    });
    abort_and_join(first);
    REQUIRE(waiter.get() == 2);
    REQUIRE(attempts.load() == 1);

    weft::once_cell<int> other;
    auto value = ex.block_on([&]() -> weft::task<int> {
        // weft::task<T&> does not exist: a small task returns the address.
        auto r = co_await weft::timeout(
            2ms, [&]() -> weft::task<int*> { co_return &co_await other.get_or_init(stuck_init); }());
        TASK_CHECK(!r);
        co_return co_await other.get_or_init([]() -> weft::task<int> { co_return 3; });
    }());
    REQUIRE(value == 3);
    REQUIRE(never.waiting() == 0);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("once_cell: a waiter aborted while it waits leaves the others their value", "[sync]") {
    executor2 ex;
    weft::once_cell<int> cell;
    weft::notify gate;
    auto claimer = ex.spawn([&]() -> weft::task<int> {
        co_return co_await cell.get_or_init([&]() -> weft::task<int> {
            co_await gate.notified();
            co_return 5;
        });
    });
    REQUIRE(weft_test::wait_until([&] { return gate.waiting() == 1; }));
    std::atomic<int> waiting{0};
    std::atomic<int> got{0};
    auto waiter_of = [&]() -> weft::task<> {
        waiting.fetch_add(1);
        got.store(co_await cell.get_or_init([]() -> weft::task<int> { co_return -1; }));
    };
    auto doomed = ex.spawn(waiter_of);
    auto kept = ex.spawn(waiter_of);
    REQUIRE(weft_test::wait_until([&] { return waiting.load() == 2; }));
    abort_and_join(doomed);
    gate.notify_one();
    REQUIRE(claimer.get() == 5);
    kept.get();
    REQUIRE(got.load() == 5);
    REQUIRE(*cell.get() == 5);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

#if defined(__cpp_exceptions)
TEST_CASE("once_cell: init() that throws before returning its task leaves the cell empty", "[sync]") {
    executor2 ex;
    weft::once_cell<int> cell;
    std::atomic<bool> threw{false};
    auto value = ex.block_on([&]() -> weft::task<int> {
        try {
            (void)co_await cell.get_or_init([]() -> weft::task<int> { throw std::runtime_error("no task"); });
        } catch (const std::runtime_error&) {
            threw.store(true);
        }
        co_return co_await cell.get_or_init([]() -> weft::task<int> { co_return 9; });
    }());
    REQUIRE(threw.load());
    REQUIRE(value == 9);
    REQUIRE(no_task_failures());
}
#endif

// ---- watch ------------------------------------------------------------------------------------

TEST_CASE("watch: 8 receivers follow the value and all see the latest", "[sync]") {
    executor2 ex;
    weft::watch<std::uint64_t> w(0);
    const std::uint64_t last = weft_test::scaled(5'000);
    std::atomic<int> went_back{0};
    std::atomic<int> saw_last{0};
    std::atomic<int> subscribed{0};
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            auto rx = w.subscribe();
            subscribed.fetch_add(1);
            std::uint64_t previous = rx.borrow();
            while (previous != last) {
                if (!co_await rx.changed()) {
                    break;
                }
                const std::uint64_t now = rx.borrow();
                if (now < previous) {
                    went_back.fetch_add(1);
                }
                previous = now;
            }
            if (previous == last) {
                saw_last.fetch_add(1);
            }
        }));
    }
    REQUIRE(weft_test::wait_until([&] { return subscribed.load() == 8; }));
    handles.push_back(ex.spawn([&]() -> weft::task<> {
        for (std::uint64_t i = 1; i <= last; ++i) {
            w.send(i);
            if (i % 16 == 0) {
                co_await weft::yield_now();
            }
        }
    }));
    join_all(handles);
    REQUIRE(went_back.load() == 0);
    REQUIRE(saw_last.load() == 8);
    REQUIRE(w.version() == last);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("watch: a timed-out or aborted changed() loses nothing; close ends the followers", "[sync]") {
    executor2 ex;
    weft::watch<int> w(1);
    auto rx = w.subscribe();
    ex.block_on([&]() -> weft::task<> {
        auto r = co_await weft::timeout(2ms, rx.changed());
        TASK_CHECK(!r);
        w.send(2);
        TASK_CHECK(rx.has_changed());
        TASK_CHECK(co_await rx.changed());
        TASK_CHECK(rx.borrow() == 2);
        TASK_CHECK(!rx.has_changed());
    }());
    std::atomic<int> subscribed{0};
    auto follower = ex.spawn([&]() -> weft::task<int> {
        auto mine = w.subscribe();
        subscribed.fetch_add(1);
        int changes = 0;
        while (co_await mine.changed()) {
            ++changes;
        }
        co_return changes;
    });
    auto doomed = ex.spawn([&]() -> weft::task<> {
        auto mine = w.subscribe();
        subscribed.fetch_add(1);
        (void)co_await mine.changed();
    });
    REQUIRE(weft_test::wait_until([&] { return subscribed.load() == 2; }));
    abort_and_join(doomed);
    w.send(3);
    w.close();
    // Subscribed at the value 2: it sees 3 exactly once (waiting or not
    // yet), then the close.
    REQUIRE(follower.get() == 1);
    REQUIRE(w.borrow() == 3);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

// ---- barrier ------------------------------------------------------------------------------------

TEST_CASE("barrier: 8 tasks across many generations, one leader each, nobody runs ahead", "[sync]") {
    executor2 ex;
    weft::barrier b(8);
    const int generations = static_cast<int>(weft_test::scaled(300));
    std::atomic<int> leaders{0};
    std::atomic<int> ahead{0};
    std::atomic<int> arrived_in[2] = {0, 0};
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 8; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            for (int g = 0; g < generations; ++g) {
                // Everyone of generation g arrives before anyone leaves it.
                arrived_in[g % 2].fetch_add(1);
                auto result = co_await b.arrive_and_wait();
                if (arrived_in[g % 2].load() < 8 * (g / 2 + 1)) {
                    ahead.fetch_add(1);
                }
                if (result.is_leader()) {
                    leaders.fetch_add(1);
                }
            }
        }));
    }
    join_all(handles);
    REQUIRE(ahead.load() == 0);
    REQUIRE(leaders.load() == generations);
    REQUIRE(b.generation() == static_cast<std::uint64_t>(generations));
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}

TEST_CASE("barrier: 3 generations of 3, and an aborted waiter withdraws its arrival", "[sync]") {
    executor2 ex;
    weft::barrier b(3);
    std::atomic<int> leaders{0};
    auto doomed = ex.spawn([&]() -> weft::task<> { (void)co_await b.arrive_and_wait(); });
    REQUIRE(weft_test::wait_until([&] { return b.waiting() == 1; }));
    abort_and_join(doomed);
    REQUIRE(b.waiting() == 0);
    std::vector<weft::join_handle<void>> handles;
    for (int t = 0; t < 3; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            for (int g = 0; g < 3; ++g) {
                if ((co_await b.arrive_and_wait()).is_leader()) {
                    leaders.fetch_add(1);
                }
            }
        }));
    }
    join_all(handles);
    REQUIRE(leaders.load() == 3);
    REQUIRE(b.generation() == 3);
    REQUIRE(no_live_tasks(ex));
    REQUIRE(no_task_failures());
}
