//===----------------------------------------------------------------------===//
// haduck_assert.hpp: an always-on assertion for invariants of the ring and the bitmap.
// A violated invariant is a bug in haduck, so it aborts loudly rather than corrupt a replica.
//===----------------------------------------------------------------------===//
#pragma once
#include <cstdio>
#include <cstdlib>

#define HADUCK_ASSERT(condition)                                                                                      \
	do {                                                                                                             \
		if (!(condition)) {                                                                                          \
			std::fprintf(stderr, "haduck: assertion failed: %s at %s:%d\n", #condition, __FILE__, __LINE__);          \
			std::abort();                                                                                            \
		}                                                                                                            \
	} while (0)
