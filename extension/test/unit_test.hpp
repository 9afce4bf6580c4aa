//===----------------------------------------------------------------------===//
// unit_test.hpp: the C++ unit tests' harness: Run counts a test passed or failed, Check fails it.
//===----------------------------------------------------------------------===//
#pragma once
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>

inline int passed = 0;
inline int failed = 0;

inline void Check(bool condition, const std::string &test, const std::string &what) {
	if (!condition) {
		throw std::runtime_error(test + ": " + what);
	}
}

inline void Run(const std::string &name, const std::function<void(const std::string &)> &test) {
	try {
		test(name);
		passed++;
		std::printf("(pass) %s\n", name.c_str());
	} catch (std::exception &error) {
		failed++;
		std::printf("(fail) %s\n", error.what());
	}
}

//! tracker_tests.cpp
void TrackerTests();
