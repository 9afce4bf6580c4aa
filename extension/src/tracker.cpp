#include "tracker.hpp"


#include <chrono>
#include <cstring>

namespace haduck {

static uint64_t LoadU64(const uint8_t *bytes) {
	uint64_t value;
	std::memcpy(&value, bytes, sizeof(value));
	return value;
}

static uint64_t NowUnixMs() {
	return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
	                    std::chrono::system_clock::now().time_since_epoch())
	                    .count());
}

static bool EndsWith(const std::string &text, const std::string &suffix) {
	return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A database header as ChecksumAndWrite() lays it out: an 8-byte checksum, then iteration,
// meta_block, free_list, block_count, block_alloc_size (storage_info.hpp, DatabaseHeader::Write).
struct ParsedHeader {
	uint64_t iteration;
	uint64_t block_count;
	uint64_t block_alloc_size;
};
static ParsedHeader ParseDatabaseHeader(const uint8_t *header) {
	return ParsedHeader {LoadU64(header + 8), LoadU64(header + 8 + 24), LoadU64(header + 8 + 32)};
}
static bool ValidBlockAllocSize(uint64_t size) {
	return size >= BLOCK_ALLOC_SIZE_MIN && size <= BLOCK_ALLOC_SIZE_MAX && (size & (size - 1)) == 0;
}
static bool HasMagic(const uint8_t *main_header) {
	return std::memcmp(main_header + 8, "DUCK", 4) == 0;
}

Tracker &Tracker::Get() {
	static Tracker *tracker = new Tracker(); // never destroyed: DuckDB threads may outlive static destructors
	return *tracker;
}

Tracker::Tracker() {
	RingInit(ring);
}

uint32_t Tracker::KindFromName(const std::string &path) {
	if (EndsWith(path, ".wal")) {
		return HADUCK_FILE_KIND_WAL;
	}
	if (EndsWith(path, ".wal.checkpoint")) {
		return HADUCK_FILE_KIND_WAL_CHECKPOINT;
	}
	if (path.find(".tmp/") != std::string::npos) {
		return HADUCK_FILE_KIND_TEMP;
	}
	return HADUCK_FILE_KIND_OTHER;
}

std::shared_ptr<TrackedFile> Tracker::Open(const std::string &local_path) {
	std::lock_guard<std::mutex> guard(files_lock);
	auto entry = files_by_path.find(local_path);
	if (entry != files_by_path.end()) {
		return entry->second;
	}
	auto file = std::make_shared<TrackedFile>();
	file->id = uint32_t(files_by_id.size() + 1);
	file->path = local_path;
	file->kind.store(KindFromName(local_path));
	files_by_id.push_back(file);
	files_by_path[local_path] = file;
	return file;
}

std::shared_ptr<TrackedFile> Tracker::Find(uint32_t file_id) {
	std::lock_guard<std::mutex> guard(files_lock);
	if (file_id == 0 || file_id > files_by_id.size()) {
		return nullptr;
	}
	return files_by_id[file_id - 1];
}

std::vector<std::shared_ptr<TrackedFile>> Tracker::Files() {
	std::lock_guard<std::mutex> guard(files_lock);
	return files_by_id;
}

void Tracker::IdentifyFromHeader(TrackedFile &file, const uint8_t *header, uint64_t length) {
	if (length < HEADER_REGION_SIZE || !HasMagic(header)) {
		return;
	}
	auto h1 = ParseDatabaseHeader(header + FILE_HEADER_SIZE);
	auto h2 = ParseDatabaseHeader(header + 2 * FILE_HEADER_SIZE);
	auto active = h1.iteration > h2.iteration ? h1 : h2;
	if (!ValidBlockAllocSize(active.block_alloc_size)) {
		return;
	}
	file.kind.store(HADUCK_FILE_KIND_DATABASE);
	file.block_alloc_size.store(active.block_alloc_size);
	file.last_iteration.store(active.iteration);
}

static bool IsHeaderSlotWrite(uint64_t offset, uint64_t length) {
	return length == FILE_HEADER_SIZE && (offset == FILE_HEADER_SIZE || offset == 2 * FILE_HEADER_SIZE);
}

void Tracker::BeforeWrite(TrackedFile &file, uint64_t offset, uint64_t length) {
	if (!IsHeaderSlotWrite(offset, length) || file.kind.load() != HADUCK_FILE_KIND_DATABASE ||
	    (!ConsumerAttached() && !file.sidecar_attached.load())) {
		return;
	}
	// The header about to be written frees the blocks the previous generation references. If the
	// bridge is still reading them from this file, wait (bounded) until it is done; past the bound,
	// abandon that generation: its blocks ride in the next one, so nothing torn is ever published.
	// Tell the consumer that DuckDB now waits: one that cannot read this generation soon (it is busy
	// uploading an earlier one) releases it at once and carries its blocks, so DuckDB does not wait.
	uint32_t file_id = file.id;
	bool in_time = generations.Hold(file_id, HoldMs(), [&](uint64_t seq) {
		RingEvent waiting;
		waiting.type = HADUCK_EVENT_HOLD_WAITING;
		waiting.file_id = file_id;
		waiting.a = seq;
		Push(waiting);
		if (auto *heard = listener.load()) {
			heard->OnHoldWaiting(file, seq);
		}
	});
	if (!in_time) {
		RingEvent event;
		event.type = HADUCK_EVENT_GENERATION_ABANDONED;
		event.file_id = file_id;
		Push(event);
	}
}

void Tracker::AfterWrite(TrackedFile &file, const uint8_t *data, uint64_t offset, uint64_t length) {
	file.writes.fetch_add(1, std::memory_order_relaxed);
	file.bytes_written.fetch_add(length, std::memory_order_relaxed);
	if (length == 0) {
		return;
	}
	uint32_t kind = file.kind.load(std::memory_order_acquire);
	if (kind == HADUCK_FILE_KIND_WAL) {
		uint64_t end = offset + length;
		uint64_t seen = file.wal_end.load();
		while (end > seen && !file.wal_end.compare_exchange_weak(seen, end)) {
		}
		return;
	}
	if (kind != HADUCK_FILE_KIND_DATABASE && kind != HADUCK_FILE_KIND_OTHER) {
		return; // temp files: counted, not tracked
	}
	if (offset == 0 && length >= 12 && HasMagic(data)) {
		file.kind.store(HADUCK_FILE_KIND_DATABASE, std::memory_order_release); // a new database's main header
		kind = HADUCK_FILE_KIND_DATABASE;
	}
	if (kind != HADUCK_FILE_KIND_DATABASE) {
		return;
	}
	if (IsHeaderSlotWrite(offset, length)) {
		auto header = ParseDatabaseHeader(data);
		if (ValidBlockAllocSize(header.block_alloc_size)) {
			uint64_t unknown = 0;
			file.block_alloc_size.compare_exchange_strong(unknown, header.block_alloc_size);
		}
		std::lock_guard<std::mutex> guard(file.commit_lock);
		file.header_pending = true;
		file.pending_iteration = header.iteration;
		file.pending_block_count = header.block_count;
		return;
	}
	if (offset > UINT64_MAX - length) {
		file.needs_full_scan.store(true); // cannot happen for a real write; never wrap around
		return;
	}
	uint64_t end = offset + length;
	if (end <= HEADER_REGION_SIZE) {
		return; // the main header: shipped with every generation's header region
	}
	uint64_t block_size = file.block_alloc_size.load(std::memory_order_acquire);
	if (block_size == 0) {
		file.needs_full_scan.store(true);
		return;
	}
	uint64_t first = (std::max(offset, HEADER_REGION_SIZE) - HEADER_REGION_SIZE) / block_size;
	uint64_t last = (end - 1 - HEADER_REGION_SIZE) / block_size;
	if (!file.bitmap.MarkRange(first, last)) {
		file.needs_full_scan.store(true);
	}
	// After the generation's mark: a header commit that drains the block above and then clears it here
	// only ever clears a block whose bytes its generation holds (see AfterSync).
	if (!file.wal_bitmap.MarkRange(first, last)) {
		file.wal_marks_lost.store(true);
	}
}

void Tracker::AfterSync(TrackedFile &file) {
	file.syncs.fetch_add(1, std::memory_order_relaxed);
	if (file.kind.load() == HADUCK_FILE_KIND_WAL) {
		AnnounceWalSync(file);
		return;
	}
	Generation generation;
	{
		std::lock_guard<std::mutex> guard(file.commit_lock);
		if (!file.header_pending) {
			return; // a FileSync after optimistic writes, not a checkpoint
		}
		file.header_pending = false;
		generation.file_id = file.id;
		generation.iteration = file.pending_iteration;
		generation.header_block_count = file.pending_block_count;
		generation.block_alloc_size = file.block_alloc_size.load();
		generation.created_unix_ms = NowUnixMs();
		generation.needs_full_scan = file.needs_full_scan.exchange(false);
		generation.blocks = file.bitmap.Drain();
		// The generation holds these blocks' bytes: frames of the new iteration need not carry them. A block
		// written after the drain is marked again (AfterWrite marks the generation's bitmap first).
		for (auto block : generation.blocks) {
			file.wal_bitmap.Unmark(block);
		}
		file.wal_marks_lost.store(false);
		file.wal_leftover.store(false);
	}
	file.last_iteration.store(generation.iteration);
	file.generations.fetch_add(1, std::memory_order_relaxed);
	Publish(file, std::move(generation));
}

void Tracker::Publish(TrackedFile &file, Generation generation) {
	RingEvent event;
	event.type = HADUCK_EVENT_GENERATION_READY;
	event.file_id = generation.file_id;
	event.b = generation.iteration;
	event.c = generation.blocks.size();
	event.d = generation.header_block_count;
	bool sidecar = file.sidecar_attached.load();
	Generation copy;
	if (sidecar || !ConsumerAttached()) {
		copy = generation; // for the file's replicator process, if it has one
	}
	event.a = generations.Publish(std::move(generation), ConsumerAttached() || sidecar);
	if (sidecar && !file.sidecar_attached.load() && !ConsumerAttached()) {
		DropHold(file.id); // its replicator went away while we published: nobody will release it
	}
	Push(event);
	if (sidecar || !ConsumerAttached()) {
		copy.seq = event.a;
		if (auto *heard = listener.load()) {
			heard->OnGeneration(file, copy);
		}
	}
}

std::shared_ptr<TrackedFile> Tracker::DatabaseOfWal(const TrackedFile &wal) {
	static const std::string suffix = ".wal";
	if (!EndsWith(wal.path, suffix)) {
		return nullptr;
	}
	auto db = Open(wal.path.substr(0, wal.path.size() - suffix.size()));
	return db->kind.load() == HADUCK_FILE_KIND_DATABASE ? db : nullptr;
}

void Tracker::AnnounceWalSync(TrackedFile &wal) {
	auto db = DatabaseOfWal(wal);
	if (!db) {
		return;
	}
	uint64_t synced = wal.wal_end.load();
	wal.wal_synced.store(synced);
	bool ring = ConsumerAttached();
	bool sidecar = db->sidecar_attached.load();
	if (!ring && !sidecar) {
		if (auto *heard = listener.load()) {
			heard->RestartIfGone(*db); // a replicator that died starts again at a commit, too
		}
		return; // nobody ships frames: the marks stay for whoever comes (a consumer's first frame needs them)
	}
	uint64_t iteration = db->last_iteration.load();
	uint64_t now = NowUnixMs();
	auto blocks = db->wal_bitmap.Drain();
	// Runs of consecutive blocks: a bulk insert writes long runs, so few events carry them.
	std::vector<std::pair<uint64_t, uint64_t>> runs;
	for (auto block : blocks) {
		if (!runs.empty() && runs.back().first + runs.back().second == block) {
			runs.back().second++;
		} else {
			runs.emplace_back(block, 1);
		}
	}
	uint64_t marks = WalMarksState(*db);
	if (ring) {
		for (size_t i = 0; i < runs.size(); i += 3) {
			RingEvent event;
			event.type = HADUCK_EVENT_WAL_BLOCKS;
			event.file_id = db->id;
			uint64_t *fields[6] = {&event.a, &event.b, &event.c, &event.d, &event.e, &event.f};
			for (size_t j = 0; j < 3; j++) {
				*fields[2 * j] = i + j < runs.size() ? runs[i + j].first : 0;
				*fields[2 * j + 1] = i + j < runs.size() ? runs[i + j].second : 0;
			}
			Push(event);
		}
		RingEvent event;
		event.type = HADUCK_EVENT_WAL_SYNCED;
		event.file_id = db->id;
		event.a = iteration;
		event.b = synced;
		event.c = now;
		event.d = marks;
		Push(event);
	}
	if (sidecar) {
		if (auto *heard = listener.load()) {
			heard->OnWalSync(*db, iteration, synced, now, marks, runs);
		}
	}
}

void Tracker::AnnounceWalReset(TrackedFile &wal, uint64_t size) {
	auto db = DatabaseOfWal(wal);
	if (!db) {
		return;
	}
	uint64_t iteration = db->last_iteration.load();
	RingEvent event;
	event.type = HADUCK_EVENT_WAL_RESET;
	event.file_id = db->id;
	event.a = iteration;
	event.b = size;
	Push(event);
	if (db->sidecar_attached.load()) {
		if (auto *heard = listener.load()) {
			heard->OnWalReset(*db, iteration, size);
		}
	}
}

void Tracker::Reset(TrackedFile &file) {
	std::lock_guard<std::mutex> guard(file.commit_lock);
	file.kind.store(KindFromName(file.path));
	file.block_alloc_size.store(0);
	file.bitmap.Drain();
	file.needs_full_scan.store(true); // whatever comes next at this path is read whole
	file.header_pending = false;
	generations.ForgetFile(file.id);
}

void Tracker::AfterTruncate(TrackedFile &file, uint64_t new_size) {
	if (file.kind.load() == HADUCK_FILE_KIND_WAL) {
		file.wal_end.store(new_size);
		if (new_size < file.wal_synced.load()) {
			file.wal_synced.store(new_size);
			AnnounceWalReset(file, new_size);
		}
	}
	RingEvent event;
	event.type = HADUCK_EVENT_FILE_TRUNCATED;
	event.file_id = file.id;
	event.a = new_size;
	Push(event);
}

void Tracker::AfterRemove(const std::string &local_path) {
	auto file = Open(local_path);
	bool wal = file->kind.load() == HADUCK_FILE_KIND_WAL;
	Reset(*file);
	if (wal) {
		file->wal_end.store(0);
		file->wal_synced.store(0);
		AnnounceWalReset(*file, 0);
	}
	RingEvent event;
	event.type = HADUCK_EVENT_FILE_REMOVED;
	event.file_id = file->id;
	Push(event);
}

void Tracker::AfterMove(const std::string &source, const std::string &target) {
	auto from = Open(source);
	auto to = Open(target);
	Reset(*from);
	Reset(*to);
	RingEvent event;
	event.type = HADUCK_EVENT_FILE_MOVED;
	event.file_id = from->id;
	event.a = to->id;
	Push(event);
}

void Tracker::AfterOpen(TrackedFile &file, uint64_t size) {
	file.open_handles.fetch_add(1);
	if (file.kind.load() == HADUCK_FILE_KIND_WAL && size > file.wal_end.load()) {
		file.wal_end.store(size); // an existing WAL: its commits are durable already
		file.wal_synced.store(size);
		// ...and they reference blocks written before anyone tracked them: frames may go on only if the
		// consumer rebuilt those marks from the file against the store (its reconcile, before this open).
		if (auto db = DatabaseOfWal(file)) {
			db->wal_leftover.store(true);
		}
	}
	RingEvent event;
	event.type = HADUCK_EVENT_FILE_OPENED;
	event.file_id = file.id;
	event.a = file.kind.load();
	Push(event);
}

void Tracker::AfterClose(TrackedFile &file) {
	file.open_handles.fetch_sub(1);
	RingEvent event;
	event.type = HADUCK_EVENT_FILE_CLOSED;
	event.file_id = file.id;
	Push(event);
}

void Tracker::Push(const RingEvent &event) {
	RingPush(ring, event); // a full ring sets the sticky overflow flag; the bitmaps still hold every mark
}

void Tracker::AttachConsumer() {
	consumer_attached.store(true, std::memory_order_release);
}

void Tracker::DetachConsumer() {
	consumer_attached.store(false, std::memory_order_release);
	for (auto &file : Files()) {
		WalMarksLost(*file);
	}
	generations.DetachConsumer();
}

bool Tracker::CopyGeneration(uint64_t seq, Generation &out) {
	return generations.Copy(seq, out);
}

std::vector<uint64_t> Tracker::PendingGenerations() {
	return generations.Pending();
}

int Tracker::ReleaseGeneration(uint64_t seq) {
	return generations.Release(seq);
}

HoldStats Tracker::GetHoldStats() {
	return generations.Stats();
}

} // namespace haduck
