//===----------------------------------------------------------------------===//
// ring.hpp: the producer side of the shared event ring (layout in haduck_ring.h).
//===----------------------------------------------------------------------===//
#pragma once
#include "haduck_assert.hpp"
#include "haduck_ring.h"

#include <atomic>
#include <cstddef>
#include <cstring>

namespace haduck {

static_assert(sizeof(haduck_ring_event_t) == HADUCK_RING_SLOT_SIZE, "event size is ABI");
static_assert(offsetof(haduck_ring_event_t, seq) == HADUCK_EVENT_OFFSET_SEQ, "ABI");
static_assert(offsetof(haduck_ring_event_t, type) == HADUCK_EVENT_OFFSET_TYPE, "ABI");
static_assert(offsetof(haduck_ring_event_t, file_id) == HADUCK_EVENT_OFFSET_FILE_ID, "ABI");
static_assert(offsetof(haduck_ring_event_t, a) == HADUCK_EVENT_OFFSET_A, "ABI");
static_assert(offsetof(haduck_ring_event_t, f) == HADUCK_EVENT_OFFSET_F, "ABI");
static_assert(offsetof(haduck_ring_t, overflow) == HADUCK_RING_OFFSET_OVERFLOW, "ABI");
static_assert(offsetof(haduck_ring_t, overflow_count) == HADUCK_RING_OFFSET_OVERFLOW_COUNT, "ABI");
static_assert(offsetof(haduck_ring_t, head) == HADUCK_RING_OFFSET_HEAD, "ABI");
static_assert(offsetof(haduck_ring_t, tail) == HADUCK_RING_OFFSET_TAIL, "ABI");
static_assert(offsetof(haduck_ring_t, slots) == HADUCK_RING_OFFSET_SLOTS, "ABI");
static_assert(sizeof(haduck_ring_t) == HADUCK_RING_SIZE, "ABI");
static_assert((HADUCK_RING_SLOT_COUNT & (HADUCK_RING_SLOT_COUNT - 1)) == 0, "slot count must be a power of two");
static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t) && std::atomic<uint64_t>::is_always_lock_free,
              "the ring's words must be plain lock-free 64-bit atomics to be shared with TypeScript");

//! Views a plain 64-bit field of the shared struct as an atomic (same size and alignment, asserted above).
inline std::atomic<uint64_t> &Atomic64(uint64_t &word) {
	return *reinterpret_cast<std::atomic<uint64_t> *>(&word);
}
inline std::atomic<uint32_t> &Atomic32(uint32_t &word) {
	return *reinterpret_cast<std::atomic<uint32_t> *>(&word);
}

struct RingEvent {
	uint32_t type = 0;
	uint32_t file_id = 0;
	uint64_t a = 0, b = 0, c = 0, d = 0, e = 0, f = 0;
};

//! Initializes a ring in caller-provided (shared) memory.
inline void RingInit(haduck_ring_t &ring) {
	std::memset(&ring, 0, sizeof(ring));
	ring.magic = HADUCK_RING_MAGIC;
	ring.version = HADUCK_RING_VERSION;
	ring.slot_count = HADUCK_RING_SLOT_COUNT;
	ring.slot_size = HADUCK_RING_SLOT_SIZE;
	for (uint64_t i = 0; i < HADUCK_RING_SLOT_COUNT; i++) {
		Atomic64(ring.slots[i].seq).store(i, std::memory_order_relaxed);
	}
	std::atomic_thread_fence(std::memory_order_release);
}

//! Pushes one event; never blocks. Returns false when the ring is full (then `overflow` is set).
inline bool RingPush(haduck_ring_t &ring, const RingEvent &event) {
	auto &tail = Atomic64(ring.tail);
	uint64_t pos = tail.load(std::memory_order_relaxed);
	for (;;) {
		auto &slot = ring.slots[pos & (HADUCK_RING_SLOT_COUNT - 1)];
		uint64_t seq = Atomic64(slot.seq).load(std::memory_order_acquire);
		int64_t diff = int64_t(seq) - int64_t(pos);
		if (diff == 0) {
			if (tail.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
				slot.type = event.type;
				slot.file_id = event.file_id;
				slot.a = event.a;
				slot.b = event.b;
				slot.c = event.c;
				slot.d = event.d;
				slot.e = event.e;
				slot.f = event.f;
				Atomic64(slot.seq).store(pos + 1, std::memory_order_release);
				return true;
			}
		} else if (diff < 0) {
			Atomic32(ring.overflow).store(1, std::memory_order_release);
			Atomic64(ring.overflow_count).fetch_add(1, std::memory_order_relaxed);
			return false;
		} else {
			pos = tail.load(std::memory_order_relaxed);
		}
	}
}

//! The consumer side, for the C++ unit tests and the SQL drain (TypeScript has its own reader).
inline bool RingPop(haduck_ring_t &ring, RingEvent &out) {
	auto &head = Atomic64(ring.head);
	uint64_t pos = head.load(std::memory_order_relaxed);
	auto &slot = ring.slots[pos & (HADUCK_RING_SLOT_COUNT - 1)];
	uint64_t seq = Atomic64(slot.seq).load(std::memory_order_acquire);
	if (seq != pos + 1) {
		HADUCK_ASSERT(int64_t(seq) - int64_t(pos + 1) < 0);
		return false;
	}
	out.type = slot.type;
	out.file_id = slot.file_id;
	out.a = slot.a;
	out.b = slot.b;
	out.c = slot.c;
	out.d = slot.d;
	out.e = slot.e;
	out.f = slot.f;
	Atomic64(slot.seq).store(pos + HADUCK_RING_SLOT_COUNT, std::memory_order_release);
	head.store(pos + 1, std::memory_order_release);
	return true;
}

} // namespace haduck
