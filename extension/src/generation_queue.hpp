//===----------------------------------------------------------------------===//
// generation_queue.hpp: the generations committed but not yet released by the consumer, and the
// hold. One unit that the C++ tests construct and drive on their own (extension/test), with its
// invariants asserted on every transition:
//
//  - sequence numbers (the queue's own counter: DuckDB's header iteration is the *generation*) only
//    grow, and every pending generation has one;
//  - per file, at most one generation is outstanding (its blocks protected by the hold), and it is
//    pending;
//  - per file, at most PENDING_PER_FILE_MAX generations are pending: older ones are coalesced into
//    the next (their blocks ride in it) and their release answers 0;
//  - the set of sequence numbers whose release must answer 0 is bounded (ABANDONED_MAX): without a
//    consumer nothing would ever remove them.
//===----------------------------------------------------------------------===//
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <vector>

namespace haduck {

//! A checkpoint as shipped: the blocks dirtied since the previous commit point, tagged with DuckDB's iteration.
struct Generation {
	uint64_t seq = 0;
	uint32_t file_id = 0;
	uint64_t iteration = 0;
	//! DuckDB's block_count from the committed header: the file holds blocks [0, block_count).
	uint64_t header_block_count = 0;
	uint64_t block_alloc_size = 0;
	uint64_t created_unix_ms = 0;
	//! Set when blocks were written before the block size was known: the consumer must rescan the file.
	bool needs_full_scan = false;
	std::vector<uint64_t> blocks;
};

struct HoldStats {
	uint64_t waits = 0;
	uint64_t wait_ns_total = 0;
	uint64_t wait_ns_max = 0;
	uint64_t timeouts = 0;
};

class GenerationQueue {
public:
	//! Generations kept per file while nobody consumes them; older ones are merged (coalesced).
	static constexpr size_t PENDING_PER_FILE_MAX = 64;
	//! Remembered "answer 0" sequence numbers; the oldest are forgotten (their release then answers -1).
	static constexpr size_t ABANDONED_MAX = 4096;
	//! The longest hold a caller may ask for (an hour): larger values are clamped, never overflow a clock.
	static constexpr uint64_t HOLD_MS_MAX = 3600 * 1000;

	//! Assigns the next sequence number and queues `generation`; with a consumer it becomes the file's
	//! outstanding generation (the next header write of that file waits for its release).
	uint64_t Publish(Generation generation, bool consumer_attached);
	//! Called before a header write of `file_id`. If a generation of that file is outstanding, calls
	//! `on_wait(seq)` (the caller announces the wait), then waits up to `hold_ms` for its release;
	//! past that, abandons it. Returns false when it timed out.
	bool Hold(uint32_t file_id, uint64_t hold_ms, const std::function<void(uint64_t)> &on_wait);
	//! 1: released while the hold protected it (it is its file's outstanding generation): publishable.
	//! 0: abandoned, coalesced, or never protected (published with no consumer): carry its blocks.
	//! -1: unknown.
	int Release(uint64_t seq);
	bool Copy(uint64_t seq, Generation &out);
	std::vector<uint64_t> Pending();
	//! No consumer any more: nothing is outstanding, and nobody waits.
	void DetachConsumer();
	//! The file is gone (removed, or moved away): its pending generations are dropped as abandoned.
	void ForgetFile(uint32_t file_id);
	//! The file's consumer is gone (a replicator process died): nobody waits for its outstanding
	//! generation any more. The generation stays pending, unprotected, for the next consumer.
	void DropOutstanding(uint32_t file_id);
	//! Copies of the file's pending generations, oldest first.
	std::vector<Generation> PendingOf(uint32_t file_id);
	HoldStats Stats();

private:
	void Coalesce(uint32_t file_id);
	void Abandon(uint64_t seq);
	void CheckInvariants();

	std::mutex lock;
	std::condition_variable released;
	std::map<uint64_t, Generation> pending;
	std::map<uint32_t, uint64_t> outstanding; // file id -> seq whose blocks the hold protects
	std::set<uint64_t> abandoned;
	std::deque<uint64_t> abandoned_order;
	uint64_t next_seq = 1;
	HoldStats hold_stats;
};

} // namespace haduck
