// Helpers shared by weft's tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

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

namespace weft_test {

/// Runs `body` in a forked child with an alarm (a hang ends the child by
/// SIGALRM) and returns the child's exit status, or minus the signal that
/// ended it. For what must end a process (a panic) or run in a child.
template <class Body>
int in_child(Body body, unsigned alarm_seconds = 20) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::alarm(alarm_seconds);
        std::_Exit(body());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/// Sizes of the heavy tests, divided by WEFT_TEST_SCALE_DIV when set (for
/// slow targets such as qemu-user emulation). Never below 1.
inline std::uint64_t scaled(std::uint64_t n) {
    const char* div = std::getenv("WEFT_TEST_SCALE_DIV");
    std::uint64_t d = div != nullptr ? std::strtoull(div, nullptr, 10) : 1;
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

} // namespace weft_test
