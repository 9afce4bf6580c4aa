#include "snapshot.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace haduck {

static std::runtime_error SystemError(const std::string &what, const std::string &path) {
	return std::runtime_error(what + " \"" + path + "\": " + std::strerror(errno));
}

//! pread until `length` or the end of the file; the rest is zeros (a sparse or shorter file).
static void ReadFully(int fd, uint8_t *buffer, uint64_t length, uint64_t offset, const std::string &path) {
	uint64_t done = 0;
	while (done < length) {
		ssize_t n = pread(fd, buffer + done, length - done, off_t(offset + done));
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			throw SystemError("Cannot read the snapshot's file", path);
		}
		if (n == 0) {
			std::memset(buffer + done, 0, length - done);
			return;
		}
		done += uint64_t(n);
	}
}

static void WriteFully(int fd, const uint8_t *buffer, uint64_t length, uint64_t offset, const std::string &path) {
	uint64_t done = 0;
	while (done < length) {
		ssize_t n = pwrite(fd, buffer + done, length - done, off_t(offset + done));
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			throw SystemError("Cannot write the snapshot's overlay", path);
		}
		done += uint64_t(n);
	}
}

bool StatFileKey(const std::string &path, FileKey &key) {
	struct stat st;
	if (stat(path.c_str(), &st) != 0) {
		return false;
	}
	key = FileKey {uint64_t(st.st_dev), uint64_t(st.st_ino)};
	return true;
}

bool FdFileKey(int fd, FileKey &key) {
	struct stat st;
	if (fstat(fd, &st) != 0) {
		return false;
	}
	key = FileKey {uint64_t(st.st_dev), uint64_t(st.st_ino)};
	return true;
}

Overlay::Overlay(std::string path_p, FileKey base_key_p, int base_fd_p, int overlay_fd_p, uint64_t base_size)
    : path(std::move(path_p)), base_key(base_key_p), base_fd(base_fd_p), overlay_fd(overlay_fd_p),
      base_limit(base_size), size(base_size) {
}

Overlay::~Overlay() {
	close(base_fd);
	close(overlay_fd);
}

bool Overlay::Present(uint64_t page) const {
	uint64_t word = page / 64;
	return word < present.size() && (present[word] >> (page % 64) & 1) != 0;
}

void Overlay::MarkPresent(uint64_t first, uint64_t end) {
	if (end == 0) {
		return;
	}
	uint64_t words = (end - 1) / 64 + 1;
	if (present.size() < words) {
		present.resize(words, 0);
	}
	for (uint64_t page = first; page < end; page++) {
		present[page / 64] |= uint64_t(1) << (page % 64);
	}
}

void Overlay::Read(void *buffer, uint64_t length, uint64_t offset) {
	// A lazily opened base: the pages this read takes from it are made local first, without the
	// overlay's lock (the bridge that fetches them may need it to keep pages of other reads).
	auto lazy = Snapshots::Get().Lazy(base_key);
	if (lazy) {
		std::vector<std::pair<uint64_t, uint64_t>> from_base;
		{
			std::shared_lock<std::shared_mutex> lock(mutex);
			for (uint64_t page = offset / PAGE; page * PAGE < offset + length && page * PAGE < base_limit; page++) {
				if (Present(page)) {
					continue;
				}
				if (!from_base.empty() && from_base.back().first + from_base.back().second == page * PAGE) {
					from_base.back().second += PAGE;
				} else {
					from_base.emplace_back(page * PAGE, PAGE);
				}
			}
		}
		for (auto &range : from_base) {
			lazy->Ensure(range.first, range.second);
		}
	}
	std::shared_lock<std::shared_mutex> lock(mutex);
	auto *out = static_cast<uint8_t *>(buffer);
	uint64_t end = offset + length;
	uint64_t at = offset;
	auto &stats = Snapshots::Get().stats;
	while (at < end) {
		uint64_t page = at / PAGE;
		bool from_base = at < base_limit && !Present(page);
		// The run of pages that come from the same side.
		uint64_t run_end = std::min(end, (page + 1) * PAGE);
		while (run_end < end) {
			uint64_t next = run_end / PAGE;
			bool next_from_base = run_end < base_limit && !Present(next);
			if (next_from_base != from_base) {
				break;
			}
			run_end = std::min(end, (next + 1) * PAGE);
		}
		if (from_base) {
			// Past the base's limit (a page that straddles it) reads zeros, as DuckDB's cut file would.
			uint64_t base_end = std::min(run_end, base_limit);
			ReadFully(base_fd, out + (at - offset), base_end - at, at, path);
			if (base_end < run_end) {
				std::memset(out + (base_end - offset), 0, run_end - base_end);
			}
			stats.bytes_read_base += run_end - at;
		} else {
			ReadFully(overlay_fd, out + (at - offset), run_end - at, at, path);
			stats.bytes_read_overlay += run_end - at;
		}
		at = run_end;
	}
}

void Overlay::PreserveLocked(uint64_t offset, uint64_t length) {
	uint64_t end = length > base_limit ? base_limit : std::min(base_limit, offset + length);
	if (offset >= end) {
		return;
	}
	auto lazy = Snapshots::Get().Lazy(base_key);
	if (lazy && lazy->AnyMissing(offset, end - offset)) {
		// The bridge makes a block local before it overwrites it; copying a hole would show zeros.
		throw std::runtime_error("Cannot overwrite a block of " + path + "'s base that is not local yet (a replica "
		                         "opened lazily): fetch it first");
	}
	std::vector<uint8_t> buffer;
	uint64_t page = offset / PAGE;
	uint64_t last = (end - 1) / PAGE + 1;
	while (page < last) {
		if (Present(page)) {
			page++;
			continue;
		}
		uint64_t run = page;
		while (run < last && !Present(run) && run - page < 256) { // copied 1 MiB at a time
			run++;
		}
		uint64_t from = page * PAGE;
		uint64_t to = std::min(run * PAGE, base_limit);
		buffer.resize(to - from);
		ReadFully(base_fd, buffer.data(), to - from, from, path);
		WriteFully(overlay_fd, buffer.data(), to - from, from, path);
		MarkPresent(page, run);
		Snapshots::Get().stats.bytes_preserved += to - from;
		page = run;
	}
}

void Overlay::Preserve(uint64_t offset, uint64_t length) {
	std::unique_lock<std::shared_mutex> lock(mutex);
	PreserveLocked(offset, length);
}

void Overlay::Write(const void *buffer, uint64_t length, uint64_t offset) {
	std::unique_lock<std::shared_mutex> lock(mutex);
	if (length == 0) {
		return;
	}
	uint64_t end = offset + length;
	// A page written only in part keeps the base's bytes around the write.
	if (offset % PAGE != 0) {
		PreserveLocked(offset - offset % PAGE, PAGE);
	}
	if (end % PAGE != 0) {
		PreserveLocked(end - end % PAGE, PAGE);
	}
	WriteFully(overlay_fd, static_cast<const uint8_t *>(buffer), length, offset, path);
	MarkPresent(offset / PAGE, (end - 1) / PAGE + 1);
	size = std::max(size, end);
	Snapshots::Get().stats.bytes_written_overlay += length;
}

void Overlay::Truncate(uint64_t new_size) {
	std::unique_lock<std::shared_mutex> lock(mutex);
	// A page cut in part keeps its first bytes: copied in before the limit moves below it.
	if (new_size % PAGE != 0) {
		PreserveLocked(new_size - new_size % PAGE, PAGE);
	}
	if (ftruncate(overlay_fd, off_t(new_size)) != 0) {
		throw SystemError("Cannot cut the snapshot's overlay", path);
	}
	base_limit = std::min(base_limit, new_size);
	size = new_size;
}

uint64_t Overlay::Size() {
	std::shared_lock<std::shared_mutex> lock(mutex);
	return size;
}

Snapshots &Snapshots::Get() {
	static Snapshots instance;
	return instance;
}

void Snapshots::Open(const std::string &base_path, const std::string &overlay_path) {
	int base_fd = open(base_path.c_str(), O_RDONLY | O_CLOEXEC);
	if (base_fd < 0) {
		throw SystemError("Cannot open the snapshot's base", base_path);
	}
	struct stat st;
	if (fstat(base_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(base_fd);
		errno = errno == 0 ? EINVAL : errno;
		throw SystemError("The snapshot's base is not a regular file", base_path);
	}
	int overlay_fd = open(overlay_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (overlay_fd < 0) {
		close(base_fd);
		throw SystemError("Cannot create the snapshot's overlay", overlay_path);
	}
	FileKey key {uint64_t(st.st_dev), uint64_t(st.st_ino)};
	auto overlay = std::make_shared<Overlay>(overlay_path, key, base_fd, overlay_fd, uint64_t(st.st_size));
	std::lock_guard<std::mutex> lock(mutex);
	auto old = by_path.find(overlay_path);
	if (old != by_path.end()) {
		throw std::runtime_error("A snapshot is already open at \"" + overlay_path + "\"");
	}
	by_path[overlay_path] = overlay;
	by_base.emplace(key, overlay);
	stats.overlays_open++;
}

bool Snapshots::Close(const std::string &overlay_path) {
	std::lock_guard<std::mutex> lock(mutex);
	auto found = by_path.find(overlay_path);
	if (found == by_path.end()) {
		return false;
	}
	auto overlay = found->second;
	by_path.erase(found);
	auto range = by_base.equal_range(overlay->base_key);
	for (auto it = range.first; it != range.second; ++it) {
		if (it->second == overlay) {
			by_base.erase(it);
			break;
		}
	}
	stats.overlays_open--;
	return true;
}

std::shared_ptr<Overlay> Snapshots::Find(const std::string &overlay_path) {
	std::lock_guard<std::mutex> lock(mutex);
	auto found = by_path.find(overlay_path);
	return found == by_path.end() ? nullptr : found->second;
}

bool Snapshots::Allowed(const std::string &path) {
	std::lock_guard<std::mutex> lock(mutex);
	if (bases.count(path) != 0 || by_path.count(path) != 0) {
		return true;
	}
	auto beside = [&](const std::string &owner) {
		if (path.size() <= owner.size() || path.compare(0, owner.size(), owner) != 0) {
			return false;
		}
		auto rest = path.substr(owner.size());
		return rest == ".wal" || rest.rfind(".tmp", 0) == 0 || rest.rfind(".wal.", 0) == 0;
	};
	for (auto &entry : by_path) {
		if (beside(entry.first)) {
			return true;
		}
	}
	for (auto &base : bases) {
		if (beside(base)) {
			return true;
		}
	}
	return false;
}

void Snapshots::AllowBase(const std::string &path, bool allow) {
	std::lock_guard<std::mutex> lock(mutex);
	if (allow) {
		bases.insert(path);
	} else {
		bases.erase(path);
	}
}

void Snapshots::LazyOpen(const std::string &base_path, uint64_t block_alloc_size, const uint8_t *missing,
                         uint64_t blocks) {
	FileKey key;
	if (!StatFileKey(base_path, key)) {
		throw SystemError("Cannot open the lazy base", base_path);
	}
	if (block_alloc_size == 0) {
		throw std::runtime_error("A lazy base needs a block size");
	}
	auto base = std::make_shared<LazyBase>(key, base_path, block_alloc_size, missing, blocks);
	std::lock_guard<std::mutex> lock(mutex);
	auto old = lazy.find(key);
	if (old != lazy.end()) {
		old->second->Abandon("The replica's base was opened again");
		lazy.erase(old);
		lazy_open--;
	}
	lazy[key] = base;
	lazy_open++;
}

std::shared_ptr<LazyBase> Snapshots::Lazy(const FileKey &key) {
	if (lazy_open.load() == 0) {
		return nullptr;
	}
	std::lock_guard<std::mutex> lock(mutex);
	auto found = lazy.find(key);
	return found == lazy.end() ? nullptr : found->second;
}

std::shared_ptr<LazyBase> Snapshots::LazyByPath(const std::string &base_path) {
	std::lock_guard<std::mutex> lock(mutex);
	for (auto &entry : lazy) {
		if (entry.second->path == base_path) {
			return entry.second;
		}
	}
	return nullptr;
}

void Snapshots::LazyClose(const std::string &base_path, const std::string &message) {
	std::lock_guard<std::mutex> lock(mutex);
	for (auto it = lazy.begin(); it != lazy.end(); ++it) {
		if (it->second->path == base_path) {
			it->second->Abandon(message);
			lazy.erase(it);
			lazy_open--;
			return;
		}
	}
}

void Snapshots::BeforeBaseWrite(const FileKey &key, uint64_t offset, uint64_t length) {
	if (stats.overlays_open.load() == 0) {
		return;
	}
	std::vector<std::shared_ptr<Overlay>> overlays;
	{
		std::lock_guard<std::mutex> lock(mutex);
		auto range = by_base.equal_range(key);
		for (auto it = range.first; it != range.second; ++it) {
			overlays.push_back(it->second);
		}
	}
	for (auto &overlay : overlays) {
		overlay->Preserve(offset, length);
	}
}

void Snapshots::BeforeBaseWritePath(const std::string &path, uint64_t offset, uint64_t length) {
	if (stats.overlays_open.load() == 0) {
		return;
	}
	FileKey key;
	if (!StatFileKey(path, key)) {
		throw SystemError("Cannot find the snapshots' base", path);
	}
	BeforeBaseWrite(key, offset, length);
}

} // namespace haduck
