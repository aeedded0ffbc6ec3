// Helpers shared by weft's tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

// Built with ThreadSanitizer, which does not support starting threads in a
// forked child: tests that need that skip.
#if defined(__SANITIZE_THREAD__)
#define WEFT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TEST_TSAN 1
#endif
#endif

#include <weft/error.hpp>
#include <weft/task.hpp>

namespace weft_test {

#if defined(__cpp_exceptions)
/// The error `f` raises as a weft::error (an empty code if it raises none):
/// compare it with a weft::errc.
template <class F>
std::error_code raised(F&& f) {
    try {
        f();
    } catch (const weft::error& e) {
        return e.code();
    }
    return {};
}
#endif

/// Sizes of the heavy tests, divided by WEFT_TEST_SCALE_DIV when set (for
/// slow targets such as qemu-user emulation). Never below 1.
inline std::size_t scaled(std::size_t n) {
    const char* div = std::getenv("WEFT_TEST_SCALE_DIV");
    std::size_t d = div != nullptr ? static_cast<std::size_t>(std::strtoul(div, nullptr, 10)) : 1;
    if (d == 0) {
        d = 1;
    }
    return n / d > 0 ? n / d : 1;
}

/// Polls `done()` until it holds or `limit` passes; returns done(). The
/// limit only turns a hang into a failure: passing never depends on speed.
template <class Pred>
bool wait_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return done();
        }
        std::this_thread::yield();
    }
    return true;
}

/// Joins a task that was aborted: true when it is gone (is_finished: its
/// coroutines were destroyed) and, in a build with exceptions, its join
/// raises errc::task_aborted. Without exceptions that join would reach the
/// panic handler, so there only the first half is checked.
template <class T>
bool join_aborted(weft::join_handle<T>& handle) {
    if (!wait_until([&] { return handle.is_finished(); })) {
        return false;
    }
#if defined(__cpp_exceptions)
    try {
        (void)handle.get();
    } catch (const weft::error& e) {
        return e.code() == weft::errc::task_aborted;
    }
    return false;
#else
    handle.detach();
    return true;
#endif
}

/// Calls `visit(tid)` for every thread of this process whose name starts
/// with `prefix` (from /proc/self/task). False if /proc is not there.
template <class Visit>
bool for_each_thread_named(const std::string& prefix, Visit visit) {
    DIR* dir = ::opendir("/proc/self/task");
    if (dir == nullptr) {
        return false;
    }
    while (dirent* entry = ::readdir(dir)) {
        const std::string tid = entry->d_name;
        if (tid == "." || tid == "..") {
            continue;
        }
        std::ifstream comm("/proc/self/task/" + tid + "/comm");
        std::string name;
        std::getline(comm, name);
        if (name.rfind(prefix, 0) == 0) {
            visit(tid);
        }
    }
    ::closedir(dir);
    return true;
}

/// Threads whose names start with `prefix`; -1 if /proc is not there.
inline int threads_named(const std::string& prefix) {
    int count = 0;
    return for_each_thread_named(prefix, [&](const std::string&) { ++count; }) ? count : -1;
}

/// True once no thread's name starts with `prefix` (within wait_until's
/// limit). Use it after joining threads: the kernel wakes pthread_join when it
/// clears the thread's join word, a little before it removes the thread from
/// /proc/self/task (a window qemu-user widens), so a count taken right after
/// the join may still see it.
inline bool threads_gone(const std::string& prefix) {
    return wait_until([&] { return threads_named(prefix) == 0; });
}

/// Voluntary context switches (times a thread went to sleep) of the threads
/// whose names start with `prefix`; all-ones if /proc is not there.
inline std::uint64_t worker_context_switches(const std::string& prefix) {
    std::uint64_t total = 0;
    const bool found = for_each_thread_named(prefix, [&](const std::string& tid) {
        std::ifstream status("/proc/self/task/" + tid + "/status");
        std::string line;
        while (std::getline(status, line)) {
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
                total += std::stoull(line.substr(line.find(':') + 1));
            }
        }
    });
    return found ? total : ~std::uint64_t{0};
}

/// How a child of run_in_child ended, and what it wrote to its pipe.
struct child_report {
    int exit_code = -1; // -1 if it did not exit normally
    int signal = 0;     // the signal that ended it, if one did
    std::string text;
};

/// Runs `body` in a fork()ed child and reports how the child ended. `body`
/// is called with `fd`, the write end of a pipe back to this process (or
/// with nothing, if it takes no argument); the child exits with what
/// `body` returns (0 if it returns nothing). An alarm ends a child that
/// hangs (signal SIGALRM). For what ends a process (the panic handler), or
/// must run in a child (fork tests). Fork from a test with no executor
/// running when the child needs to have one thread only.
template <class Body>
child_report run_in_child(Body body, unsigned alarm_seconds = 20) {
    child_report report;
    int fds[2];
    if (::pipe(fds) != 0) {
        report.text = "pipe failed";
        return report;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        ::alarm(alarm_seconds);
        int code = 0;
        if constexpr (std::is_invocable_v<Body, int>) {
            if constexpr (std::is_void_v<std::invoke_result_t<Body, int>>) {
                body(fds[1]);
            } else {
                code = body(fds[1]);
            }
        } else {
            code = body();
        }
        std::_Exit(code);
    }
    ::close(fds[1]);
    char buffer[512];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
        report.text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    if (pid > 0 && ::waitpid(pid, &status, 0) == pid) {
        if (WIFEXITED(status)) {
            report.exit_code = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
            report.signal = WTERMSIG(status);
        }
    }
    return report;
}

/// Where report_panic_and_exit writes: set it in the child to its `fd`.
inline int panic_report_fd = -1;

/// A panic handler for a child of run_in_child: writes "<code> <message>"
/// to panic_report_fd and exits with 42.
inline void report_panic_and_exit(int code, const char* message) noexcept {
    char line[512];
    const int n = std::snprintf(line, sizeof line, "%d %s", code, message);
    if (n > 0) {
        (void)!::write(panic_report_fd, line, static_cast<std::size_t>(n));
    }
    ::_exit(42);
}

} // namespace weft_test
