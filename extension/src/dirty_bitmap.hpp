//===----------------------------------------------------------------------===//
// dirty_bitmap.hpp: which DuckDB blocks of one file changed since the last drain.
//
// One bit per DuckDB block (block N starts at 12288 + N * block_alloc_size). Marking is lock-free
// (a fetch_or per 64 blocks); the bitmap grows in chunks allocated on first touch with a CAS, so
// the write path never takes a lock. Drain() exchanges each word with zero: a mark that races with
// a drain lands either in this drain or in the next, never in neither.
//===----------------------------------------------------------------------===//
#pragma once
#include "haduck_assert.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace haduck {

class DirtyBitmap {
public:
	//! Blocks per chunk: 65536 blocks (16 GiB at 256 KiB blocks) in 8 KiB of bits.
	static constexpr uint64_t CHUNK_BLOCKS = 1ULL << 16;
	static constexpr uint64_t CHUNK_WORDS = CHUNK_BLOCKS / 64;
	//! Chunks at most: 2^28 blocks, 64 TiB at 256 KiB blocks.
	static constexpr uint64_t CHUNKS_MAX = 1ULL << 12;
	static constexpr uint64_t BLOCKS_MAX = CHUNK_BLOCKS * CHUNKS_MAX;
	static_assert(CHUNK_WORDS * 64 == CHUNK_BLOCKS, "chunk must hold whole words");

	DirtyBitmap() {
		for (auto &chunk : chunks) {
			chunk.store(nullptr, std::memory_order_relaxed);
		}
	}
	~DirtyBitmap() {
		for (auto &chunk : chunks) {
			delete[] chunk.load(std::memory_order_relaxed);
		}
	}
	DirtyBitmap(const DirtyBitmap &) = delete;
	DirtyBitmap &operator=(const DirtyBitmap &) = delete;

	//! Marks blocks [first, last] (inclusive). Returns false if a block is beyond BLOCKS_MAX.
	bool MarkRange(uint64_t first, uint64_t last) {
		HADUCK_ASSERT(first <= last);
		if (last >= BLOCKS_MAX) {
			return false;
		}
		for (uint64_t block = first; block <= last;) {
			auto *words = Chunk(block / CHUNK_BLOCKS);
			uint64_t word_index = (block % CHUNK_BLOCKS) / 64;
			uint64_t bit = block % 64;
			uint64_t bits_here = std::min<uint64_t>(64 - bit, last - block + 1);
			uint64_t mask = bits_here == 64 ? ~0ULL : (((1ULL << bits_here) - 1) << bit);
			words[word_index].fetch_or(mask, std::memory_order_acq_rel);
			block += bits_here;
		}
		uint64_t seen = highest.load(std::memory_order_relaxed);
		while (last + 1 > seen && !highest.compare_exchange_weak(seen, last + 1, std::memory_order_relaxed)) {
		}
		return true;
	}

	bool Mark(uint64_t block) {
		return MarkRange(block, block);
	}

	bool IsMarked(uint64_t block) const {
		if (block >= BLOCKS_MAX) {
			return false;
		}
		auto *words = chunks[block / CHUNK_BLOCKS].load(std::memory_order_acquire);
		if (!words) {
			return false;
		}
		return (words[(block % CHUNK_BLOCKS) / 64].load(std::memory_order_acquire) >> (block % 64)) & 1;
	}

	//! Clears one block's mark (a mark that races with it may be cleared too: callers accept that).
	void Unmark(uint64_t block) {
		if (block >= BLOCKS_MAX) {
			return;
		}
		auto *words = chunks[block / CHUNK_BLOCKS].load(std::memory_order_acquire);
		if (words) {
			words[(block % CHUNK_BLOCKS) / 64].fetch_and(~(uint64_t(1) << (block % 64)), std::memory_order_acq_rel);
		}
	}

	//! Takes every mark, in ascending block order, leaving the bitmap empty of them.
	std::vector<uint64_t> Drain() {
		std::vector<uint64_t> blocks;
		uint64_t end = highest.load(std::memory_order_acquire);
		for (uint64_t chunk_index = 0; chunk_index * CHUNK_BLOCKS < end; chunk_index++) {
			auto *words = chunks[chunk_index].load(std::memory_order_acquire);
			if (!words) {
				continue;
			}
			for (uint64_t w = 0; w < CHUNK_WORDS; w++) {
				if (words[w].load(std::memory_order_relaxed) == 0) {
					continue; // most words are empty: no locked exchange for them (a mark racing this lands next time)
				}
				uint64_t bits = words[w].exchange(0, std::memory_order_acq_rel);
				while (bits) {
					uint64_t bit = __builtin_ctzll(bits);
					blocks.push_back(chunk_index * CHUNK_BLOCKS + w * 64 + bit);
					bits &= bits - 1;
				}
			}
		}
		return blocks;
	}

	//! Marks set now (a snapshot; concurrent marks may or may not be counted).
	uint64_t Count() const {
		uint64_t count = 0;
		for (uint64_t chunk_index = 0; chunk_index < CHUNKS_MAX; chunk_index++) {
			auto *words = chunks[chunk_index].load(std::memory_order_acquire);
			if (!words) {
				continue;
			}
			for (uint64_t w = 0; w < CHUNK_WORDS; w++) {
				count += __builtin_popcountll(words[w].load(std::memory_order_relaxed));
			}
		}
		return count;
	}

private:
	std::atomic<uint64_t> *Chunk(uint64_t index) {
		auto *words = chunks[index].load(std::memory_order_acquire);
		if (words) {
			return words;
		}
		auto *fresh = new std::atomic<uint64_t>[CHUNK_WORDS];
		for (uint64_t w = 0; w < CHUNK_WORDS; w++) {
			fresh[w].store(0, std::memory_order_relaxed);
		}
		std::atomic<uint64_t> *expected = nullptr;
		if (chunks[index].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
			return fresh;
		}
		delete[] fresh; // another writer installed the chunk first
		return expected;
	}

	std::atomic<std::atomic<uint64_t> *> chunks[CHUNKS_MAX];
	//! One past the highest block ever marked; bounds Drain()'s scan.
	std::atomic<uint64_t> highest {0};
};

} // namespace haduck
