//===----------------------------------------------------------------------===//
// c_api.cpp: the plain C functions the TypeScript bridge calls through FFI (bun:ffi / Deno.dlopen)
// on the already-loaded extension image. They never throw and never block on DuckDB.
//===----------------------------------------------------------------------===//
#include "snapshot.hpp"
#include "tracker.hpp"

#include <algorithm>

#include <cstring>

#define HADUCK_C_API extern "C" __attribute__((visibility("default")))

using haduck::Tracker;

//! The address of the shared event ring (layout: haduck_ring.h).
HADUCK_C_API uint64_t haduck_ring_address() {
	return uint64_t(reinterpret_cast<uintptr_t>(&Tracker::Get().Ring()));
}

HADUCK_C_API void haduck_consumer_attach() {
	Tracker::Get().AttachConsumer();
}

HADUCK_C_API void haduck_consumer_detach() {
	Tracker::Get().DetachConsumer();
}

HADUCK_C_API void haduck_set_hold_ms(uint64_t ms) {
	Tracker::Get().SetHoldMs(ms);
}

//! out[0..8): file_id, iteration, blocks, header_block_count, block_alloc_size, created_unix_ms, needs_full_scan, 0.
HADUCK_C_API int32_t haduck_generation_info(uint64_t seq, uint64_t *out) {
	haduck::Generation generation;
	if (!Tracker::Get().CopyGeneration(seq, generation)) {
		return 0;
	}
	out[0] = generation.file_id;
	out[1] = generation.iteration;
	out[2] = generation.blocks.size();
	out[3] = generation.header_block_count;
	out[4] = generation.block_alloc_size;
	out[5] = generation.created_unix_ms;
	out[6] = generation.needs_full_scan ? 1 : 0;
	out[7] = 0;
	return 1;
}

//! Copies up to `capacity` block ids of generation `seq`; returns how many it has in all.
HADUCK_C_API uint64_t haduck_generation_blocks(uint64_t seq, uint64_t *out, uint64_t capacity) {
	haduck::Generation generation;
	if (!Tracker::Get().CopyGeneration(seq, generation)) {
		return 0;
	}
	uint64_t count = std::min<uint64_t>(capacity, generation.blocks.size());
	std::memcpy(out, generation.blocks.data(), count * sizeof(uint64_t));
	return generation.blocks.size();
}

HADUCK_C_API int32_t haduck_generation_release(uint64_t seq) {
	return Tracker::Get().ReleaseGeneration(seq);
}

HADUCK_C_API uint64_t haduck_pending_generations(uint64_t *out, uint64_t capacity) {
	auto seqs = Tracker::Get().PendingGenerations();
	uint64_t count = std::min<uint64_t>(capacity, seqs.size());
	std::memcpy(out, seqs.data(), count * sizeof(uint64_t));
	return seqs.size();
}

//! Copies the local path of `file_id` (not NUL-terminated); returns its full length, 0 if unknown.
HADUCK_C_API uint64_t haduck_file_path(uint32_t file_id, char *out, uint64_t capacity) {
	auto file = Tracker::Get().Find(file_id);
	if (!file) {
		return 0;
	}
	std::memcpy(out, file->path.data(), std::min<uint64_t>(capacity, file->path.size()));
	return file->path.size();
}

//! out[0..4): hold waits, total wait ns, max wait ns, hold timeouts.
HADUCK_C_API void haduck_hold_stats(uint64_t *out) {
	auto stats = Tracker::Get().GetHoldStats();
	out[0] = stats.waits;
	out[1] = stats.wait_ns_total;
	out[2] = stats.wait_ns_max;
	out[3] = stats.timeouts;
}

namespace duckdb {
uint64_t Checksum(uint8_t *buffer, size_t size); // DuckDB's block checksum (common/checksum.hpp)
}

//! DuckDB's block checksum (common/checksum.cpp at v1.4.4: 5381, then every 8-byte word multiplied
//! by 0xbf58476d1ce4e5b9 and xored in), with the multiply inlined: DuckDB's own calls a function
//! per word, 3 GB/s here, a quarter of a first upload's client CPU. Xor is order-free, so four
//! accumulators. A length that is not whole words (never a block) goes to DuckDB's own.
static uint64_t BlockChecksum(uint8_t *buffer, size_t size) {
	if (size % 8 != 0) {
		return duckdb::Checksum(buffer, size);
	}
	constexpr uint64_t MULTIPLIER = UINT64_C(0xbf58476d1ce4e5b9);
	uint64_t lanes[4] = {0, 0, 0, 0};
	size_t words = size / 8;
	size_t i = 0;
	for (; i + 4 <= words; i += 4) {
		for (size_t lane = 0; lane < 4; lane++) {
			uint64_t word;
			std::memcpy(&word, buffer + (i + lane) * 8, sizeof(word));
			lanes[lane] ^= word * MULTIPLIER;
		}
	}
	for (; i < words; i++) {
		uint64_t word;
		std::memcpy(&word, buffer + i * 8, sizeof(word));
		lanes[0] ^= word * MULTIPLIER;
	}
	return UINT64_C(5381) ^ lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
}

//! Whether a DuckDB block's stored 8-byte checksum matches its contents (what DuckDB checks on read).
HADUCK_C_API int32_t haduck_block_checksum_ok(uint8_t *block, uint64_t length) {
	if (length <= 8) {
		return 0;
	}
	uint64_t stored;
	std::memcpy(&stored, block, sizeof(stored));
	return BlockChecksum(block + 8, length - 8) == stored ? 1 : 0;
}

//! For benchmarks: pushes up to `count` synthetic events (type 0, which consumers skip) from the
//! calling thread; stops at a full ring (setting the overflow flag, as DuckDB's threads would).
HADUCK_C_API uint64_t haduck_debug_push_events(uint64_t count) {
	haduck::RingEvent event;
	event.type = 0;
	uint64_t pushed = 0;
	for (; pushed < count; pushed++) {
		event.a = pushed;
		if (!haduck::RingPush(Tracker::Get().Ring(), event)) {
			break;
		}
	}
	return pushed;
}

// Snapshots (snapshot.hpp): a follower's copy-on-write views of its base. Only over FFI, never as SQL
// functions: an overlay creates a file, which no SQL caller (an admin token included) may do.

static int32_t SnapshotError(const std::exception &error, char *out, uint64_t capacity) {
	auto length = std::min<uint64_t>(capacity, std::strlen(error.what()));
	std::memcpy(out, error.what(), length);
	return -int32_t(length) - 1;
}

//! 0, or -(message length + 1) with the message in `error`.
HADUCK_C_API int32_t haduck_snapshot_open(const char *base_path, const char *overlay_path, char *error,
                                          uint64_t capacity) {
	try {
		haduck::Snapshots::Get().Open(base_path, overlay_path);
		return 0;
	} catch (std::exception &e) {
		return SnapshotError(e, error, capacity);
	}
}

//! 1 when the overlay was open (the file stays: the caller removes it).
HADUCK_C_API int32_t haduck_snapshot_close(const char *overlay_path) {
	return haduck::Snapshots::Get().Close(overlay_path) ? 1 : 0;
}

//! Lets haduck-snapshot:// open `path` (and the files beside it) in place, or no longer.
HADUCK_C_API void haduck_snapshot_allow_base(const char *path, int32_t allow) {
	haduck::Snapshots::Get().AllowBase(path, allow != 0);
}

//! Call before writing [offset, offset + length) of `base_path` (length UINT64_MAX: before cutting it
//! at offset). 0, or -(message length + 1) with the message in `error`.
HADUCK_C_API int32_t haduck_snapshot_before_write(const char *base_path, uint64_t offset, uint64_t length,
                                                  char *error, uint64_t capacity) {
	try {
		haduck::Snapshots::Get().BeforeBaseWritePath(base_path, offset, length);
		return 0;
	} catch (std::exception &e) {
		return SnapshotError(e, error, capacity);
	}
}

//! Opens `base_path` lazily: missing[i] != 0 for each block i of `blocks` not local yet. 0, or -(length + 1).
HADUCK_C_API int32_t haduck_lazy_open(const char *base_path, uint64_t block_alloc_size, const uint8_t *missing,
                                      uint64_t blocks, char *error, uint64_t capacity) {
	try {
		haduck::Snapshots::Get().LazyOpen(base_path, block_alloc_size, missing, blocks);
		return 0;
	} catch (std::exception &e) {
		return SnapshotError(e, error, capacity);
	}
}

//! Blocks reads of `base_path` wait for, up to `capacity`; how many were written to `out`.
HADUCK_C_API uint64_t haduck_lazy_wanted(const char *base_path, uint64_t *out, uint64_t capacity) {
	auto base = haduck::Snapshots::Get().LazyByPath(base_path);
	return base ? base->Wanted(out, capacity) : 0;
}

//! Blocks [first, first + count) of `base_path` are local now.
HADUCK_C_API void haduck_lazy_filled(const char *base_path, uint64_t first, uint64_t count) {
	auto base = haduck::Snapshots::Get().LazyByPath(base_path);
	if (base) {
		base->Filled(first, count);
	}
}

//! A read of `block` fails with `message` (NUL-terminated).
HADUCK_C_API void haduck_lazy_failed(const char *base_path, uint64_t block, const char *message) {
	auto base = haduck::Snapshots::Get().LazyByPath(base_path);
	if (base) {
		base->Failed(block, message);
	}
}

//! Forgets the lazy base (every block local, or closed); waiting reads fail with `message`.
HADUCK_C_API void haduck_lazy_close(const char *base_path, const char *message) {
	haduck::Snapshots::Get().LazyClose(base_path, message);
}

//! out[0..5): overlays open, bytes preserved, bytes read from bases, from overlays, written to overlays;
//! out[5]: reads that waited for a lazy base's block.
HADUCK_C_API void haduck_snapshot_stats(uint64_t *out) {
	auto &stats = haduck::Snapshots::Get().stats;
	out[0] = stats.overlays_open.load();
	out[1] = stats.bytes_preserved.load();
	out[2] = stats.bytes_read_base.load();
	out[3] = stats.bytes_read_overlay.load();
	out[4] = stats.bytes_written_overlay.load();
	out[5] = stats.lazy_waits.load();
}
