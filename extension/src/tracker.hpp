//===----------------------------------------------------------------------===//
// tracker.hpp: per-file dirty tracking, commit-point detection, generations, and the hold that
// keeps a generation's blocks in place until the bridge has read them.
//
// DuckDB-free on purpose: the file system feeds it (path, offset, bytes), so its logic can be
// reasoned about, and tested, without a database.
//===----------------------------------------------------------------------===//
#pragma once
#include "dirty_bitmap.hpp"
#include "generation_queue.hpp"
#include "haduck_ring.h"
#include "ring.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace haduck {

//! DuckDB's file layout (storage_info.hpp): a 4 KiB main header, two 4 KiB database headers, then blocks.
static constexpr uint64_t FILE_HEADER_SIZE = 4096;
static constexpr uint64_t HEADER_REGION_SIZE = 3 * FILE_HEADER_SIZE;
static constexpr uint64_t BLOCK_ALLOC_SIZE_MIN = 16384;
static constexpr uint64_t BLOCK_ALLOC_SIZE_MAX = 262144;
static_assert(HEADER_REGION_SIZE == 12288, "block 0 starts at 12288 in DuckDB's single-file format");

struct TrackedFile {
	uint32_t id = 0;
	std::string path;
	std::atomic<uint32_t> kind {HADUCK_FILE_KIND_OTHER};
	std::atomic<uint64_t> block_alloc_size {0};
	DirtyBitmap bitmap;
	std::atomic<bool> needs_full_scan {false};
	std::atomic<uint64_t> writes {0};
	std::atomic<uint64_t> bytes_written {0};
	std::atomic<uint64_t> syncs {0};
	std::atomic<uint64_t> generations {0};
	std::atomic<uint64_t> last_iteration {0};
	std::atomic<uint64_t> open_handles {0};
	//! A replicator process (sidecar.hpp) consumes this file's generations: the hold applies.
	std::atomic<bool> sidecar_attached {false};
	//! A database's blocks written since the last WAL announcement: what its WAL's commits may reference
	//! (DuckDB's optimistic writes). A header commit clears the blocks its generation holds.
	DirtyBitmap wal_bitmap;
	//! Marks of wal_bitmap went to a consumer that is gone: frames of this iteration would miss blocks.
	std::atomic<bool> wal_marks_lost {false};
	//! The WAL existed when DuckDB opened it (a restart): its commits reference blocks written before this
	//! process tracked anything. Only the consumer knows whether it rebuilt those marks from the file
	//! against the store (a reconcile before the open does), so this is reported apart from a loss.
	std::atomic<bool> wal_leftover {false};
	//! A WAL file: one past its last byte written, and its size at the last FileSync (the durable commits).
	std::atomic<uint64_t> wal_end {0};
	std::atomic<uint64_t> wal_synced {0};
	//! Guards the header seen between DuckDB's header write and the FileSync that commits it.
	std::mutex commit_lock;
	bool header_pending = false;
	uint64_t pending_iteration = 0;
	uint64_t pending_block_count = 0;
};

//! Who else hears of a tracked file's events besides the ring: the replicator processes a DuckDB host
//! starts (sidecar.cpp). Set once, at the first open; the tracker knows it only by this interface,
//! so tracker.cpp builds without DuckDB and runs in the unit tests.
class TrackerListener {
public:
	virtual ~TrackerListener() = default;
	//! A generation of `file` was published (see Sidecars::OnGeneration).
	virtual void OnGeneration(TrackedFile &file, const Generation &generation) = 0;
	//! A commit of `file` while no replicator is attached.
	virtual void RestartIfGone(TrackedFile &file) = 0;
	//! DuckDB waits for generation `seq` of `file` (the hold).
	virtual void OnHoldWaiting(TrackedFile &file, uint64_t seq) = 0;
	//! The WAL of `file` was synced at `size`; `runs`: (first block, count).
	virtual void OnWalSync(TrackedFile &file, uint64_t iteration, uint64_t size, uint64_t unix_ms, uint64_t marks,
	                       const std::vector<std::pair<uint64_t, uint64_t>> &runs) = 0;
	virtual void OnWalReset(TrackedFile &file, uint64_t iteration, uint64_t size) = 0;
};

class Tracker {
public:
	static Tracker &Get();

	//! The one listener besides the ring (the sidecars); null: none.
	void SetListener(TrackerListener *listener) {
		this->listener.store(listener);
	}

	//! The tracked state of a local path, created on first use. `kind` is a hint from the path's name.
	std::shared_ptr<TrackedFile> Open(const std::string &local_path);
	std::shared_ptr<TrackedFile> Find(uint32_t file_id);
	std::vector<std::shared_ptr<TrackedFile>> Files();

	//! Inspects an existing file's first 12288 bytes (nullptr or short: not a database yet).
	void IdentifyFromHeader(TrackedFile &file, const uint8_t *header, uint64_t length);
	//! Called before a write reaches the disk: holds a header write while the previous generation is being read.
	void BeforeWrite(TrackedFile &file, uint64_t offset, uint64_t length);
	//! Called after a write reached the file (never before: a drain between would lose the mark).
	void AfterWrite(TrackedFile &file, const uint8_t *data, uint64_t offset, uint64_t length);
	//! Called after a successful fsync: a pending header becomes a generation (the commit point).
	void AfterSync(TrackedFile &file);
	void AfterTruncate(TrackedFile &file, uint64_t new_size);
	void AfterRemove(const std::string &local_path);
	void AfterMove(const std::string &source, const std::string &target);
	//! `size`: the file's size when opened (a WAL's existing commits).
	void AfterOpen(TrackedFile &file, uint64_t size = 0);
	//! The consumer of `file` went away: block marks it was given for the WAL were not shipped.
	void WalMarksLost(TrackedFile &file) {
		file.wal_marks_lost.store(true);
	}
	//! What a WAL announcement says of the marks: 0 complete, 1 lost, 2 a leftover WAL (see wal_leftover).
	static uint64_t WalMarksState(const TrackedFile &db) {
		return db.wal_marks_lost.load() ? 1 : db.wal_leftover.load() ? 2 : 0;
	}
	void AfterClose(TrackedFile &file);

	// The consumer's side (the C API in c_api.cpp).
	haduck_ring_t &Ring() {
		return ring;
	}
	void AttachConsumer();
	void DetachConsumer();
	bool ConsumerAttached() const {
		return consumer_attached.load(std::memory_order_acquire);
	}
	void SetHoldMs(uint64_t ms) {
		hold_ms.store(std::min(ms, GenerationQueue::HOLD_MS_MAX), std::memory_order_relaxed);
	}
	uint64_t HoldMs() const {
		return hold_ms.load(std::memory_order_relaxed);
	}
	bool CopyGeneration(uint64_t seq, Generation &out);
	std::vector<uint64_t> PendingGenerations();
	//! 1: the reads of `seq` finished before DuckDB moved on (publishable); 0: abandoned; -1: unknown seq.
	int ReleaseGeneration(uint64_t seq);
	HoldStats GetHoldStats();
	void DropHold(uint32_t file_id) {
		generations.DropOutstanding(file_id);
	}
	std::vector<Generation> PendingGenerationsOf(uint32_t file_id) {
		return generations.PendingOf(file_id);
	}
	void Push(const RingEvent &event);

private:
	Tracker();
	static uint32_t KindFromName(const std::string &path);
	void Publish(TrackedFile &file, Generation generation);
	//! A WAL was synced: tells the consumer its size and the database blocks written since the last time.
	void AnnounceWalSync(TrackedFile &wal);
	void AnnounceWalReset(TrackedFile &wal, uint64_t size);
	//! The database a WAL belongs to (`<db>.wal`), if it is tracked as one.
	std::shared_ptr<TrackedFile> DatabaseOfWal(const TrackedFile &wal);
	//! The path was removed or replaced: whatever is tracked for it describes another file now.
	void Reset(TrackedFile &file);

	alignas(64) haduck_ring_t ring;
	std::mutex files_lock;
	std::map<std::string, std::shared_ptr<TrackedFile>> files_by_path;
	std::vector<std::shared_ptr<TrackedFile>> files_by_id;

	GenerationQueue generations;
	std::atomic<bool> consumer_attached {false};
	std::atomic<uint64_t> hold_ms {10000};
	std::atomic<TrackerListener *> listener {nullptr};
};

} // namespace haduck
