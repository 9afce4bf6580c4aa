//===----------------------------------------------------------------------===//
// lazy_base.cpp: a base opened lazily (see LazyBase in snapshot.hpp): reads wait for the blocks the
// bridge fetches from the store.
//===----------------------------------------------------------------------===//
#include "snapshot.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace haduck {

LazyBase::LazyBase(FileKey key_p, std::string path_p, uint64_t block_alloc_size_p, const uint8_t *missing_p,
                   uint64_t blocks)
    : key(key_p), path(std::move(path_p)), block_alloc_size(block_alloc_size_p), missing(missing_p, missing_p + blocks) {
	for (auto flag : missing) {
		missing_count += flag != 0 ? 1 : 0;
	}
}

bool LazyBase::Missing(uint64_t block) const {
	return block < missing.size() && missing[block] != 0;
}

bool LazyBase::AnyMissing(uint64_t offset, uint64_t length) {
	if (length == 0 || offset + length <= HEADER_BYTES) {
		return false;
	}
	std::lock_guard<std::mutex> lock(mutex);
	uint64_t first = (std::max(offset, HEADER_BYTES) - HEADER_BYTES) / block_alloc_size;
	uint64_t end = length > UINT64_MAX - offset ? missing.size()
	                                            : std::min<uint64_t>(missing.size(), (offset + length - 1 - HEADER_BYTES) / block_alloc_size + 1);
	for (uint64_t block = first; block < end; block++) {
		if (Missing(block)) {
			return true;
		}
	}
	return false;
}

void LazyBase::Ensure(uint64_t offset, uint64_t length) {
	if (length == 0 || offset + length <= HEADER_BYTES) {
		return;
	}
	std::unique_lock<std::mutex> lock(mutex);
	uint64_t first = (std::max(offset, HEADER_BYTES) - HEADER_BYTES) / block_alloc_size;
	uint64_t end = std::min<uint64_t>(missing.size(), (offset + length - 1 - HEADER_BYTES) / block_alloc_size + 1);
	bool waited = false;
	for (uint64_t block = first; block < end; block++) {
		if (Missing(block) && asked.insert(block).second) {
			wanted.push_back(block);
		}
	}
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(WAIT_SECONDS);
	for (;;) {
		if (!abandoned.empty()) {
			throw std::runtime_error(abandoned);
		}
		bool all = true;
		for (uint64_t block = first; block < end; block++) {
			auto failure = failed.find(block);
			if (failure != failed.end()) {
				auto message = failure->second;
				failed.erase(failure); // the next read asks again
				throw std::runtime_error(message);
			}
			all = all && !Missing(block);
		}
		if (all) {
			return;
		}
		if (!waited) {
			waited = true;
			Snapshots::Get().stats.lazy_waits++;
		}
		if (changed.wait_until(lock, deadline) == std::cv_status::timeout) {
			throw std::runtime_error("Block " + std::to_string(first) + " of " + path + " (a replica opened lazily) was " +
			                         "not fetched from the store within " + std::to_string(WAIT_SECONDS) +
			                         " s: is the store reachable?");
		}
	}
}

void LazyBase::Filled(uint64_t first, uint64_t count) {
	std::lock_guard<std::mutex> lock(mutex);
	for (uint64_t block = first; block < first + count && block < missing.size(); block++) {
		if (missing[block] != 0) {
			missing[block] = 0;
			missing_count--;
		}
		asked.erase(block);
		failed.erase(block);
	}
	changed.notify_all();
}

void LazyBase::Failed(uint64_t block, const std::string &message) {
	std::lock_guard<std::mutex> lock(mutex);
	failed[block] = message;
	asked.erase(block);
	changed.notify_all();
}

uint64_t LazyBase::Wanted(uint64_t *out, uint64_t capacity) {
	std::lock_guard<std::mutex> lock(mutex);
	uint64_t count = 0;
	while (count < capacity && !wanted.empty()) {
		auto block = wanted.front();
		wanted.pop_front();
		if (Missing(block)) {
			out[count++] = block;
		}
	}
	return count;
}

uint64_t LazyBase::MissingCount() {
	std::lock_guard<std::mutex> lock(mutex);
	return missing_count;
}

void LazyBase::Abandon(const std::string &message) {
	std::lock_guard<std::mutex> lock(mutex);
	abandoned = message.empty() ? "The replica opened lazily was closed" : message;
	changed.notify_all();
}

} // namespace haduck
