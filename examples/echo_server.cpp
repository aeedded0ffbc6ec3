// A TCP echo server: every connection gets back what it sends, each served
// by its own task. Stop it with Ctrl-C.
//
//   ./echo_server [port]        (default 7000; 0 lets the OS choose)
//   printf 'hello\n' | nc -q1 127.0.0.1 7000
#include <weft/weft.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace {

// Up to 1,024 connections at once (each is one reactor registration).
struct server_options : weft::default_options {
    static constexpr std::uint32_t max_io_sources = 1024;
};

weft::task<> echo(weft::tcp_stream stream) {
    (void)stream.set_nodelay(true);
    std::array<std::byte, 4096> buffer;
    for (;;) {
        auto n = co_await stream.read(buffer);
        if (!n || *n == 0) {
            co_return; // an error, or the peer closed its side
        }
        // Named, not awaited inside the if: g++ 12 mishandles a co_await in
        // an if condition whose branch co_returns (see README, compilers).
        const auto written = co_await stream.write_all(std::span(buffer).first(*n));
        if (!written) {
            co_return;
        }
    }
}

weft::task<int> serve(std::uint16_t port) {
    auto listener = weft::tcp_listener::bind(weft::socket_address::ipv4_any(port));
    if (!listener) {
        std::fprintf(stderr, "cannot listen on port %u: %s\n", port, listener.error().message().c_str());
        co_return 1;
    }
    std::printf("echo server listening on %s\n", listener->local_address()->to_string().c_str());
    std::fflush(stdout);
    for (;;) {
        auto stream = co_await listener->accept();
        if (!stream) {
            std::fprintf(stderr, "accept: %s\n", stream.error().message().c_str());
            continue; // e.g. out of descriptors: the connection waits in the queue
        }
        weft::spawn(echo(std::move(*stream))).detach();
    }
}

} // namespace

int main(int argc, char** argv) {
    const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 7000);
    weft::executor<2, 256, server_options> ex;
    return ex.block_on(serve(port));
}
