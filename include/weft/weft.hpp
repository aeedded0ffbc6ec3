// weft/weft.hpp: the umbrella header. Include this (or the generated single
// header single_include/weft/weft.hpp) and you have all of weft's public API.
#pragma once

#include "blocking.hpp"
#include "config.hpp"
#include "error.hpp"
#include "executor.hpp"
#include "io.hpp"
#include "metrics.hpp"
#include "net.hpp"
#include "result.hpp"
#include "sync.hpp"
#include "task.hpp"
#include "time.hpp"
#include "version.hpp"

#include "detail/attributes_end.hpp"
