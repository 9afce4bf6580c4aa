//===----------------------------------------------------------------------===//
// unit_tests.cpp: the dirty bitmap, the event ring, the generation queue, the tracker and snapshot overlays, without DuckDB. Prints one line of totals
// ("N passed, N failed") that tools/test.ts adds to the run's totals.
//===----------------------------------------------------------------------===//
#include "dirty_bitmap.hpp"
#include "generation_queue.hpp"
#include "ring.hpp"
#include "snapshot.hpp"
#include "tracker.hpp"

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
	// The tracker as DuckDB drives it through haduck's file system: writes, a header, a sync.
	struct HeardGeneration {
		uint64_t iteration = 0;
		uint64_t header_block_count = 0;
		std::vector<uint64_t> blocks;
	};
	struct FakeListener : haduck::TrackerListener {
		std::vector<HeardGeneration> generations;
		int restarts = 0;
		std::vector<std::pair<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>>> wal_syncs;
		void OnGeneration(haduck::TrackedFile &, const haduck::Generation &generation) override {
			generations.push_back({generation.iteration, generation.header_block_count, generation.blocks});
		}
		void RestartIfGone(haduck::TrackedFile &) override {
			restarts++;
		}
		void OnHoldWaiting(haduck::TrackedFile &, uint64_t) override {
		}
		void OnWalSync(haduck::TrackedFile &, uint64_t, uint64_t size, uint64_t, uint64_t,
		               const std::vector<std::pair<uint64_t, uint64_t>> &runs) override {
			wal_syncs.emplace_back(size, runs);
		}
		void OnWalReset(haduck::TrackedFile &, uint64_t, uint64_t) override {
		}
	};
	static constexpr uint64_t BLOCK = 262144;
	auto write_header = [](haduck::TrackedFile &file, uint64_t slot, uint64_t iteration, uint64_t block_count) {
		std::vector<uint8_t> header(haduck::FILE_HEADER_SIZE, 0);
		std::memcpy(header.data() + 8, &iteration, 8);
		std::memcpy(header.data() + 32, &block_count, 8);
		std::memcpy(header.data() + 40, &BLOCK, 8);
		uint64_t offset = slot * haduck::FILE_HEADER_SIZE;
		haduck::Tracker::Get().BeforeWrite(file, offset, header.size());
		haduck::Tracker::Get().AfterWrite(file, header.data(), offset, header.size());
	};
	// A database as DuckDB creates one: the main header, both database headers, a sync (generation 0).
	auto new_database = [&](const std::string &path) {
		auto &tracker = haduck::Tracker::Get();
		auto file = tracker.Open(path);
		std::vector<uint8_t> main_header(haduck::FILE_HEADER_SIZE, 0);
		std::memcpy(main_header.data() + 8, "DUCK", 4);
		tracker.AfterWrite(*file, main_header.data(), 0, main_header.size());
		write_header(*file, 1, 0, 0);
		write_header(*file, 2, 0, 0);
		tracker.AfterSync(*file);
		return file;
	};
	// Whatever a test leaves set (a listener on its stack, an attached consumer) is undone when it ends.
	struct TrackerScope {
		explicit TrackerScope(haduck::TrackerListener &listener) {
			haduck::Tracker::Get().SetListener(&listener);
		}
		~TrackerScope() {
			auto &tracker = haduck::Tracker::Get();
			tracker.SetListener(nullptr);
			for (auto seq : tracker.PendingGenerations()) {
				tracker.ReleaseGeneration(seq);
			}
			tracker.DetachConsumer();
		}
	};
	auto write_blocks = [](haduck::TrackedFile &file, uint64_t first, uint64_t count) {
		std::vector<uint8_t> bytes(count * BLOCK, 0xab);
		haduck::Tracker::Get().AfterWrite(file, bytes.data(), haduck::HEADER_REGION_SIZE + first * BLOCK, bytes.size());
	};

	Run("tracker: a checkpoint's writes are one generation of exactly the blocks written, heard at the header's sync",
	    [&](const std::string &t) {
		    auto &tracker = haduck::Tracker::Get();
		    FakeListener heard;
		    TrackerScope scope(heard);
		    auto file = new_database("/unit-tests/tracker-one.duckdb");
		    Check(file->kind.load() == HADUCK_FILE_KIND_DATABASE, t, "the DUCK magic did not make it a database");
		    Check(heard.generations.size() == 1 && heard.generations[0].blocks.empty(), t, "no empty first generation");
		    heard.generations.clear();
		    write_blocks(*file, 3, 1);
		    write_blocks(*file, 7, 2);
		    write_header(*file, 1, 5, 10);
		    Check(heard.generations.empty(), t, "a header write alone published (its sync commits it)");
		    tracker.AfterSync(*file);
		    Check(heard.generations.size() == 1, t, "heard " + std::to_string(heard.generations.size()) + " generations");
		    auto &generation = heard.generations[0];
		    Check(generation.iteration == 5 && generation.header_block_count == 10, t, "wrong header");
		    Check(generation.blocks == std::vector<uint64_t>({3, 7, 8}), t, "wrong blocks");
		    tracker.AfterSync(*file); // a FileSync after optimistic writes: no header pending, no generation
		    write_blocks(*file, 4, 1);
		    write_header(*file, 2, 6, 10);
		    tracker.AfterSync(*file);
		    Check(heard.generations.size() == 2 && heard.generations[1].blocks == std::vector<uint64_t>({4}), t,
		          "the next generation did not hold only what was written since");
	    });

	Run("tracker: with a consumer attached, the next header waits for the release, and past the hold is abandoned",
	    [&](const std::string &t) {
		    auto &tracker = haduck::Tracker::Get();
		    FakeListener heard;
		    TrackerScope scope(heard);
		    auto file = new_database("/unit-tests/tracker-hold.duckdb");
		    heard.generations.clear();
		    for (auto seq : tracker.PendingGenerations()) {
			    tracker.ReleaseGeneration(seq);
		    }
		    tracker.AttachConsumer();
		    tracker.SetHoldMs(100);
		    write_blocks(*file, 0, 2);
		    write_header(*file, 1, 1, 2);
		    tracker.AfterSync(*file);
		    Check(heard.generations.empty(), t, "the listener heard a generation the consumer gets");
		    auto pending = tracker.PendingGenerations();
		    Check(pending.size() == 1, t, "pending: " + std::to_string(pending.size()));
		    haduck::Generation copy;
		    Check(tracker.CopyGeneration(pending[0], copy) && copy.blocks == std::vector<uint64_t>({0, 1}), t,
		          "the consumer's copy lacks the blocks");
		    // Released in time: the next header's write goes on as soon as the reads are done.
		    std::thread reader([&] {
			    std::this_thread::sleep_for(std::chrono::milliseconds(20));
			    Check(tracker.ReleaseGeneration(pending[0]) == 1, t, "a release in time was not publishable");
		    });
		    auto started = std::chrono::steady_clock::now();
		    write_header(*file, 2, 2, 2);
		    reader.join();
		    auto waited = std::chrono::steady_clock::now() - started;
		    Check(waited >= std::chrono::milliseconds(15), t, "the header write did not wait for the reads");
		    tracker.AfterSync(*file);
		    // Not released: DuckDB waits the hold out, and the release then says abandoned (carry the blocks).
		    auto second = tracker.PendingGenerations();
		    Check(second.size() == 1, t, "the second generation is not pending");
		    started = std::chrono::steady_clock::now();
		    write_header(*file, 1, 3, 2);
		    waited = std::chrono::steady_clock::now() - started;
		    Check(waited >= std::chrono::milliseconds(90), t, "DuckDB did not wait for the hold");
		    Check(tracker.ReleaseGeneration(second[0]) == 0, t, "a release after the hold ran out was publishable");
		    tracker.AfterSync(*file);
	    });

	Run("tracker: a WAL sync announces the blocks written since the generation to the replicator process",
	    [&](const std::string &t) {
		    auto &tracker = haduck::Tracker::Get();
		    FakeListener heard;
		    TrackerScope scope(heard);
		    auto db = new_database("/unit-tests/tracker-wal.duckdb");
		    write_blocks(*db, 0, 4);
		    write_header(*db, 1, 1, 4);
		    tracker.AfterSync(*db);
		    auto wal = tracker.Open("/unit-tests/tracker-wal.duckdb.wal");
		    std::vector<uint8_t> entry(100, 1);
		    tracker.AfterWrite(*wal, entry.data(), 0, entry.size());
		    tracker.AfterSync(*wal);
		    Check(heard.restarts == 1 && heard.wal_syncs.empty(), t, "a commit with no replicator did not ask for one");
		    db->sidecar_attached.store(true);
		    write_blocks(*db, 2, 1);
		    tracker.AfterWrite(*wal, entry.data(), 100, entry.size());
		    tracker.AfterSync(*wal);
		    Check(heard.wal_syncs.size() == 1, t, "the sync was not announced");
		    Check(heard.wal_syncs[0].first == 200, t, "synced size " + std::to_string(heard.wal_syncs[0].first));
		    Check(heard.wal_syncs[0].second == std::vector<std::pair<uint64_t, uint64_t>>({{2, 1}}), t,
		          "the commit's blocks were not announced as one run of block 2");
		    db->sidecar_attached.store(false);
	    });
	std::printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
