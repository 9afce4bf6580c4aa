//===----------------------------------------------------------------------===//
// snapshot.hpp: copy-on-write views of a file (a follower's snapshots of its base), DuckDB-free.
//
// An overlay shows a base file as it was when the overlay was opened. Its reads come from the base,
// except for the 4 KiB pages the overlay holds itself: those DuckDB wrote into the view (a WAL
// replay, a checkpoint), and those the base was about to overwrite. Whoever overwrites or cuts the
// base first calls `BeforeBaseWrite` for the range: every overlay of that file that still reads
// those pages from the base copies them in (copy before overwrite). So opening a view costs nothing
// that grows with the file, and an overlay's size on disk is what changed while it was open.
//
// Consistency: a page is read from the base only under the overlay's shared lock, and a page is
// copied in under its exclusive lock, before the base's writer may go on; a reader therefore sees
// either the base's bytes from before the write or the copy of them, never the new ones.
//===----------------------------------------------------------------------===//
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

namespace haduck {

//! A file's identity: its device and inode (what survives a rename of the base).
struct FileKey {
	uint64_t dev = 0;
	uint64_t ino = 0;
	bool operator<(const FileKey &other) const {
		return dev != other.dev ? dev < other.dev : ino < other.ino;
	}
};

//! A base opened lazily (issue 34): DuckDB blocks the manifest lists that are not local yet. A read
//! of one asks the bridge for it (`Wanted`) and waits until the bridge wrote it (`Filled`) or could
//! not (`Failed`, whose message the read throws). The header region is always local.
class LazyBase {
public:
	static constexpr uint64_t HEADER_BYTES = 12288;
	//! How long a read waits for a block before it fails.
	static constexpr int WAIT_SECONDS = 120;

	LazyBase(FileKey key, std::string path, uint64_t block_alloc_size, const uint8_t *missing, uint64_t blocks);
	//! Returns once every block of [offset, offset + length) is local; throws std::runtime_error when
	//! the bridge could not fetch one, or did not within WAIT_SECONDS.
	void Ensure(uint64_t offset, uint64_t length);
	//! Whether a block of [offset, offset + length) is not local.
	bool AnyMissing(uint64_t offset, uint64_t length);
	void Filled(uint64_t first, uint64_t count);
	void Failed(uint64_t block, const std::string &message);
	//! Up to `capacity` blocks reads wait for, oldest first (each handed out once until it fails).
	uint64_t Wanted(uint64_t *out, uint64_t capacity);
	uint64_t MissingCount();
	//! Wakes every waiter with `message` (the base is closed).
	void Abandon(const std::string &message);

	const FileKey key;
	const std::string path;

private:
	bool Missing(uint64_t block) const;
	std::mutex mutex;
	std::condition_variable changed;
	uint64_t block_alloc_size;
	std::vector<uint8_t> missing;
	uint64_t missing_count = 0;
	std::deque<uint64_t> wanted;
	std::set<uint64_t> asked;
	std::map<uint64_t, std::string> failed;
	std::string abandoned;
};

class Overlay {
public:
	static constexpr uint64_t PAGE = 4096;

	//! Takes ownership of both descriptors.
	Overlay(std::string path, FileKey base_key, int base_fd, int overlay_fd, uint64_t base_size);
	~Overlay();
	Overlay(const Overlay &) = delete;
	Overlay &operator=(const Overlay &) = delete;

	void Read(void *buffer, uint64_t length, uint64_t offset);
	void Write(const void *buffer, uint64_t length, uint64_t offset);
	void Truncate(uint64_t size);
	uint64_t Size();
	//! Copies the pages of [offset, offset + length) it still reads from the base (see the file comment).
	void Preserve(uint64_t offset, uint64_t length);

	const std::string path;
	const FileKey base_key;

private:
	bool Present(uint64_t page) const;
	void MarkPresent(uint64_t first, uint64_t end);
	//! With the exclusive lock held.
	void PreserveLocked(uint64_t offset, uint64_t length);

	std::shared_mutex mutex;
	int base_fd;
	int overlay_fd;
	//! Bytes below this may come from the base (its size when opened, cut by truncations).
	uint64_t base_limit;
	uint64_t size;
	std::vector<uint64_t> present;
};

struct SnapshotStats {
	std::atomic<uint64_t> overlays_open {0};
	std::atomic<uint64_t> bytes_preserved {0};
	std::atomic<uint64_t> bytes_read_base {0};
	std::atomic<uint64_t> bytes_read_overlay {0};
	std::atomic<uint64_t> bytes_written_overlay {0};
	std::atomic<uint64_t> lazy_waits {0};
};

//! The process's overlays, by their own path and by their base's identity.
class Snapshots {
public:
	static Snapshots &Get();

	//! Opens an overlay at `overlay_path` (created empty, replacing a file there) over `base_path`.
	//! Throws std::runtime_error naming the path on failure.
	void Open(const std::string &base_path, const std::string &overlay_path);
	//! Forgets the overlay (DuckDB must have closed it); removes nothing on disk. False when unknown.
	bool Close(const std::string &overlay_path);
	std::shared_ptr<Overlay> Find(const std::string &overlay_path);
	//! A path the snapshot scheme may open: an overlay, a file beside one (`<overlay>.wal`,
	//! `<overlay>.tmp/...`), or a base allowed for an in-place replay.
	bool Allowed(const std::string &path);
	void AllowBase(const std::string &path, bool allow);

	//! Opens `base_path` lazily: `missing[i]` != 0 for each block i of `blocks` that is not local.
	void LazyOpen(const std::string &base_path, uint64_t block_alloc_size, const uint8_t *missing, uint64_t blocks);
	//! The lazy base of this file, or null (a base fully local, or not lazy).
	std::shared_ptr<LazyBase> Lazy(const FileKey &key);
	std::shared_ptr<LazyBase> LazyByPath(const std::string &base_path);
	//! Forgets the lazy base; its waiters fail with `message`.
	void LazyClose(const std::string &base_path, const std::string &message);

	//! Call before writing [offset, offset + length) of the file `key`, or cutting it at `offset`
	//! (length UINT64_MAX). Costs one atomic load while no overlay is open.
	void BeforeBaseWrite(const FileKey &key, uint64_t offset, uint64_t length);
	//! The same by path (stat); throws std::runtime_error when the file cannot be stat'ed.
	void BeforeBaseWritePath(const std::string &path, uint64_t offset, uint64_t length);

	SnapshotStats stats;

private:
	std::mutex mutex;
	std::map<std::string, std::shared_ptr<Overlay>> by_path;
	std::multimap<FileKey, std::shared_ptr<Overlay>> by_base;
	std::set<std::string> bases;
	std::map<FileKey, std::shared_ptr<LazyBase>> lazy;
	std::atomic<uint64_t> lazy_open {0};
};

//! The identity of the file at `path`, or false.
bool StatFileKey(const std::string &path, FileKey &key);
//! The identity of an open descriptor, or false.
bool FdFileKey(int fd, FileKey &key);

} // namespace haduck
