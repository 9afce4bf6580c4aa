#include "generation_queue.hpp"

#include "haduck_assert.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>

namespace haduck {

void GenerationQueue::CheckInvariants() {
	std::map<uint32_t, size_t> per_file;
	for (auto &entry : pending) {
		HADUCK_ASSERT(entry.first == entry.second.seq && entry.first < next_seq);
		HADUCK_ASSERT(std::is_sorted(entry.second.blocks.begin(), entry.second.blocks.end()));
		per_file[entry.second.file_id]++;
	}
	for (auto &count : per_file) {
		HADUCK_ASSERT(count.second <= PENDING_PER_FILE_MAX);
	}
	for (auto &entry : outstanding) {
		auto generation = pending.find(entry.second);
		HADUCK_ASSERT(generation != pending.end() && generation->second.file_id == entry.first);
	}
	HADUCK_ASSERT(abandoned.size() == abandoned_order.size() && abandoned.size() <= ABANDONED_MAX);
}

void GenerationQueue::Abandon(uint64_t seq) {
	if (!abandoned.insert(seq).second) {
		return;
	}
	abandoned_order.push_back(seq);
	if (abandoned_order.size() > ABANDONED_MAX) {
		auto oldest = abandoned_order.front();
		abandoned_order.pop_front();
		abandoned.erase(oldest);
		pending.erase(oldest); // nobody will release it: a bounded queue drops it (its blocks rode along)
	}
}

uint64_t GenerationQueue::Publish(Generation generation, bool consumer_attached) {
	std::lock_guard<std::mutex> guard(lock);
	generation.seq = next_seq++;
	uint32_t file_id = generation.file_id;
	// A generation still outstanding here was not protected by a hold (the consumer attached
	// mid-checkpoint, or left without releasing it): its blocks may be overwritten already, so it
	// can only ride in this one.
	auto previous = outstanding.find(file_id);
	if (previous != outstanding.end()) {
		Abandon(previous->second);
		outstanding.erase(previous);
	}
	if (consumer_attached) {
		outstanding[file_id] = generation.seq;
	}
	uint64_t seq = generation.seq;
	pending.emplace(seq, std::move(generation));
	Coalesce(file_id);
	CheckInvariants();
	return seq;
}

void GenerationQueue::Coalesce(uint32_t file_id) {
	// Bounded memory while nobody consumes: merge the oldest generations of this file into the next.
	std::vector<uint64_t> seqs;
	for (auto &entry : pending) {
		if (entry.second.file_id == file_id) {
			seqs.push_back(entry.first);
		}
	}
	for (size_t i = 0; seqs.size() - i > PENDING_PER_FILE_MAX; i++) {
		auto &older = pending[seqs[i]];
		auto &newer = pending[seqs[i + 1]];
		HADUCK_ASSERT(older.iteration <= newer.iteration || older.file_id != newer.file_id);
		std::vector<uint64_t> merged;
		merged.reserve(older.blocks.size() + newer.blocks.size());
		std::set_union(older.blocks.begin(), older.blocks.end(), newer.blocks.begin(), newer.blocks.end(),
		               std::back_inserter(merged));
		newer.blocks = std::move(merged);
		newer.needs_full_scan = newer.needs_full_scan || older.needs_full_scan;
		auto current = outstanding.find(file_id);
		HADUCK_ASSERT(current == outstanding.end() || current->second != seqs[i]); // the newest is outstanding
		pending.erase(seqs[i]);
		Abandon(seqs[i]);
	}
}

bool GenerationQueue::Hold(uint32_t file_id, uint64_t hold_ms, const std::function<void(uint64_t)> &on_wait) {
	std::unique_lock<std::mutex> guard(lock);
	auto entry = outstanding.find(file_id);
	if (entry == outstanding.end()) {
		return true;
	}
	uint64_t seq = entry->second;
	on_wait(seq);
	auto started = std::chrono::steady_clock::now();
	auto bound = std::chrono::milliseconds(std::min(hold_ms, HOLD_MS_MAX));
	bool was_released = released.wait_for(guard, bound, [&] {
		auto current = outstanding.find(file_id);
		return current == outstanding.end() || current->second != seq;
	});
	auto waited_ns = uint64_t(
	    std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count());
	hold_stats.waits++;
	hold_stats.wait_ns_total += waited_ns;
	hold_stats.wait_ns_max = std::max(hold_stats.wait_ns_max, waited_ns);
	if (!was_released) {
		hold_stats.timeouts++;
		outstanding.erase(file_id);
		Abandon(seq);
	}
	CheckInvariants();
	return was_released;
}

int GenerationQueue::Release(uint64_t seq) {
	std::lock_guard<std::mutex> guard(lock);
	if (abandoned.erase(seq) > 0) {
		abandoned_order.erase(std::find(abandoned_order.begin(), abandoned_order.end(), seq));
		auto entry = pending.find(seq);
		if (entry != pending.end()) {
			auto current = outstanding.find(entry->second.file_id);
			if (current != outstanding.end() && current->second == seq) {
				outstanding.erase(current);
			}
			pending.erase(entry);
		}
		released.notify_all();
		CheckInvariants();
		return 0;
	}
	auto entry = pending.find(seq);
	if (entry == pending.end()) {
		return -1;
	}
	auto current = outstanding.find(entry->second.file_id);
	bool protected_by_hold = current != outstanding.end() && current->second == seq;
	if (protected_by_hold) {
		outstanding.erase(current);
	}
	pending.erase(entry);
	released.notify_all();
	CheckInvariants();
	return protected_by_hold ? 1 : 0;
}

void GenerationQueue::DropOutstanding(uint32_t file_id) {
	std::lock_guard<std::mutex> guard(lock);
	outstanding.erase(file_id);
	released.notify_all();
	CheckInvariants();
}

std::vector<Generation> GenerationQueue::PendingOf(uint32_t file_id) {
	std::lock_guard<std::mutex> guard(lock);
	std::vector<Generation> generations;
	for (auto &entry : pending) {
		if (entry.second.file_id == file_id) {
			generations.push_back(entry.second);
		}
	}
	return generations;
}

bool GenerationQueue::Copy(uint64_t seq, Generation &out) {
	std::lock_guard<std::mutex> guard(lock);
	auto entry = pending.find(seq);
	if (entry == pending.end()) {
		return false;
	}
	out = entry->second;
	return true;
}

std::vector<uint64_t> GenerationQueue::Pending() {
	std::lock_guard<std::mutex> guard(lock);
	std::vector<uint64_t> seqs;
	for (auto &entry : pending) {
		seqs.push_back(entry.first);
	}
	return seqs;
}

void GenerationQueue::DetachConsumer() {
	std::lock_guard<std::mutex> guard(lock);
	outstanding.clear();
	released.notify_all();
	CheckInvariants();
}

void GenerationQueue::ForgetFile(uint32_t file_id) {
	std::lock_guard<std::mutex> guard(lock);
	outstanding.erase(file_id);
	for (auto entry = pending.begin(); entry != pending.end();) {
		if (entry->second.file_id == file_id) {
			Abandon(entry->first);
			entry = pending.erase(entry);
		} else {
			++entry;
		}
	}
	released.notify_all();
	CheckInvariants();
}

HoldStats GenerationQueue::Stats() {
	std::lock_guard<std::mutex> guard(lock);
	return hold_stats;
}

} // namespace haduck
