// A minimal HTTP/1.1 server answering every request with "Hello, world!",
// keeping connections alive: enough for curl and wrk.
//
//   ./http_hello [port] [workers]     (defaults: 8080, 2 workers)
//   curl http://127.0.0.1:8080/
//   wrk -t2 -c64 -d10s http://127.0.0.1:8080/
#include <weft/weft.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

struct server_options : weft::default_options {
    static constexpr std::uint32_t max_io_sources = 1024;
};

constexpr std::string_view response = "HTTP/1.1 200 OK\r\n"
                                      "Content-Type: text/plain\r\n"
                                      "Content-Length: 13\r\n"
                                      "\r\n"
                                      "Hello, world!";

// Serves one connection: answers each complete request (pipelined ones
// too) and closes when the client does, or after "Connection: close".
weft::task<> serve_connection(weft::tcp_stream stream) {
    (void)stream.set_nodelay(true);
    std::array<char, 8192> buffer;
    std::size_t filled = 0;
    for (;;) {
        auto n = co_await stream.read(std::as_writable_bytes(std::span(buffer).subspan(filled)));
        if (!n || *n == 0) {
            co_return;
        }
        filled += *n;
        std::string_view pending(buffer.data(), filled);
        std::size_t answered = 0;
        bool close_after = false;
        for (std::size_t end; (end = pending.find("\r\n\r\n")) != std::string_view::npos;) {
            const std::string_view head = pending.substr(0, end);
            close_after = close_after || head.find("Connection: close") != std::string_view::npos;
            pending.remove_prefix(end + 4);
            ++answered;
        }
        for (std::size_t i = 0; i < answered; ++i) {
            const auto written =
                co_await stream.write_all(std::as_bytes(std::span(response.data(), response.size())));
            if (!written) { // named first: see README, compilers (g++ 12)
                co_return;
            }
        }
        if (close_after) {
            co_return;
        }
        // Keep the unanswered tail (a request cut in two by the network).
        std::memmove(buffer.data(), pending.data(), pending.size());
        filled = pending.size();
        if (filled == buffer.size()) {
            co_return; // a request head larger than the buffer: give up on it
        }
    }
}

weft::task<int> serve(std::uint16_t port) {
    auto listener = weft::tcp_listener::bind(weft::socket_address::ipv4_any(port), 1024);
    if (!listener) {
        std::fprintf(stderr, "cannot listen on port %u: %s\n", port, listener.error().message().c_str());
        co_return 1;
    }
    std::printf("http_hello listening on %s\n", listener->local_address()->to_string().c_str());
    std::fflush(stdout);
    for (;;) {
        auto stream = co_await listener->accept();
        if (stream) {
            weft::spawn(serve_connection(std::move(*stream))).detach();
        }
    }
}

template <std::uint32_t Workers>
int run(std::uint16_t port) {
    weft::executor<Workers, 256, server_options> ex;
    return ex.block_on(serve(port));
}

} // namespace

int main(int argc, char** argv) {
    const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 8080);
    switch (argc > 2 ? std::atoi(argv[2]) : 2) {
    case 1: return run<1>(port);
    case 2: return run<2>(port);
    case 4: return run<4>(port);
    default: std::fprintf(stderr, "workers must be 1, 2 or 4\n"); return 2;
    }
}
