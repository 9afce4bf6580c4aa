#include "haduck_file_system.hpp"

#include "sidecar.hpp"

#include "duckdb/common/exception.hpp"
#include "duckdb/common/file_opener.hpp"
#include "duckdb/common/types/value.hpp"
#include "duckdb/common/string_util.hpp"

namespace duckdb {

static constexpr idx_t SCHEME_LENGTH = 9; // strlen("haduck://")

HaduckFileHandle::HaduckFileHandle(FileSystem &file_system, const string &path, FileOpenFlags flags,
                                   unique_ptr<FileHandle> inner_p, std::shared_ptr<haduck::TrackedFile> tracked_p)
    : FileHandle(file_system, path, flags), inner(std::move(inner_p)), tracked(std::move(tracked_p)) {
}

HaduckFileHandle::~HaduckFileHandle() {
	if (inner) {
		haduck::Tracker::Get().AfterClose(*tracked);
	}
}

void HaduckFileHandle::Close() {
	if (inner) {
		inner->Close();
		inner.reset();
		haduck::Tracker::Get().AfterClose(*tracked);
	}
}

static HaduckFileHandle &Wrapped(FileHandle &handle) {
	return handle.Cast<HaduckFileHandle>();
}

static FileHandle &Inner(FileHandle &handle) {
	auto &wrapped = Wrapped(handle);
	if (!wrapped.inner) {
		throw IOException("Cannot use \"%s\": the file was already closed", handle.path);
	}
	return *wrapped.inner;
}

//! A promoted follower's file may still be read by its last snapshots (see snapshot.hpp).
static void BeforeBaseWrite(const haduck::FileKey &key, uint64_t offset, uint64_t length) {
	try {
		haduck::Snapshots::Get().BeforeBaseWrite(key, offset, length);
	} catch (std::exception &error) {
		throw IOException("%s", error.what());
	}
}

HaduckFileSystem::HaduckFileSystem() : local(FileSystem::CreateLocal()) {
}

string HaduckFileSystem::ToLocalPath(const string &path) {
	auto invalid = [&](const string &why) {
		return IOException("Invalid haduck path \"%s\": %s. Expected haduck:///absolute/path/to/db.duckdb (or "
		                   "haduck://relative/path, resolved against the working directory)",
		                   path, why);
	};
	if (!StringUtil::StartsWith(path, SCHEME)) {
		throw invalid("it does not start with haduck://");
	}
	string local_path = path.substr(SCHEME_LENGTH);
	if (local_path.empty() || local_path == "/") {
		throw invalid("the path after haduck:// is empty");
	}
	if (local_path.find('\0') != string::npos) {
		throw invalid("it contains a NUL byte");
	}
	for (auto &segment : StringUtil::Split(local_path, '/')) {
		if (segment == "..") {
			throw invalid("'..' segments are not allowed");
		}
	}
	return local_path;
}

bool HaduckFileSystem::CanHandleFile(const string &fpath) {
	return StringUtil::StartsWith(fpath, SCHEME);
}

void RefuseStatementsOfServingInstance(const string &path, optional_ptr<FileOpener> opener) {
	// DuckDB's storage opens the database, its WAL and its checkpoint files without an opener; a
	// statement's table function (read_blob, glob) opens with the statement's. With external access
	// off DuckDB lets statements reach the attached files: haduck does not.
	if (!opener) {
		return;
	}
	Value external;
	if (FileOpener::TryGetCurrentSetting(opener, "enable_external_access", external) && !external.IsNull() &&
	    !external.GetValue<bool>()) {
		throw PermissionException("Cannot open \"%s\" from a statement: with external access off, a database's "
		                          "own files are reached only by DuckDB's storage (haduck serves them over SQL as "
		                          "tables, never as files)",
		                          path);
	}
}

unique_ptr<FileHandle> HaduckFileSystem::OpenFile(const string &path, FileOpenFlags flags,
                                                  optional_ptr<FileOpener> opener) {
	RefuseStatementsOfServingInstance(path, opener);
	auto local_path = ToLocalPath(path);
	if (local->DirectoryExists(local_path)) {
		throw IOException("Cannot open \"%s\": it is a directory; give the path of a database file", path);
	}
	auto inner = local->OpenFile(local_path, flags, opener);
	if (!inner) {
		return nullptr; // FILE_FLAGS_NULL_IF_NOT_EXISTS
	}
	if (inner->GetType() != FileType::FILE_TYPE_REGULAR) {
		// A device, FIFO or socket has no blocks to track or ship (and /dev/zero never ends).
		throw IOException("Cannot open \"%s\": it is not a regular file (a device, FIFO or socket); give the path "
		                  "of a database file",
		                  path);
	}
	auto &tracker = haduck::Tracker::Get();
	// The replicator processes hear the tracker's events (before any file's first event).
	static const bool listening = (tracker.SetListener(&haduck::Sidecars::Get()), true);
	(void)listening;
	auto tracked = tracker.Open(local_path);
	if (tracked->kind.load() == HADUCK_FILE_KIND_OTHER && inner->GetType() == FileType::FILE_TYPE_REGULAR &&
	    inner->GetFileSize() >= idx_t(haduck::HEADER_REGION_SIZE)) {
		// An existing DuckDB file: learn its block size and iteration before the first write.
		std::vector<uint8_t> header(haduck::HEADER_REGION_SIZE);
		local->Read(*inner, header.data(), int64_t(header.size()), 0);
		tracker.IdentifyFromHeader(*tracked, header.data(), header.size());
	}
	auto kind = tracked->kind.load();
	if (flags.Lock() == FileLockType::WRITE_LOCK && kind != HADUCK_FILE_KIND_WAL &&
	    kind != HADUCK_FILE_KIND_WAL_CHECKPOINT && kind != HADUCK_FILE_KIND_TEMP) {
		// DuckDB takes a write lock on a database it opens for writing (never on a WAL or a CSV): with a
		// store configured, its replicator starts now, and ATTACH fails by name if none can.
		try {
			haduck::Sidecars::Get().OnDatabaseOpen(*tracked);
		} catch (std::exception &error) {
			throw IOException("%s", error.what());
		}
	}
	tracker.AfterOpen(*tracked, kind == HADUCK_FILE_KIND_WAL ? uint64_t(inner->GetFileSize()) : 0);
	auto handle = make_uniq<HaduckFileHandle>(*this, path, flags, std::move(inner), std::move(tracked));
	haduck::StatFileKey(local_path, handle->key);
	return std::move(handle);
}

void HaduckFileSystem::Read(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) {
	local->Read(Inner(handle), buffer, nr_bytes, location);
}

int64_t HaduckFileSystem::Read(FileHandle &handle, void *buffer, int64_t nr_bytes) {
	return local->Read(Inner(handle), buffer, nr_bytes);
}

void HaduckFileSystem::WriteTracked(HaduckFileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) {
	auto &tracker = haduck::Tracker::Get();
	tracker.BeforeWrite(*handle.tracked, location, uint64_t(nr_bytes));
	BeforeBaseWrite(handle.key, location, uint64_t(nr_bytes));
	local->Write(Inner(handle), buffer, nr_bytes, location);
	tracker.AfterWrite(*handle.tracked, static_cast<const uint8_t *>(buffer), location, uint64_t(nr_bytes));
}

void HaduckFileSystem::Write(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) {
	WriteTracked(Wrapped(handle), buffer, nr_bytes, location);
}

int64_t HaduckFileSystem::Write(FileHandle &handle, void *buffer, int64_t nr_bytes) {
	auto &inner = Inner(handle);
	// Opened for appending (DuckDB's WAL when it continues one left by an earlier process): the kernel
	// writes at the end whatever offset it is given (O_APPEND), while the handle's position starts at 0.
	// Tracked from the position, a restarted WAL's commits looked like rewrites of its first bytes, and
	// its synced size never grew: frames stopped after every restart (issue 23, C).
	idx_t location = handle.flags.OpenForAppending() ? idx_t(local->GetFileSize(inner)) : local->SeekPosition(inner);
	WriteTracked(Wrapped(handle), buffer, nr_bytes, location);
	local->Seek(inner, location + idx_t(nr_bytes));
	return nr_bytes;
}

bool HaduckFileSystem::Trim(FileHandle &handle, idx_t offset_bytes, idx_t length_bytes) {
	// Trimmed ranges are blocks free under the committed header: restore never needs their contents.
	return local->Trim(Inner(handle), offset_bytes, length_bytes);
}

int64_t HaduckFileSystem::GetFileSize(FileHandle &handle) {
	return local->GetFileSize(Inner(handle));
}

timestamp_t HaduckFileSystem::GetLastModifiedTime(FileHandle &handle) {
	return local->GetLastModifiedTime(Inner(handle));
}

string HaduckFileSystem::GetVersionTag(FileHandle &handle) {
	return local->GetVersionTag(Inner(handle));
}

FileType HaduckFileSystem::GetFileType(FileHandle &handle) {
	return local->GetFileType(Inner(handle));
}

void HaduckFileSystem::Truncate(FileHandle &handle, int64_t new_size) {
	BeforeBaseWrite(Wrapped(handle).key, uint64_t(new_size), UINT64_MAX);
	local->Truncate(Inner(handle), new_size);
	haduck::Tracker::Get().AfterTruncate(*Wrapped(handle).tracked, uint64_t(new_size));
}

bool HaduckFileSystem::DirectoryExists(const string &directory, optional_ptr<FileOpener> opener) {
	return local->DirectoryExists(ToLocalPath(directory), opener);
}

void HaduckFileSystem::CreateDirectory(const string &directory, optional_ptr<FileOpener> opener) {
	local->CreateDirectory(ToLocalPath(directory), opener);
}

void HaduckFileSystem::RemoveDirectory(const string &directory, optional_ptr<FileOpener> opener) {
	local->RemoveDirectory(ToLocalPath(directory), opener);
}

bool HaduckFileSystem::ListFiles(const string &directory, const std::function<void(const string &, bool)> &callback,
                                 FileOpener *opener) {
	return local->ListFiles(ToLocalPath(directory), callback, opener);
}

void HaduckFileSystem::MoveFile(const string &source, const string &target, optional_ptr<FileOpener> opener) {
	auto local_source = ToLocalPath(source);
	auto local_target = ToLocalPath(target);
	local->MoveFile(local_source, local_target, opener);
	haduck::Tracker::Get().AfterMove(local_source, local_target);
}

bool HaduckFileSystem::FileExists(const string &filename, optional_ptr<FileOpener> opener) {
	return local->FileExists(ToLocalPath(filename), opener);
}

bool HaduckFileSystem::IsPipe(const string &filename, optional_ptr<FileOpener> opener) {
	return local->IsPipe(ToLocalPath(filename), opener);
}

void HaduckFileSystem::RemoveFile(const string &filename, optional_ptr<FileOpener> opener) {
	auto local_path = ToLocalPath(filename);
	local->RemoveFile(local_path, opener);
	haduck::Tracker::Get().AfterRemove(local_path);
}

bool HaduckFileSystem::TryRemoveFile(const string &filename, optional_ptr<FileOpener> opener) {
	auto local_path = ToLocalPath(filename);
	bool removed = local->TryRemoveFile(local_path, opener);
	if (removed) {
		haduck::Tracker::Get().AfterRemove(local_path);
	}
	return removed;
}

void HaduckFileSystem::FileSync(FileHandle &handle) {
	local->FileSync(Inner(handle));
	haduck::Tracker::Get().AfterSync(*Wrapped(handle).tracked);
}

vector<OpenFileInfo> HaduckFileSystem::Glob(const string &path, FileOpener *opener) {
	RefuseStatementsOfServingInstance(path, opener);
	auto matches = local->Glob(ToLocalPath(path), opener);
	for (auto &match : matches) {
		match.path = SCHEME + match.path;
	}
	return matches;
}

void HaduckFileSystem::Seek(FileHandle &handle, idx_t location) {
	local->Seek(Inner(handle), location);
}

void HaduckFileSystem::Reset(FileHandle &handle) {
	local->Reset(Inner(handle));
}

idx_t HaduckFileSystem::SeekPosition(FileHandle &handle) {
	return local->SeekPosition(Inner(handle));
}

bool HaduckFileSystem::CanSeek() {
	return true;
}

bool HaduckFileSystem::OnDiskFile(FileHandle &handle) {
	return true;
}

std::string HaduckFileSystem::GetName() const {
	return "HaduckFileSystem";
}

#ifdef HADUCK_DUCKDB_1_4_5
void HaduckFileSystem::RemoveFiles(const vector<string> &filenames, optional_ptr<FileOpener> opener) {
	for (auto &filename : filenames) {
		TryRemoveFile(filename, opener);
	}
}

bool HaduckFileSystem::IsLocalFileSystem() const {
	return false;
}
#endif

} // namespace duckdb
