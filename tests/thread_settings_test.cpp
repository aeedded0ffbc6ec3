// The thread settings a board needs, read back from the OS: scheduling
// policy and priority (and the errors when they are out of range or not
// permitted), CPU sets for workers and blocking threads, blocking threads'
// stack size, and the on_thread_start / on_thread_stop hooks.
#include <weft/weft.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

using namespace std::chrono_literals;

struct sched_reading {
    int policy = -1;
    int priority = -1;
};

sched_reading sched_of(pthread_t thread) {
    sched_reading out;
    sched_param param{};
    if (::pthread_getschedparam(thread, &out.policy, &param) == 0) {
        out.priority = param.sched_priority;
    }
    return out;
}

sched_reading sched_of_this_thread() { return sched_of(::pthread_self()); }

cpu_set_t cpus_of_this_thread() {
    cpu_set_t set;
    CPU_ZERO(&set);
    (void)::pthread_getaffinity_np(::pthread_self(), sizeof set, &set);
    return set;
}

std::vector<int> allowed_cpus() {
    const cpu_set_t set = cpus_of_this_thread();
    std::vector<int> out;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(static_cast<std::size_t>(cpu), &set)) {
            out.push_back(cpu);
        }
    }
    return out;
}

cpu_set_t set_of(std::initializer_list<int> cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const int cpu : cpus) {
        CPU_SET(static_cast<std::size_t>(cpu), &set);
    }
    return set;
}

[[maybe_unused]] std::size_t stack_size_of_this_thread() {
    pthread_attr_t attr;
    std::size_t size = 0;
    if (::pthread_getattr_np(::pthread_self(), &attr) == 0) {
        (void)::pthread_attr_getstacksize(&attr, &size);
        ::pthread_attr_destroy(&attr);
    }
    return size;
}

std::string name_of_this_thread() {
    char name[16] = {};
    (void)::pthread_getname_np(::pthread_self(), name, sizeof name);
    return name;
}

template <class T, class F>
T run_on_worker(weft::executor<2, 64>& ex, F read) {
    return ex.block_on([](F f) -> weft::task<T> { co_return f(); }(read));
}

template <class T, class F>
T run_on_blocking_thread(weft::executor<2, 64>& ex, F read) {
    // Spawned from a worker, so that a blocking thread that inherited from
    // its creator would show the worker's settings.
    return ex.block_on([](F f) -> weft::task<T> { co_return co_await weft::spawn_blocking(f); }(read));
}

[[maybe_unused]] const char* policy_label(weft::sched_policy policy) {
    return policy == weft::sched_policy::fifo ? "SCHED_FIFO" : "SCHED_RR";
}

// Takes CAP_SYS_NICE out of the calling thread's effective capabilities and
// lowers the soft RLIMIT_RTPRIO to 0, so that this thread, and what glibc
// does on its behalf in pthread_create, may not use a real-time policy,
// root or not. Capabilities are per thread: the rest of the process keeps
// them. The limit is per process and is put back by the destructor (a soft
// limit may always go back up to the hard one).
class real_time_forbidden {
public:
    real_time_forbidden() {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2] = {};
        if (::syscall(SYS_capget, &header, data) != 0) {
            m_why_not = std::string("capget: ") + std::strerror(errno);
            return;
        }
        data[CAP_SYS_NICE / 32].effective &= ~(1u << (CAP_SYS_NICE % 32));
        if (::syscall(SYS_capset, &header, data) != 0) {
            m_why_not = std::string("capset: ") + std::strerror(errno);
            return;
        }
        if (::getrlimit(RLIMIT_RTPRIO, &m_saved) != 0) {
            m_why_not = std::string("getrlimit: ") + std::strerror(errno);
            return;
        }
        rlimit none = m_saved;
        none.rlim_cur = 0;
        if (::setrlimit(RLIMIT_RTPRIO, &none) != 0) {
            m_why_not = std::string("setrlimit: ") + std::strerror(errno);
            return;
        }
        m_lowered = true;
    }
    real_time_forbidden(const real_time_forbidden&) = delete;
    real_time_forbidden& operator=(const real_time_forbidden&) = delete;
    ~real_time_forbidden() {
        if (m_lowered) {
            (void)::setrlimit(RLIMIT_RTPRIO, &m_saved);
        }
    }

    /// Empty when real-time policies are now forbidden to this thread.
    const std::string& why_not() const { return m_why_not; }

private:
    std::string m_why_not;
    rlimit m_saved{};
    bool m_lowered = false;
};

// Empty when a new thread of this process may take a real-time policy at
// this priority (CAP_SYS_NICE, or an RLIMIT_RTPRIO at least as high), else
// why not: asked of a throwaway thread, so that the test can skip before
// the executor would raise (or, without exceptions, panic).
std::string real_time_refused(int native, int priority) {
    std::string why_not;
    std::thread probe([&] {
        sched_param param{};
        param.sched_priority = priority;
        if (const int rc = ::pthread_setschedparam(::pthread_self(), native, &param); rc != 0) {
            why_not = std::strerror(rc);
        }
    });
    probe.join();
    return why_not;
}

} // namespace

TEST_CASE("workers run with the real-time policy and priority asked for; blocking threads stay SCHED_OTHER",
          "[settings][sched]") {
    for (const weft::sched_policy policy : {weft::sched_policy::fifo, weft::sched_policy::rr}) {
        const int native = policy == weft::sched_policy::fifo ? SCHED_FIFO : SCHED_RR;
        const int priority = ::sched_get_priority_min(native);
        if (const std::string why_not = real_time_refused(native, priority); !why_not.empty()) {
            WARN(policy_label(policy) << " is not permitted to this process, test skipped: " << why_not);
            continue;
        }
        weft::settings s;
        s.thread_name_prefix = "rt";
        s.worker_scheduling = {policy, priority};
        weft::executor<2, 64> ex(s);
        for (std::uint32_t i = 0; i < 2; ++i) {
            const sched_reading worker = sched_of(ex.native_handle(i));
            REQUIRE(worker.policy == native);
            REQUIRE(worker.priority == priority);
        }
        const sched_reading in_task = run_on_worker<sched_reading>(ex, &sched_of_this_thread);
        REQUIRE(in_task.policy == native);
        REQUIRE(in_task.priority == priority);
        const sched_reading in_job = run_on_blocking_thread<sched_reading>(ex, &sched_of_this_thread);
        REQUIRE(in_job.policy == SCHED_OTHER);
        REQUIRE(in_job.priority == 0);
    }
}

TEST_CASE("per_worker_scheduling gives a worker its own policy and priority; the rest take "
          "worker_scheduling",
          "[settings][sched]") {
    const int fifo = ::sched_get_priority_min(SCHED_FIFO) + 1;
    if (const std::string why_not = real_time_refused(SCHED_FIFO, fifo); !why_not.empty()) {
        WARN("SCHED_FIFO is not permitted to this process, test skipped: " << why_not);
        return;
    }
    weft::settings s;
    s.thread_name_prefix = "perw";
    s.per_worker_scheduling = {{weft::sched_policy::fifo, fifo}};
    s.worker_scheduling = {weft::sched_policy::other, 0};
    weft::executor<2, 64> ex(s);
    const sched_reading first = sched_of(ex.native_handle(0));
    const sched_reading second = sched_of(ex.native_handle(1));
    REQUIRE(first.policy == SCHED_FIFO);
    REQUIRE(first.priority == fifo);
    REQUIRE(second.policy == SCHED_OTHER);
    REQUIRE(second.priority == 0);
    // Blocking threads keep their own default whatever the workers have.
    const sched_reading in_job = run_on_blocking_thread<sched_reading>(ex, &sched_of_this_thread);
    REQUIRE(in_job.policy == SCHED_OTHER);
}

TEST_CASE(
    "blocking threads take blocking_scheduling; SCHED_OTHER is explicit, inherit follows the constructor",
    "[settings][sched]") {
    // Constructed from a thread that is itself SCHED_FIFO (when the process
    // may make one): inherit gives the workers SCHED_FIFO, other does not.
    std::string skipped;
    sched_reading inherited, explicit_other, blocking_rr;
    std::thread constructor([&] {
        sched_param param{};
        param.sched_priority = ::sched_get_priority_min(SCHED_FIFO);
        if (const int rc = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param); rc != 0) {
            skipped = std::strerror(rc);
            return;
        }
        {
            weft::settings s;
            weft::executor<2, 64> ex(s); // worker_scheduling: inherit
            inherited = sched_of(ex.native_handle(1));
        }
        {
            weft::settings s;
            s.worker_scheduling = {weft::sched_policy::other, 0};
            s.blocking_scheduling = {weft::sched_policy::rr, ::sched_get_priority_min(SCHED_RR) + 1};
            weft::executor<2, 64> ex(s);
            explicit_other = sched_of(ex.native_handle(1));
            blocking_rr = run_on_blocking_thread<sched_reading>(ex, &sched_of_this_thread);
        }
    });
    constructor.join();
    if (!skipped.empty()) {
        WARN("this process may not use SCHED_FIFO (" << skipped << "), test skipped");
        return;
    }
    REQUIRE(inherited.policy == SCHED_FIFO);
    REQUIRE(inherited.priority == ::sched_get_priority_min(SCHED_FIFO));
    REQUIRE(explicit_other.policy == SCHED_OTHER);
    REQUIRE(explicit_other.priority == 0);
    REQUIRE(blocking_rr.policy == SCHED_RR);
    REQUIRE(blocking_rr.priority == ::sched_get_priority_min(SCHED_RR) + 1);
}

#if defined(__cpp_exceptions) // checks what a throw reports
TEST_CASE("a real-time policy the process may not use is not_permitted, says what to do, and starts nothing",
          "[settings][sched][errors]") {
    std::atomic<int> started{0};
    std::string why_not, worker_message, blocking_message;
    weft::errc worker_code{}, blocking_code{};
    // Capabilities are per thread: drop CAP_SYS_NICE on a thread of our own.
    std::thread forbidden([&] {
        const real_time_forbidden guard;
        why_not = guard.why_not();
        if (!why_not.empty()) {
            return;
        }
        weft::settings s;
        s.thread_name_prefix = "noperm";
        s.on_thread_start = [&started](weft::thread_info) { started.fetch_add(1); };
        s.worker_scheduling = {weft::sched_policy::fifo, ::sched_get_priority_min(SCHED_FIFO)};
        try {
            weft::executor<2, 64> ex(s);
        } catch (const weft::error& e) {
            worker_code = static_cast<weft::errc>(e.code().value());
            worker_message = e.what();
        }
        s.worker_scheduling = {};
        s.blocking_scheduling = {weft::sched_policy::rr, ::sched_get_priority_min(SCHED_RR)};
        try {
            weft::executor<2, 64> ex(s);
        } catch (const weft::error& e) {
            blocking_code = static_cast<weft::errc>(e.code().value());
            blocking_message = e.what();
        }
    });
    forbidden.join();
    if (!why_not.empty()) {
        WARN("cannot take CAP_SYS_NICE away here (" << why_not << "), test skipped");
        return;
    }
    INFO(worker_message);
    REQUIRE(worker_code == weft::errc::not_permitted);
    REQUIRE(worker_message.find("worker 0") != std::string::npos);
    REQUIRE(worker_message.find("SCHED_FIFO") != std::string::npos);
    REQUIRE(worker_message.find("CAP_SYS_NICE") != std::string::npos);
    REQUIRE(worker_message.find("RLIMIT_RTPRIO") != std::string::npos);
    INFO(blocking_message);
    REQUIRE(blocking_code == weft::errc::not_permitted);
    REQUIRE(blocking_message.find("blocking thread") != std::string::npos);
    REQUIRE(blocking_message.find("SCHED_RR") != std::string::npos);
    REQUIRE(started.load() == 0);
    REQUIRE(weft_test::threads_named("noperm") == 0);
}
#endif

#if defined(__cpp_exceptions) // checks what a throw reports
TEST_CASE("a priority the policy does not take is invalid_argument before any thread starts",
          "[settings][sched][errors]") {
    const int fifo_max = ::sched_get_priority_max(SCHED_FIFO);
    const int rr_min = ::sched_get_priority_min(SCHED_RR);
    struct bad_case {
        weft::thread_scheduling workers;
        weft::thread_scheduling blocking;
        const char* setting;
    };
    const bad_case cases[] = {
        {{weft::sched_policy::fifo, fifo_max + 1}, {weft::sched_policy::other, 0}, "worker_scheduling"},
        {{weft::sched_policy::fifo, 0}, {weft::sched_policy::other, 0}, "worker_scheduling"},
        {{weft::sched_policy::other, 5}, {weft::sched_policy::other, 0}, "worker_scheduling"},
        {{weft::sched_policy::inherit, 1}, {weft::sched_policy::other, 0}, "worker_scheduling"},
        {{static_cast<weft::sched_policy>(42), 0}, {weft::sched_policy::other, 0}, "worker_scheduling"},
        {{weft::sched_policy::inherit, 0}, {weft::sched_policy::rr, rr_min - 1}, "blocking_scheduling"},
    };
    std::atomic<int> started{0};
    for (const bad_case& c : cases) {
        weft::settings s;
        s.thread_name_prefix = "badprio";
        s.on_thread_start = [&started](weft::thread_info) { started.fetch_add(1); };
        s.worker_scheduling = c.workers;
        s.blocking_scheduling = c.blocking;
        try {
            weft::executor<2, 64> ex(s);
            FAIL("the executor started with policy " << static_cast<int>(c.workers.policy) << " priority "
                                                     << c.workers.priority);
        } catch (const weft::error& e) {
            INFO(e.what());
            REQUIRE(e.code() == weft::errc::invalid_argument);
            REQUIRE(std::string(e.what()).find(c.setting) != std::string::npos);
        }
    }
    // A per-worker entry is checked like worker_scheduling, and named.
    weft::settings s;
    s.thread_name_prefix = "badprio";
    s.on_thread_start = [&started](weft::thread_info) { started.fetch_add(1); };
    s.per_worker_scheduling = {{weft::sched_policy::other, 0}, {weft::sched_policy::fifo, fifo_max + 1}};
    try {
        weft::executor<2, 64> ex(s);
        FAIL("the executor started with a per-worker priority out of range");
    } catch (const weft::error& e) {
        INFO(e.what());
        REQUIRE(e.code() == weft::errc::invalid_argument);
        REQUIRE(std::string(e.what()).find("per_worker_scheduling[1] (worker 1)") != std::string::npos);
    }
    REQUIRE(started.load() == 0);
    REQUIRE(weft_test::threads_named("badprio") == 0);
}
#endif

TEST_CASE("workers left free by worker_cpus run on worker_cpu_set", "[settings][affinity]") {
    const std::vector<int> cpus = allowed_cpus();
    REQUIRE(!cpus.empty());
    const int first = cpus.front();
    const int last = cpus.back(); // the same CPU on a one-CPU machine
    weft::settings s;
    s.worker_cpus = {last};
    s.worker_cpu_set = {first};
    weft::executor<2, 64> ex(s);
    cpu_set_t set;
    REQUIRE(::pthread_getaffinity_np(ex.native_handle(0), sizeof set, &set) == 0);
    const cpu_set_t pinned = set_of({last});
    REQUIRE(CPU_EQUAL(&set, &pinned));
    REQUIRE(::pthread_getaffinity_np(ex.native_handle(1), sizeof set, &set) == 0);
    const cpu_set_t free_set = set_of({first});
    REQUIRE(CPU_EQUAL(&set, &free_set));
}

#if defined(__cpp_exceptions) // checks what a throw reports
TEST_CASE("a CPU set naming a CPU that does not exist is invalid_argument", "[settings][affinity][errors]") {
    for (const bool blocking : {false, true}) {
        weft::settings s;
        (blocking ? s.blocking_cpu_set : s.worker_cpu_set) = {0, CPU_SETSIZE + 1};
        try {
            weft::executor<2, 64> ex(s);
            FAIL("the executor started with an impossible CPU");
        } catch (const weft::error& e) {
            INFO(e.what());
            REQUIRE(e.code() == weft::errc::invalid_argument);
            REQUIRE(std::string(e.what()).find(blocking ? "blocking_cpu_set" : "worker_cpu_set") !=
                    std::string::npos);
        }
    }
}
#endif

TEST_CASE("blocking threads run on blocking_cpu_set, or on the constructor's CPUs, never on a worker's pin",
          "[settings][affinity][blocking]") {
    const std::vector<int> cpus = allowed_cpus();
    REQUIRE(!cpus.empty());
    const cpu_set_t constructor_cpus = cpus_of_this_thread();
    {
        // Both workers pinned to the last CPU; a job they spawn runs on any
        // CPU the constructor could use.
        weft::settings s;
        s.worker_cpus = {cpus.back(), cpus.back()};
        weft::executor<2, 64> ex(s);
        const cpu_set_t in_job = run_on_blocking_thread<cpu_set_t>(ex, &cpus_of_this_thread);
        REQUIRE(CPU_EQUAL(&in_job, &constructor_cpus));
    }
    {
        weft::settings s;
        s.worker_cpus = {cpus.back(), cpus.back()};
        s.blocking_cpu_set = {cpus.front()};
        weft::executor<2, 64> ex(s);
        const cpu_set_t in_job = run_on_blocking_thread<cpu_set_t>(ex, &cpus_of_this_thread);
        const cpu_set_t expected = set_of({cpus.front()});
        REQUIRE(CPU_EQUAL(&in_job, &expected));
    }
}

// glibc reuses the stack of a thread that has exited for a new thread that
// asks for at most as much and at least a quarter of it, and then reports
// the reused stack's size: a size read back lies in [asked, 4 * asked].
bool stack_fits(std::size_t actual, std::size_t asked) { return actual >= asked && actual <= 4 * asked; }

TEST_CASE("blocking threads get blocking_stack_size, or the workers' stack_size", "[settings][blocking]") {
    {
        weft::settings s;
        s.stack_size = 256 * 1024;
        weft::executor<2, 64> ex(s);
        REQUIRE(stack_fits(run_on_worker<std::size_t>(ex, &stack_size_of_this_thread), s.stack_size));
        REQUIRE(
            stack_fits(run_on_blocking_thread<std::size_t>(ex, &stack_size_of_this_thread), s.stack_size));
    }
    {
        weft::settings s;
        s.stack_size = 128 * 1024;
        s.blocking_stack_size = 1024 * 1024; // more than 4 times as much: the two cannot be confused
        weft::executor<2, 64> ex(s);
        REQUIRE(stack_fits(run_on_worker<std::size_t>(ex, &stack_size_of_this_thread), s.stack_size));
        REQUIRE(stack_fits(run_on_blocking_thread<std::size_t>(ex, &stack_size_of_this_thread),
                           s.blocking_stack_size));
    }
#if defined(__cpp_exceptions) // checks what a throw reports
    // Too small for a thread: found at construction, not at the first job.
    weft::settings tiny;
    tiny.blocking_stack_size = 1024;
    try {
        weft::executor<2, 64> ex(tiny);
        FAIL("the executor started with a 1 KiB blocking stack");
    } catch (const weft::error& e) {
        INFO(e.what());
        REQUIRE(e.code() == weft::errc::invalid_argument);
        REQUIRE(std::string(e.what()).find("blocking thread") != std::string::npos);
    }
#endif
}

namespace {

// What the hooks saw, shared by the threads that call them.
struct hook_log {
    std::mutex lock;
    std::vector<std::pair<weft::thread_info, std::string>> starts; // with the name the thread had then
    std::vector<weft::thread_info> stops;
};

thread_local bool t_hook_started = false;

} // namespace

TEST_CASE("on_thread_start and on_thread_stop run once on each worker and blocking thread, around its tasks",
          "[settings][hooks]") {
    hook_log log;
    std::atomic<int> tasks_before_start{0};
    std::atomic<int> running_jobs{0};
    {
        weft::settings s;
        s.thread_name_prefix = "hk";
        s.on_thread_start = [&log](weft::thread_info info) {
            t_hook_started = true; // hooks may set thread-locals the tasks then see
            const std::lock_guard<std::mutex> hold(log.lock);
            log.starts.emplace_back(info, name_of_this_thread());
        };
        s.on_thread_stop = [&log](weft::thread_info info) {
            const std::lock_guard<std::mutex> hold(log.lock);
            log.stops.push_back(info);
        };
        weft::executor<2, 64> ex(s);
        // Three jobs held until all three run: three blocking threads.
        auto jobs = [](std::atomic<int>* running, std::atomic<int>* unhooked) -> weft::task<int> {
            std::vector<weft::join_handle<int>> handles;
            for (int i = 0; i < 3; ++i) {
                handles.push_back(weft::spawn_blocking([running, unhooked] {
                    if (!t_hook_started) {
                        unhooked->fetch_add(1);
                    }
                    running->fetch_add(1);
                    return weft_test::wait_until([running] { return running->load() == 3; }) ? 1 : 0;
                }));
            }
            int done = t_hook_started ? 0 : -100;
            for (auto& h : handles) {
                done += co_await h;
            }
            co_return done;
        };
        REQUIRE(ex.block_on(jobs(&running_jobs, &tasks_before_start)) == 3);
        REQUIRE(ex.metrics().blocking_threads == 3);
    }
    REQUIRE(tasks_before_start.load() == 0);
    const std::lock_guard<std::mutex> hold(log.lock);
    REQUIRE(log.starts.size() == 5);
    REQUIRE(log.stops.size() == 5);
    std::vector<std::string> names;
    for (const auto& [info, name] : log.starts) {
        const std::string expected =
            (info.kind == weft::thread_kind::worker ? "hk-" : "hk-blk-") + std::to_string(info.index);
        REQUIRE(name == expected); // called on the thread it describes, already named
        names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    REQUIRE(names == std::vector<std::string>{"hk-0", "hk-1", "hk-blk-0", "hk-blk-1", "hk-blk-2"});
    for (const weft::thread_kind kind : {weft::thread_kind::worker, weft::thread_kind::blocking}) {
        const auto of_kind = [kind](const weft::thread_info& i) { return i.kind == kind; };
        const auto started = std::count_if(log.starts.begin(), log.starts.end(),
                                           [&](const auto& entry) { return of_kind(entry.first); });
        REQUIRE(std::count_if(log.stops.begin(), log.stops.end(), of_kind) == started);
    }
}

TEST_CASE(
    "a blocking thread that retires calls on_thread_stop; the next one in its slot calls on_thread_start",
    "[settings][hooks][blocking]") {
    std::atomic<int> starts{0};
    std::atomic<int> stops{0};
    std::atomic<int> blocking_index_sum{0};
    weft::settings s;
    s.blocking_keep_alive = 1ms;
    s.on_thread_start = [&](weft::thread_info info) {
        if (info.kind == weft::thread_kind::blocking) {
            starts.fetch_add(1);
            blocking_index_sum.fetch_add(static_cast<int>(info.index));
        }
    };
    s.on_thread_stop = [&](weft::thread_info info) {
        if (info.kind == weft::thread_kind::blocking) {
            stops.fetch_add(1);
        }
    };
    weft::executor<2, 64> ex(s);
    for (int round = 1; round <= 3; ++round) {
        REQUIRE(ex.spawn_blocking([] { return 1; }).get() == 1);
        REQUIRE(weft_test::wait_until([&] { return stops.load() == round; }));
        REQUIRE(starts.load() == round);
    }
    REQUIRE(blocking_index_sum.load() == 0); // slot 0 every time
}

#if defined(__cpp_exceptions) // the hook throws
TEST_CASE("a hook that throws ends the process through the panic handler", "[settings][hooks]") {
    const weft_test::child_report report = weft_test::run_in_child([](int fd) {
        weft_test::panic_report_fd = fd;
        weft::set_panic_handler(&weft_test::report_panic_and_exit);
        weft::settings s;
        s.on_thread_start = [](weft::thread_info info) {
            if (info.index == 1) {
                throw std::runtime_error("no sensor");
            }
        };
        weft::executor<2, 64> ex(s);
        std::this_thread::sleep_for(30s); // the panic ends the process first
    });
    INFO(report.text);
    REQUIRE(report.exit_code == 42);
    REQUIRE(std::atoi(report.text.c_str()) == static_cast<int>(weft::errc::invalid_argument));
    REQUIRE(report.text.find("on_thread_start threw on worker 1") != std::string::npos);
}
#endif
