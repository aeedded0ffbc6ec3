// expect: with Options::queue_order = lifo the local queue size must be at most 16384
#include <weft/weft.hpp>

struct lifo_options : weft::default_options {
    static constexpr weft::local_queue_order queue_order = weft::local_queue_order::lifo;
};

int main() { weft::executor<2, 32768, lifo_options> ex; }
