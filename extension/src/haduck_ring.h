/*
 * haduck_ring.h: the shared-memory ABI between the haduck extension (producers: DuckDB's threads)
 * and the TypeScript bridge (one consumer). This header is the source of truth; the TypeScript
 * view (packages/duckdb-fs-bridge/_ring_layout.ts) is checked against it by a test.
 *
 * The ring is a bounded multi-producer, single-consumer queue of fixed-size events (Vyukov's
 * bounded queue): each slot carries a sequence number; a producer claims a position by CAS on
 * `tail` and publishes by storing `seq = pos + 1`; the consumer reads the slot whose `seq` is
 * `head + 1` and frees it by storing `seq = head + slot_count`. A full ring never blocks: the
 * producer sets the sticky `overflow` flag and the consumer recovers from the dirty bitmaps,
 * which are the source of truth.
 *
 * Fixed-width integers only; all offsets are static_asserted in ring.hpp.
 */
#ifndef HADUCK_RING_H
#define HADUCK_RING_H
#include <stdint.h>

#define HADUCK_RING_MAGIC 0x474e5248u /* "HRNG" little endian */
#define HADUCK_RING_VERSION 1u
#define HADUCK_RING_SLOT_COUNT 4096u
#define HADUCK_RING_SLOT_SIZE 64u

/* Byte offsets inside haduck_ring_t. */
#define HADUCK_RING_OFFSET_MAGIC 0
#define HADUCK_RING_OFFSET_VERSION 4
#define HADUCK_RING_OFFSET_SLOT_COUNT 8
#define HADUCK_RING_OFFSET_SLOT_SIZE 12
#define HADUCK_RING_OFFSET_OVERFLOW 16
#define HADUCK_RING_OFFSET_OVERFLOW_COUNT 24
#define HADUCK_RING_OFFSET_HEAD 64
#define HADUCK_RING_OFFSET_TAIL 128
#define HADUCK_RING_OFFSET_SLOTS 192
#define HADUCK_RING_SIZE (192 + 4096 * 64)

/* Byte offsets inside haduck_ring_event_t. */
#define HADUCK_EVENT_OFFSET_SEQ 0
#define HADUCK_EVENT_OFFSET_TYPE 8
#define HADUCK_EVENT_OFFSET_FILE_ID 12
#define HADUCK_EVENT_OFFSET_A 16
#define HADUCK_EVENT_OFFSET_B 24
#define HADUCK_EVENT_OFFSET_C 32
#define HADUCK_EVENT_OFFSET_D 40
#define HADUCK_EVENT_OFFSET_E 48
#define HADUCK_EVENT_OFFSET_F 56

/* Event types and the meaning of their fields. */
#define HADUCK_EVENT_GENERATION_READY 1u     /* a=generation seq, b=DuckDB iteration, c=blocks, d=block_count */
#define HADUCK_EVENT_FILE_OPENED 2u          /* a=file kind (HADUCK_FILE_KIND_*) */
#define HADUCK_EVENT_FILE_CLOSED 3u          /* (no fields) */
#define HADUCK_EVENT_FILE_REMOVED 4u         /* (no fields) */
#define HADUCK_EVENT_FILE_MOVED 5u           /* a=file id of the target path */
#define HADUCK_EVENT_FILE_TRUNCATED 6u       /* a=new size in bytes */
#define HADUCK_EVENT_GENERATION_ABANDONED 7u /* a=generation seq (its blocks ride in a later one) */
#define HADUCK_EVENT_HOLD_WAITING 8u         /* a=generation seq DuckDB's next header now waits for */
/* The WAL of a database (file_id: the database's id) was synced: a commit is durable locally. Before it, zero
 * or more WAL_BLOCKS events list the database blocks written since the previous WAL_SYNCED (the optimistic
 * writes its commits reference), as runs: (a, b), (c, d), (e, f) = (first block, count); count 0 = unused. */
#define HADUCK_EVENT_WAL_BLOCKS 9u
#define HADUCK_EVENT_WAL_SYNCED 10u /* a=header iteration the WAL builds on, b=synced WAL size, c=unix ms, d=1 when
                                       block marks of this iteration were lost (a consumer went away): no frames;
                                       d=2 when the WAL existed at open (a restart): frames only if the consumer
                                       rebuilt its marks from the file against the store */
#define HADUCK_EVENT_WAL_RESET 11u  /* the WAL was removed or cut below its synced size: a=iteration, b=new size */

#define HADUCK_FILE_KIND_OTHER 0u
#define HADUCK_FILE_KIND_DATABASE 1u
#define HADUCK_FILE_KIND_WAL 2u
#define HADUCK_FILE_KIND_WAL_CHECKPOINT 3u
#define HADUCK_FILE_KIND_TEMP 4u

typedef struct haduck_ring_event {
	uint64_t seq;
	uint32_t type;
	uint32_t file_id;
	uint64_t a;
	uint64_t b;
	uint64_t c;
	uint64_t d;
	uint64_t e;
	uint64_t f;
} haduck_ring_event_t;

typedef struct haduck_ring {
	uint32_t magic;
	uint32_t version;
	uint32_t slot_count;
	uint32_t slot_size;
	uint32_t overflow; /* sticky: set by producers, cleared by the consumer after it rescanned */
	uint32_t reserved0;
	uint64_t overflow_count;
	uint8_t pad0[32];
	uint64_t head; /* consumer position; own cache line */
	uint8_t pad1[56];
	uint64_t tail; /* producer position; own cache line */
	uint8_t pad2[56];
	haduck_ring_event_t slots[HADUCK_RING_SLOT_COUNT];
} haduck_ring_t;

#endif
