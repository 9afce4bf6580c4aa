//===----------------------------------------------------------------------===//
// tracker_tests.cpp: the tracker as DuckDB drives it through haduck's file system (writes, a header,
// a sync), without DuckDB: the generations it publishes, the hold, the WAL's announcements.
//===----------------------------------------------------------------------===//
#include "tracker.hpp"
#include "unit_test.hpp"

#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

void TrackerTests() {
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
}
