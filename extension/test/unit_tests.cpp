//===----------------------------------------------------------------------===//
// unit_tests.cpp: the dirty bitmap and the event ring, without DuckDB. Prints one line of totals
// ("N passed, N failed") that tools/test.ts adds to the run's totals.
//===----------------------------------------------------------------------===//
#include "dirty_bitmap.hpp"
#include "ring.hpp"

#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static int passed = 0;
static int failed = 0;

static void Check(bool condition, const std::string &test, const std::string &what) {
	if (!condition) {
		throw std::runtime_error(test + ": " + what);
	}
}

static void Run(const std::string &name, const std::function<void(const std::string &)> &test) {
	try {
		test(name);
		passed++;
		std::printf("(pass) %s\n", name.c_str());
	} catch (std::exception &error) {
		failed++;
		std::printf("(fail) %s\n", error.what());
	}
}

int main() {
	using haduck::DirtyBitmap;
	Run("bitmap: random range marks match a model set, and drain empties it", [](const std::string &t) {
		std::mt19937_64 random(42);
		for (int round = 0; round < 20; round++) {
			auto bitmap = std::make_unique<DirtyBitmap>();
			std::set<uint64_t> model;
			for (int i = 0; i < 500; i++) {
				uint64_t first = random() % 200000;
				uint64_t last = first + random() % 300;
				bitmap->MarkRange(first, last);
				for (uint64_t b = first; b <= last; b++) {
					model.insert(b);
				}
			}
			Check(bitmap->Count() == model.size(), t, "count differs from model");
			for (uint64_t probe = 0; probe < 1000; probe++) {
				uint64_t block = random() % 200300;
				Check(bitmap->IsMarked(block) == (model.count(block) == 1), t, "IsMarked differs from model");
			}
			auto drained = bitmap->Drain();
			Check(std::vector<uint64_t>(model.begin(), model.end()) == drained, t, "drain differs from model");
			Check(bitmap->Count() == 0 && bitmap->Drain().empty(), t, "drain left marks behind");
		}
	});
	Run("bitmap: a mark beyond the maximum is refused, not wrapped", [](const std::string &t) {
		auto bitmap = std::make_unique<DirtyBitmap>();
		Check(!bitmap->Mark(DirtyBitmap::BLOCKS_MAX), t, "accepted a block past the bound");
		Check(bitmap->Mark(DirtyBitmap::BLOCKS_MAX - 1), t, "refused the last block");
		Check(bitmap->Drain() == std::vector<uint64_t> {DirtyBitmap::BLOCKS_MAX - 1}, t, "wrong drain");
	});
	Run("bitmap: 4 writers marking while a drainer drains lose no mark and count none twice", [](const std::string &t) {
		auto bitmap = std::make_unique<DirtyBitmap>();
		const uint64_t per_thread = 200000;
		std::atomic<bool> done {false};
		std::vector<uint64_t> seen(4 * per_thread, 0);
		std::thread drainer([&] {
			while (!done.load()) {
				for (auto block : bitmap->Drain()) {
					seen[block]++;
				}
			}
		});
		std::vector<std::thread> writers;
		for (uint64_t w = 0; w < 4; w++) {
			writers.emplace_back([&, w] {
				for (uint64_t i = 0; i < per_thread; i++) {
					bitmap->Mark(w * per_thread + i);
				}
			});
		}
		for (auto &writer : writers) {
			writer.join();
		}
		done.store(true);
		drainer.join();
		for (auto block : bitmap->Drain()) {
			seen[block]++;
		}
		for (uint64_t block = 0; block < seen.size(); block++) {
			Check(seen[block] == 1, t, "block " + std::to_string(block) + " seen " + std::to_string(seen[block]));
		}
	});
	Run("ring: events come out in order with their fields", [](const std::string &t) {
		auto ring = std::make_unique<haduck_ring_t>();
		haduck::RingInit(*ring);
		for (uint64_t round = 0; round < 3; round++) {
			for (uint64_t i = 0; i < 3000; i++) {
				haduck::RingEvent event;
				event.type = 1;
				event.file_id = uint32_t(i);
				event.a = i * 7;
				event.f = ~i;
				Check(haduck::RingPush(*ring, event), t, "push failed below capacity");
			}
			for (uint64_t i = 0; i < 3000; i++) {
				haduck::RingEvent event;
				Check(haduck::RingPop(*ring, event), t, "pop failed");
				Check(event.file_id == i && event.a == i * 7 && event.f == ~i, t, "fields differ");
			}
			haduck::RingEvent none;
			Check(!haduck::RingPop(*ring, none), t, "popped from an empty ring");
		}
	});
	Run("ring: a full ring refuses without blocking and raises the sticky overflow flag", [](const std::string &t) {
		auto ring = std::make_unique<haduck_ring_t>();
		haduck::RingInit(*ring);
		haduck::RingEvent event;
		for (uint64_t i = 0; i < HADUCK_RING_SLOT_COUNT; i++) {
			Check(haduck::RingPush(*ring, event), t, "push failed below capacity");
		}
		Check(ring->overflow == 0, t, "overflow set too early");
		Check(!haduck::RingPush(*ring, event), t, "push succeeded on a full ring");
		Check(ring->overflow == 1 && ring->overflow_count == 1, t, "overflow not raised");
		Check(haduck::RingPop(*ring, event), t, "pop failed");
		Check(haduck::RingPush(*ring, event), t, "push failed after a pop");
		Check(ring->overflow == 1, t, "overflow flag is not sticky");
	});
	Run("ring: 4 producers and 1 consumer: every accepted event arrives once, per-producer in order",
	    [](const std::string &t) {
		    auto ring = std::make_unique<haduck_ring_t>();
		    haduck::RingInit(*ring);
		    const uint64_t per_producer = 100000;
		    std::atomic<uint64_t> accepted {0};
		    std::atomic<int> producing {4};
		    std::vector<std::thread> producers;
		    for (uint32_t p = 0; p < 4; p++) {
			    producers.emplace_back([&, p] {
				    for (uint64_t i = 0; i < per_producer; i++) {
					    haduck::RingEvent event;
					    event.file_id = p;
					    event.a = i;
					    while (!haduck::RingPush(*ring, event)) {
						    std::this_thread::yield(); // retry on full: the test wants every event
					    }
					    accepted++;
				    }
				    producing--;
			    });
		    }
		    std::vector<uint64_t> next(4, 0);
		    uint64_t received = 0;
		    while (received < 4 * per_producer) {
			    haduck::RingEvent event;
			    if (!haduck::RingPop(*ring, event)) {
				    continue;
			    }
			    Check(event.file_id < 4 && event.a == next[event.file_id], t, "out of order or corrupt event");
			    next[event.file_id]++;
			    received++;
		    }
		    for (auto &producer : producers) {
			    producer.join();
		    }
		    Check(accepted.load() == received, t, "accepted and received differ");
	    });
	std::printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
