// The reactor on its own: readiness words keep their registration's
// generation through events and clears, and a key whose registration is gone
// never sees (or clears) the readiness of the slot's next registration.
#include <weft/detail/reactor.hpp>

#include <array>
#include <cstdint>

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "support/catch.hpp"

namespace {

using weft::detail::io_direction;
using weft::detail::io_key;
using weft::detail::reactor;
namespace io_ready = weft::detail::io_ready;

struct pipe_fds {
    int fds[2] = {-1, -1};
    pipe_fds() { REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0); }
    ~pipe_fds() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
};

std::size_t poll_now(reactor& r) {
    return r.poll([](int epfd, epoll_event* events, int max) { return ::epoll_wait(epfd, events, max, 0); });
}

std::uint32_t generation_of(std::uint64_t word) { return static_cast<std::uint32_t>(word >> 32); }

} // namespace

TEST_CASE("an event keeps the registration's generation in its readiness word", "[reactor]") {
    std::array<weft::detail::io_registration, 1> slots{};
    std::array<epoll_event, 8> events{};
    reactor r(slots, events);
    REQUIRE(r.ok());
    pipe_fds first;
    io_key old_key{};
    REQUIRE(r.register_fd(first.fds[0], old_key) == 0);
    r.deregister(old_key); // the slot's generation moves on
    pipe_fds second;
    io_key key{};
    REQUIRE(r.register_fd(second.fds[0], key) == 0);
    REQUIRE(key.slot == old_key.slot);
    REQUIRE(key.generation != old_key.generation);

    REQUIRE(::write(second.fds[1], "x", 1) == 1);
    REQUIRE(poll_now(r) == 1);
    const std::uint64_t word = r.readiness(key);
    REQUIRE((word & io_ready::readable) != 0);
    REQUIRE(generation_of(word) == key.generation);

    // The old key sees a registration that is gone, and cannot clear the new one's readiness.
    REQUIRE(r.readiness(old_key) == io_ready::shutdown);
    r.clear_readiness(old_key, r.readiness(old_key), io_direction::read);
    REQUIRE((r.readiness(key) & io_ready::readable) != 0);

    // The live key clears what it saw; a newer event is not erased by a stale clear.
    r.clear_readiness(key, word, io_direction::read);
    REQUIRE((r.readiness(key) & io_ready::readable) == 0);
    REQUIRE(::write(second.fds[1], "y", 1) == 1);
    REQUIRE(poll_now(r) == 1);
    r.clear_readiness(key, word, io_direction::read); // the word from before the new event
    REQUIRE((r.readiness(key) & io_ready::readable) != 0);
    REQUIRE(generation_of(r.readiness(key)) == key.generation);
    r.deregister(key);
}
