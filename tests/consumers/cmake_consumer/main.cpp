// What a user's first program does: include weft, run a task, print.
#include <weft/weft.hpp>

#include <cstdio>

weft::task<int> answer() {
    co_await weft::yield_now();
    co_return 42;
}

int main() {
    weft::executor<2> ex;
    const int value = ex.block_on(answer());
    std::printf("weft %s: %d\n", weft::version().text, value);
    return value == 42 ? 0 : 1;
}
