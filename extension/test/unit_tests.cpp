//===----------------------------------------------------------------------===//
// unit_tests.cpp: the dirty bitmap, the event ring, the generation queue and snapshot overlays (and, from
// tracker_tests.cpp, the tracker), without DuckDB. Prints one line of totals
// ("N passed, N failed") that tools/test.ts adds to the run's totals.
//===----------------------------------------------------------------------===//
#include "dirty_bitmap.hpp"
#include "generation_queue.hpp"
#include "ring.hpp"
#include "snapshot.hpp"
#include "unit_test.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
	using haduck::Generation;
	using haduck::GenerationQueue;
	auto generation = [](uint32_t file_id, uint64_t iteration, std::vector<uint64_t> blocks) {
		Generation g;
		g.file_id = file_id;
		g.iteration = iteration;
		g.blocks = std::move(blocks);
		return g;
	};
	Run("queue: a released generation answers 1 once, then -1; sequence numbers grow", [&](const std::string &t) {
		auto queue = std::make_unique<GenerationQueue>();
		auto first = queue->Publish(generation(1, 5, {1, 2}), true);
		auto second = queue->Publish(generation(2, 9, {3}), true);
		Check(second > first, t, "sequence numbers do not grow");
		Generation copy;
		Check(queue->Copy(first, copy) && copy.iteration == 5 && copy.blocks.size() == 2, t, "copy differs");
		Check(queue->Release(first) == 1, t, "release of a protected generation is not 1");
		Check(queue->Release(first) == -1, t, "a second release is not -1");
		Check(queue->Pending() == std::vector<uint64_t> {second}, t, "pending list wrong");
	});
	Run("queue: the hold waits for the release, and times out into an abandoned generation", [&](const std::string &t) {
		auto queue = std::make_unique<GenerationQueue>();
		auto seq = queue->Publish(generation(1, 1, {7}), true);
		std::atomic<uint64_t> announced {0};
		std::thread releaser([&] {
			while (announced.load() == 0) {
				std::this_thread::yield();
			}
			queue->Release(seq);
		});
		Check(queue->Hold(1, 60000, [&](uint64_t waiting) { announced.store(waiting); }), t, "hold timed out");
		releaser.join();
		Check(announced.load() == seq, t, "the wait announced another generation");
		Check(queue->Hold(1, 60000, [&](uint64_t) { Check(false, t, "waited with nothing outstanding"); }), t,
		      "hold without an outstanding generation failed");
		auto late = queue->Publish(generation(1, 2, {8}), true);
		Check(!queue->Hold(1, 5, [](uint64_t) {}), t, "hold did not time out");
		Check(queue->Stats().timeouts == 1, t, "timeout not counted");
		Check(queue->Release(late) == 0, t, "an abandoned generation did not answer 0");
	});
	Run("queue: a huge hold is clamped, not overflowed into an instant timeout", [&](const std::string &t) {
		auto queue = std::make_unique<GenerationQueue>();
		auto seq = queue->Publish(generation(1, 1, {1}), true);
		std::thread releaser([&] {
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
			queue->Release(seq);
		});
		Check(queue->Hold(1, UINT64_MAX, [](uint64_t) {}), t, "UINT64_MAX hold did not wait for the release");
		releaser.join();
	});
	Run("queue: beyond 64 pending per file, the oldest are coalesced into the next (union of blocks)",
	    [&](const std::string &t) {
		    auto queue = std::make_unique<GenerationQueue>();
		    std::vector<uint64_t> seqs;
		    for (uint64_t i = 0; i < GenerationQueue::PENDING_PER_FILE_MAX + 3; i++) {
			    seqs.push_back(queue->Publish(generation(1, i, {i, 1000 + i}), false));
		    }
		    queue->Publish(generation(2, 1, {5}), false); // another file is left alone
		    Check(queue->Pending().size() == GenerationQueue::PENDING_PER_FILE_MAX + 1, t, "not bounded per file");
		    for (int i = 0; i < 3; i++) {
			    Check(queue->Release(seqs[i]) == 0, t, "a coalesced generation did not answer 0");
		    }
		    Generation merged;
		    Check(queue->Copy(seqs[3], merged), t, "the receiving generation is gone");
		    std::vector<uint64_t> want {0, 1, 2, 3, 1000, 1001, 1002, 1003};
		    Check(merged.blocks == want, t, "coalesced blocks are not the union");
	    });
	Run("queue: without a consumer, 100000 checkpoints leave bounded state", [&](const std::string &t) {
		auto queue = std::make_unique<GenerationQueue>();
		for (uint64_t i = 0; i < 100000; i++) {
			queue->Publish(generation(1, i, {i % 50}), false);
		}
		Check(queue->Pending().size() == GenerationQueue::PENDING_PER_FILE_MAX, t, "pending grew");
		Check(queue->Release(1) == -1, t, "the oldest abandoned sequence number was not forgotten");
	});
	Run("queue: a removed file's generations are dropped; their release answers 0", [&](const std::string &t) {
		auto queue = std::make_unique<GenerationQueue>();
		auto seq = queue->Publish(generation(1, 3, {1}), true);
		auto other = queue->Publish(generation(2, 3, {1}), true);
		queue->ForgetFile(1);
		Check(queue->Release(seq) == 0, t, "release after forget is not 0");
		Check(queue->Hold(1, 60000, [](uint64_t) {}), t, "a forgotten file still holds");
		Check(queue->Release(other) == 1, t, "another file's generation was touched");
	});
	// Snapshot overlays over a real file in /tmp: pages are filled with one byte, the page's "version".
	auto temp_path = [](const std::string &name) {
		return std::string("/tmp/haduck-unit-") + std::to_string(getpid()) + "-" + name;
	};
	auto write_pages = [](const std::string &path, uint64_t first, uint64_t count, uint8_t value) {
		int fd = open(path.c_str(), O_RDWR | O_CREAT, 0600);
		std::vector<uint8_t> bytes(count * haduck::Overlay::PAGE, value);
		if (pwrite(fd, bytes.data(), bytes.size(), off_t(first * haduck::Overlay::PAGE)) != ssize_t(bytes.size())) {
			throw std::runtime_error("pwrite failed");
		}
		close(fd);
	};
	Run("snapshot: an overlay keeps the base as it was, through overwrites, its own writes and cuts",
	    [&](const std::string &t) {
		    auto base = temp_path("base"), view = temp_path("view");
		    write_pages(base, 0, 16, 1);
		    auto &snapshots = haduck::Snapshots::Get();
		    snapshots.Open(base, view);
		    auto overlay = snapshots.Find(view);
		    Check(overlay && overlay->Size() == 16 * haduck::Overlay::PAGE, t, "wrong size");
		    // The base moves on: pages 2..5 to version 2, after the overlay kept them.
		    snapshots.BeforeBaseWritePath(base, 2 * haduck::Overlay::PAGE, 4 * haduck::Overlay::PAGE);
		    write_pages(base, 2, 4, 2);
		    // The overlay's own write, in part of page 8: the rest of the page stays the base's.
		    uint8_t three[100];
		    std::memset(three, 3, sizeof(three));
		    overlay->Write(three, sizeof(three), 8 * haduck::Overlay::PAGE + 50);
		    std::vector<uint8_t> all(16 * haduck::Overlay::PAGE);
		    overlay->Read(all.data(), all.size(), 0);
		    for (uint64_t i = 0; i < all.size(); i++) {
			    bool written = i >= 8 * haduck::Overlay::PAGE + 50 && i < 8 * haduck::Overlay::PAGE + 150;
			    Check(all[i] == (written ? 3 : 1), t, "byte " + std::to_string(i) + " is " + std::to_string(all[i]));
		    }
		    // The base is cut to 4 pages: the overlay still shows pages 4..15 (kept before the cut).
		    snapshots.BeforeBaseWritePath(base, 4 * haduck::Overlay::PAGE, UINT64_MAX);
		    if (truncate(base.c_str(), 4 * haduck::Overlay::PAGE) != 0) {
			    throw std::runtime_error("truncate failed");
		    }
		    overlay->Read(all.data(), all.size(), 0);
		    Check(all[12 * haduck::Overlay::PAGE] == 1 && all[3 * haduck::Overlay::PAGE] == 1, t, "cut base leaked");
		    // The overlay's own cut: beyond it reads zeros once the file grows again.
		    overlay->Truncate(10 * haduck::Overlay::PAGE);
		    overlay->Write(three, 1, 12 * haduck::Overlay::PAGE);
		    uint8_t byte = 9;
		    overlay->Read(&byte, 1, 11 * haduck::Overlay::PAGE);
		    Check(byte == 0, t, "a page past the overlay's cut showed the base");
		    Check(snapshots.Close(view) && !snapshots.Close(view), t, "close twice");
		    unlink(base.c_str());
		    unlink(view.c_str());
	    });
	Run("snapshot: readers racing a base that is rewritten see every page at its old version", [&](const std::string &t) {
		auto base = temp_path("race"), view = temp_path("race-view");
		write_pages(base, 0, 64, 1);
		auto &snapshots = haduck::Snapshots::Get();
		snapshots.Open(base, view);
		auto overlay = snapshots.Find(view);
		std::atomic<bool> done {false};
		std::atomic<int> wrong {0};
		std::vector<std::thread> readers;
		for (int r = 0; r < 3; r++) {
			readers.emplace_back([&, r] {
				std::vector<uint8_t> page(3 * haduck::Overlay::PAGE);
				uint64_t i = r;
				while (!done.load()) {
					uint64_t first = (i++ * 7) % 62;
					overlay->Read(page.data(), page.size(), first * haduck::Overlay::PAGE);
					for (auto b : page) {
						if (b != 1) {
							wrong++;
							break;
						}
					}
				}
			});
		}
		for (uint8_t version = 2; version < 40; version++) {
			for (uint64_t first = 0; first < 64; first += 8) {
				snapshots.BeforeBaseWritePath(base, first * haduck::Overlay::PAGE, 8 * haduck::Overlay::PAGE);
				write_pages(base, first, 8, version);
			}
		}
		done = true;
		for (auto &reader : readers) {
			reader.join();
		}
		Check(wrong.load() == 0, t, std::to_string(wrong.load()) + " reads saw a newer version");
		Check(snapshots.stats.bytes_preserved.load() >= 64 * haduck::Overlay::PAGE, t, "nothing was kept");
		snapshots.Close(view);
		unlink(base.c_str());
		unlink(view.c_str());
	});
	TrackerTests();
	std::printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
