//===----------------------------------------------------------------------===//
// ring_bench.cpp: events per second through haduck's lock-free ring (the one DuckDB's threads feed),
// next to a mutex-guarded std::deque doing the same work in the same run. P producer threads push
// N events each; one consumer pops them all. A full ring is not a failure for the producers (they
// retry here, to move every event); DuckDB's threads never retry, they set the overflow flag.
// Prints one JSON object. Built and run by bench/ring_throughput.ts.
//===----------------------------------------------------------------------===//
#include "ring.hpp"

#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

static double Seconds(Clock::time_point since) {
	return std::chrono::duration<double>(Clock::now() - since).count();
}

static double RingRun(int producers, uint64_t per_producer, uint64_t &full) {
	auto ring = std::make_unique<haduck_ring_t>();
	haduck::RingInit(*ring);
	std::vector<std::thread> threads;
	std::atomic<uint64_t> full_count {0};
	auto started = Clock::now();
	for (int p = 0; p < producers; p++) {
		threads.emplace_back([&, p] {
			haduck::RingEvent event;
			event.type = 1;
			event.file_id = uint32_t(p);
			for (uint64_t i = 0; i < per_producer; i++) {
				event.a = i;
				while (!haduck::RingPush(*ring, event)) {
					full_count.fetch_add(1, std::memory_order_relaxed);
					std::this_thread::yield();
				}
			}
		});
	}
	uint64_t total = uint64_t(producers) * per_producer;
	uint64_t popped = 0;
	haduck::RingEvent out;
	while (popped < total) {
		if (haduck::RingPop(*ring, out)) {
			popped++;
		} else {
			std::this_thread::yield();
		}
	}
	for (auto &thread : threads) {
		thread.join();
	}
	full = full_count.load();
	return double(total) / Seconds(started);
}

static double MutexRun(int producers, uint64_t per_producer) {
	std::mutex lock;
	std::deque<haduck::RingEvent> queue;
	std::vector<std::thread> threads;
	auto started = Clock::now();
	for (int p = 0; p < producers; p++) {
		threads.emplace_back([&, p] {
			haduck::RingEvent event;
			event.type = 1;
			event.file_id = uint32_t(p);
			for (uint64_t i = 0; i < per_producer; i++) {
				event.a = i;
				std::lock_guard<std::mutex> guard(lock);
				queue.push_back(event);
			}
		});
	}
	uint64_t total = uint64_t(producers) * per_producer;
	uint64_t popped = 0;
	while (popped < total) {
		std::lock_guard<std::mutex> guard(lock);
		while (!queue.empty()) {
			queue.pop_front();
			popped++;
		}
	}
	for (auto &thread : threads) {
		thread.join();
	}
	return double(total) / Seconds(started);
}

int main(int argc, char **argv) {
	uint64_t per_producer = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000000;
	std::printf("{\"perProducer\": %llu, \"runs\": [", (unsigned long long)per_producer);
	int producer_counts[] = {1, 2, 4};
	for (int index = 0; index < 3; index++) {
		int producers = producer_counts[index];
		uint64_t full = 0;
		double ring = RingRun(producers, per_producer, full);
		double mutex = MutexRun(producers, per_producer);
		std::printf("%s{\"producers\": %d, \"ringEventsPerSecond\": %.0f, \"mutexDequeEventsPerSecond\": %.0f, "
		            "\"ratio\": %.3f, \"ringFullRetries\": %llu}",
		            index ? ", " : "", producers, ring, mutex, ring / mutex, (unsigned long long)full);
	}
	std::printf("]}\n");
	return 0;
}
