// Thread settings read back from the OS: names, stack size, CPU affinity,
// and the errors for settings the OS refuses.
#include <weft/weft.hpp>

#include <climits>
#include <cstring>
#include <string>

#include <pthread.h>
#include <sched.h>

#include "support/catch.hpp"

namespace {

template <class Executor>
std::string name_of(const Executor& ex, std::uint32_t index) {
    char name[16] = {};
    REQUIRE(::pthread_getname_np(ex.native_handle(index), name, sizeof name) == 0);
    return name;
}

int first_allowed_cpu() {
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(::sched_getaffinity(0, sizeof set, &set) == 0);
    for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) {
            return static_cast<int>(cpu);
        }
    }
    return -1;
}

} // namespace

TEST_CASE("workers are named <prefix>-<index>, cut to the OS limit keeping the index", "[settings]") {
    weft::settings s;
    s.thread_name_prefix = "sensor";
    weft::executor<3, 64> ex(s);
    REQUIRE(name_of(ex, 0) == "sensor-0");
    REQUIRE(name_of(ex, 2) == "sensor-2");

    weft::settings longer;
    longer.thread_name_prefix = "a-very-long-thread-prefix";
    weft::executor<2, 64> ex2(longer);
    REQUIRE(name_of(ex2, 1) == "a-very-long-t-1");
    REQUIRE(name_of(ex2, 1).size() == 15);
}

TEST_CASE("the default thread name prefix is weft", "[settings]") {
    weft::executor<1, 64> ex;
    REQUIRE(name_of(ex, 0) == "weft-0");
}

TEST_CASE("workers get the stack size asked for", "[settings]") {
    weft::settings s;
    s.stack_size = 512 * 1024;
    weft::executor<2, 64> ex(s);
    for (std::uint32_t i = 0; i < 2; ++i) {
        pthread_attr_t attr;
        REQUIRE(::pthread_getattr_np(ex.native_handle(i), &attr) == 0);
        std::size_t size = 0;
        REQUIRE(::pthread_attr_getstacksize(&attr, &size) == 0);
        ::pthread_attr_destroy(&attr);
        REQUIRE(size == s.stack_size);
    }
}

TEST_CASE("a worker pinned to a CPU runs only there", "[settings]") {
    const int cpu = first_allowed_cpu();
    REQUIRE(cpu >= 0);
    weft::settings s;
    s.worker_cpus = {cpu, -1};
    weft::executor<2, 64> ex(s);
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(::pthread_getaffinity_np(ex.native_handle(0), sizeof set, &set) == 0);
    REQUIRE(CPU_COUNT(&set) == 1);
    REQUIRE(CPU_ISSET(static_cast<std::size_t>(cpu), &set));
    // The unpinned worker keeps the process's mask.
    cpu_set_t process;
    CPU_ZERO(&process);
    REQUIRE(::sched_getaffinity(0, sizeof process, &process) == 0);
    CPU_ZERO(&set);
    REQUIRE(::pthread_getaffinity_np(ex.native_handle(1), sizeof set, &set) == 0);
    REQUIRE(CPU_EQUAL(&set, &process));
    // And pinned tasks still run.
    REQUIRE(ex.block_on([]() -> weft::task<int> { co_return 5; }()) == 5);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("affinity to a CPU that does not exist is invalid_argument, and no thread is left behind",
          "[settings][errors]") {
    weft::settings s;
    s.worker_cpus = {-1, CPU_SETSIZE + 5};
    try {
        weft::executor<2, 64> ex(s);
        FAIL("the executor started with an impossible CPU");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::invalid_argument);
        REQUIRE(std::string(e.what()).find("worker 1") != std::string::npos);
    }
}

TEST_CASE("a stack below the platform minimum is invalid_argument", "[settings][errors]") {
    weft::settings s;
    s.stack_size = 1024;
    using small_executor = weft::executor<1, 64>;
    REQUIRE_THROWS_AS(small_executor(s), weft::error);
}
#endif
