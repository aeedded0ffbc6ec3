// async_fd: readiness of pipes, socket pairs, eventfd and timerfd; clear
// errors for bad descriptors, a full registration slab, a descriptor closed
// while awaited, two waiters on one direction; aborted waiters leave nothing
// behind; and I/O keeps flowing while one worker is blocked.
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <array>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/catch.hpp"
#include "support/util.hpp"

using namespace std::chrono_literals;

namespace {

struct two_sources : weft::default_options {
    static constexpr std::uint32_t max_io_sources = 2;
};

// A pipe whose ends close with it.
struct pipe_pair {
    int read_end = -1;
    int write_end = -1;
    pipe_pair() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        read_end = fds[0];
        write_end = fds[1];
    }
    ~pipe_pair() {
        ::close(read_end);
        ::close(write_end);
    }
};

struct socket_pair {
    int a = -1;
    int b = -1;
    socket_pair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        a = fds[0];
        b = fds[1];
    }
    ~socket_pair() {
        ::close(a);
        ::close(b);
    }
};

std::span<const std::byte> bytes_of(const char* text) {
    return {reinterpret_cast<const std::byte*>(text), std::strlen(text)};
}

} // namespace

TEST_CASE("a pipe read waits for data written later by another task", "[io]") {
    weft::executor<2> ex;
    pipe_pair p;
    const std::string got = ex.block_on([&]() -> weft::task<std::string> {
        auto in = weft::async_fd::open(p.read_end);
        REQUIRE(in.has_value());
        auto writer = weft::spawn([&]() -> weft::task<> {
            co_await weft::sleep_for(5ms);
            auto out = weft::async_fd::open(p.write_end);
            (void)co_await out->write(bytes_of("hello"));
        });
        std::array<std::byte, 16> buf{};
        auto n = co_await in->read(buf);
        co_await writer;
        REQUIRE(n.has_value());
        co_return std::string(reinterpret_cast<const char*>(buf.data()), *n);
    }());
    REQUIRE(got == "hello");
    REQUIRE(ex.metrics().io_sources == 0);
}

TEST_CASE("a million bytes through a socket pair arrive intact (readiness clears and re-arms)", "[io]") {
    weft::executor<2> ex;
    socket_pair s;
    const std::size_t total = weft_test::scaled(1'000'000);
    const bool intact = ex.block_on([&]() -> weft::task<bool> {
        auto reader = weft::spawn([&]() -> weft::task<bool> {
            auto in = weft::async_fd::open(s.b);
            std::vector<std::byte> buf(4096);
            std::size_t seen = 0;
            bool ok = true;
            while (seen < total) {
                auto n = co_await in->read(buf);
                if (!n || *n == 0) {
                    co_return false;
                }
                for (std::size_t i = 0; i < *n; ++i) {
                    ok = ok && buf[i] == static_cast<std::byte>((seen + i) % 251);
                }
                seen += *n;
            }
            co_return ok;
        });
        auto out = weft::async_fd::open(s.a);
        std::vector<std::byte> chunk(7000);
        for (std::size_t sent = 0; sent < total;) {
            const std::size_t len = std::min(chunk.size(), total - sent);
            for (std::size_t i = 0; i < len; ++i) {
                chunk[i] = static_cast<std::byte>((sent + i) % 251);
            }
            auto n = co_await out->write(std::span(chunk).first(len));
            REQUIRE(n.has_value());
            sent += *n;
        }
        co_return co_await reader;
    }());
    REQUIRE(intact);
}

TEST_CASE("registering a bad descriptor gives a clear error", "[io]") {
    weft::executor<1> ex;
    ex.block_on([]() -> weft::task<> {
        auto bad = weft::async_fd::open(-1);
        REQUIRE_FALSE(bad.has_value());
        REQUIRE(bad.error() == std::errc::bad_file_descriptor);

        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        ::close(fds[0]);
        ::close(fds[1]);
        auto closed = weft::async_fd::open(fds[0]);
        REQUIRE(closed.error() == std::errc::bad_file_descriptor);

        const int file = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        auto regular = weft::async_fd::open(file); // epoll refuses regular files
        REQUIRE(regular.error() == std::errc::operation_not_permitted);
        ::close(file);

        pipe_pair p;
        auto once = weft::async_fd::open(p.read_end);
        REQUIRE(once.has_value());
        auto twice = weft::async_fd::open(p.read_end);
        REQUIRE(twice.error() == std::errc::file_exists);
        co_return;
    }());
    REQUIRE(ex.metrics().io_sources == 0);
}

TEST_CASE("a full registration slab gives capacity_exhausted, and frees up", "[io]") {
    weft::executor<1, 256, two_sources> ex;
    ex.block_on([]() -> weft::task<> {
        pipe_pair p;
        pipe_pair q;
        auto a = weft::async_fd::open(p.read_end);
        auto b = weft::async_fd::open(p.write_end);
        REQUIRE(a.has_value());
        REQUIRE(b.has_value());
        auto c = weft::async_fd::open(q.read_end);
        REQUIRE(c.error() == weft::errc::capacity_exhausted);
        a->close();
        auto d = weft::async_fd::open(q.read_end);
        REQUIRE(d.has_value());
        co_return;
    }());
}

TEST_CASE("closing an async_fd wakes the task waiting on it with errc::closed", "[io]") {
    weft::executor<2> ex;
    pipe_pair p;
    const auto r = ex.block_on([&]() -> weft::task<weft::result<std::size_t>> {
        auto in = weft::async_fd::open(p.read_end);
        auto closer = weft::spawn([&]() -> weft::task<> {
            co_await weft::sleep_for(5ms);
            in->close();
        });
        std::array<std::byte, 4> buf{};
        auto n = co_await in->read(buf);
        co_await closer;
        co_return n;
    }());
    REQUIRE_FALSE(r.has_value());
    REQUIRE(r.error() == weft::errc::closed);
}

TEST_CASE("a second task waiting on the same direction gets errc::busy", "[io]") {
    weft::executor<2> ex;
    pipe_pair p;
    ex.block_on([&]() -> weft::task<> {
        auto in = weft::async_fd::open(p.read_end);
        std::atomic<bool> waiting{false};
        auto first = weft::spawn([&]() -> weft::task<weft::result<void>> {
            waiting.store(true);
            co_return co_await in->readable();
        });
        while (!waiting.load()) {
            co_await weft::sleep_for(1ms);
        }
        co_await weft::sleep_for(2ms); // the first is registered by now
        auto second = co_await in->readable();
        REQUIRE(second.error() == weft::errc::busy);
        REQUIRE(::write(p.write_end, "x", 1) == 1);
        auto woke = co_await first;
        REQUIRE(woke.has_value());
    }());
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("aborting a task waiting on a descriptor frees its waiter slot", "[io]") {
    weft::executor<2> ex;
    pipe_pair p;
    ex.block_on([&]() -> weft::task<> {
        auto in = weft::async_fd::open(p.read_end);
        auto stuck = weft::spawn([&]() -> weft::task<> { (void)co_await in->readable(); });
        co_await weft::sleep_for(5ms);
        stuck.abort();
        REQUIRE_THROWS_AS(co_await stuck, weft::error);
        REQUIRE(::write(p.write_end, "y", 1) == 1);
        auto again = co_await in->readable(); // not busy: the aborted waiter is gone
        REQUIRE(again.has_value());
    }());
}
#endif

TEST_CASE("eventfd and timerfd work through async_fd", "[io]") {
    weft::executor<2> ex;
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    REQUIRE(efd >= 0);
    REQUIRE(tfd >= 0);
    std::atomic<int> failed_writes{0}; // counted, not REQUIREd: Catch2 is not thread-safe
    const std::uint64_t sum = ex.block_on([&]() -> weft::task<std::uint64_t> {
        auto events = weft::async_fd::open(efd);
        auto timer = weft::async_fd::open(tfd);
        auto poster = weft::spawn([&]() -> weft::task<> {
            for (int i = 0; i < 3; ++i) {
                co_await weft::sleep_for(1ms);
                const std::uint64_t one = 1;
                if (::write(efd, &one, sizeof one) != sizeof one) {
                    failed_writes.fetch_add(1);
                }
            }
        });
        std::uint64_t got = 0;
        while (got < 3) {
            std::uint64_t value = 0;
            auto n = co_await events->read({reinterpret_cast<std::byte*>(&value), sizeof value});
            REQUIRE(n.has_value());
            got += value;
        }
        co_await poster;
        itimerspec spec{};
        spec.it_value.tv_nsec = 2'000'000;
        REQUIRE(::timerfd_settime(tfd, 0, &spec, nullptr) == 0);
        std::uint64_t expirations = 0;
        auto n = co_await timer->read({reinterpret_cast<std::byte*>(&expirations), sizeof expirations});
        REQUIRE(n.has_value());
        co_return got + expirations;
    }());
    REQUIRE(failed_writes.load() == 0);
    REQUIRE(sum == 4);
    ::close(efd);
    ::close(tfd);
}

TEST_CASE("a worker blocked for 500 ms does not stop a socket echo on the other", "[io][stall]") {
    weft::executor<2> ex;
    socket_pair s;
    std::atomic<std::int64_t> blocker_end{0};
    std::atomic<std::int64_t> echo_end{0};
    std::atomic<int> echoed{0};
    const auto since = [start = weft::clock::now()] {
        return std::chrono::duration_cast<std::chrono::microseconds>(weft::clock::now() - start).count();
    };
    auto server = ex.spawn([&]() -> weft::task<> {
        auto end = weft::async_fd::open(s.b);
        std::array<std::byte, 64> buf{};
        for (;;) {
            auto n = co_await end->read(buf);
            if (!n || *n == 0) {
                co_return;
            }
            (void)co_await end->write(std::span(buf).first(*n));
        }
    });
    // The blocker is woken by a timer, like the driver's sleeper would be.
    auto blocker = ex.spawn([&]() -> weft::task<> {
        co_await weft::sleep_for(10ms);
        std::this_thread::sleep_for(500ms);
        blocker_end.store(since());
    });
    auto client = ex.spawn([&]() -> weft::task<> {
        auto end = weft::async_fd::open(s.a);
        co_await weft::sleep_for(30ms); // the blocker is blocking now
        std::array<std::byte, 1> byte{};
        for (int i = 0; i < 50; ++i) {
            byte[0] = static_cast<std::byte>(i);
            (void)co_await end->write(byte);
            auto n = co_await end->read(byte);
            if (n && *n == 1 && byte[0] == static_cast<std::byte>(i)) {
                echoed.fetch_add(1);
            }
        }
        echo_end.store(since());
        end->close();
        ::shutdown(s.a, SHUT_RDWR);
    });
    client.get();
    blocker.get();
    server.get();
    REQUIRE(echoed.load() == 50);
    REQUIRE(echo_end.load() < blocker_end.load());
}

namespace {

// A socket on 127.0.0.1 with an OS-chosen port, and that address.
int loopback_socket(int type, sockaddr_in& address) {
    const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    return fd;
}

// How often read_with runs its operation while nothing arrives for 20 ms:
// about once when readiness is cleared as it should be, tens of thousands
// of times when a bit that nothing clears makes the wait spin.
weft::task<long> operations_while_idle(weft::async_fd& fd) {
    long calls = 0;
    std::array<std::byte, 64> buf{};
    auto r = co_await weft::timeout(20ms, fd.read_with([&]() noexcept {
        ++calls;
        return ::recv(fd.native_handle(), buf.data(), buf.size(), 0);
    }));
    REQUIRE(r.error() == weft::errc::timed_out);
    co_return calls;
}

} // namespace

TEST_CASE("a socket error is consumed by the receive that reports it (no spinning after it)", "[io]") {
    weft::executor<2> ex;
    sockaddr_in nobody{};
    ::close(loopback_socket(SOCK_DGRAM, nobody)); // a port nobody listens on any more
    sockaddr_in self{};
    const int fd = loopback_socket(SOCK_DGRAM, self);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&nobody), sizeof nobody) == 0);
    const long calls = ex.block_on([&]() -> weft::task<long> {
        auto io = weft::async_fd::open(fd);
        REQUIRE(::send(fd, "x", 1, 0) == 1); // answered by ICMP port unreachable: EPOLLERR
        std::array<std::byte, 8> buf{};
        auto refused =
            co_await io->read_with([&]() noexcept { return ::recv(fd, buf.data(), buf.size(), 0); });
        REQUIRE(refused.error() == std::errc::connection_refused);
        co_return co_await operations_while_idle(*io);
    }());
    ::close(fd);
    REQUIRE(calls <= 3);
}

TEST_CASE("an urgent (out-of-band) byte does not make later reads spin", "[io]") {
    weft::executor<2> ex;
    sockaddr_in address{};
    const int listener = loopback_socket(SOCK_STREAM, address);
    REQUIRE(::listen(listener, 1) == 0);
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(client, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(server >= 0);
    const long calls = ex.block_on([&]() -> weft::task<long> {
        auto io = weft::async_fd::open(server);
        REQUIRE(::send(client, "!", 1, MSG_OOB) == 1); // EPOLLPRI on the server side
        REQUIRE((co_await io->readable()).has_value());
        co_return co_await operations_while_idle(*io);
    }());
    ::close(server);
    ::close(client);
    ::close(listener);
    REQUIRE(calls <= 3);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("an executor that cannot create its epoll instance says so", "[io]") {
#if defined(WEFT_TEST_SANITIZED)
    // The sanitizer runtimes open files to check and report (UBSan's vptr
    // check reads /proc/self/maps): with no descriptor left they fail first.
    SUCCEED("skipped under sanitizers");
    return;
#endif
    // In a child: with no descriptor left to open, epoll_create1 fails.
    const weft_test::child_report child = weft_test::run_in_child([] {
        // Lower the limit to just above a descriptor we own, then fill every
        // free number below it (stdin may be closed: do not rely on it).
        const int base = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        rlimit limit{};
        limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(base + 1);
        if (base < 0 || ::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            return 3;
        }
        while (::dup(base) >= 0) {
        }
        try {
            weft::executor<1> ex;
            return 1; // constructed without an I/O driver
        } catch (const weft::error& e) {
            const bool clear =
                e.code() == weft::errc::capacity_exhausted && std::strstr(e.what(), "I/O driver") != nullptr;
            return clear ? 0 : 2;
        }
    });
    REQUIRE(child.exit_code == 0);
}
#endif

TEST_CASE("timeout wraps an async_fd readiness wait", "[io]") {
    weft::executor<2> ex;
    pipe_pair p;
    ex.block_on([&]() -> weft::task<> {
        auto in = weft::async_fd::open(p.read_end);
        auto idle = co_await weft::timeout(2ms, in->readable());
        REQUIRE(idle.error() == weft::errc::timed_out);
        REQUIRE(::write(p.write_end, "z", 1) == 1);
        auto ready = co_await weft::timeout(1h, in->readable()); // not busy: the timed-out wait is gone
        REQUIRE(ready.has_value());
        REQUIRE(ready->has_value());
    }());
}
