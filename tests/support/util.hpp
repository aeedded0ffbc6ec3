// Helpers shared by weft's tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include <dirent.h>

#include <weft/error.hpp>
#include <weft/task.hpp>

namespace weft_test {

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

} // namespace weft_test
