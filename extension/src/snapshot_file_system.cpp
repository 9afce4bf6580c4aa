#include "snapshot_file_system.hpp"
#include "haduck_file_system.hpp"

#include "duckdb/common/exception.hpp"
#include "duckdb/common/string_util.hpp"

namespace duckdb {

static constexpr idx_t SCHEME_LENGTH = 18; // strlen("haduck-snapshot://")

HaduckSnapshotFileHandle::HaduckSnapshotFileHandle(FileSystem &file_system, const string &path, FileOpenFlags flags,
                                       std::shared_ptr<haduck::Overlay> overlay_p, unique_ptr<FileHandle> inner_p,
                                       haduck::FileKey key_p)
    : FileHandle(file_system, path, flags), overlay(std::move(overlay_p)), inner(std::move(inner_p)), key(key_p) {
}

void HaduckSnapshotFileHandle::Close() {
	if (inner) {
		inner->Close();
		inner.reset();
	}
	overlay.reset();
}

static HaduckSnapshotFileHandle &Handle(FileHandle &handle) {
	auto &snapshot = handle.Cast<HaduckSnapshotFileHandle>();
	if (!snapshot.overlay && !snapshot.inner) {
		throw IOException("Cannot use \"%s\": the file was already closed", handle.path);
	}
	return snapshot;
}

HaduckSnapshotFileSystem::HaduckSnapshotFileSystem() : local(FileSystem::CreateLocal()) {
}

string HaduckSnapshotFileSystem::Local(const string &path) {
	if (!StringUtil::StartsWith(path, SCHEME)) {
		throw IOException("Invalid snapshot path \"%s\": it does not start with %s", path, SCHEME);
	}
	string local_path = path.substr(SCHEME_LENGTH);
	if (local_path.find('\0') != string::npos || !haduck::Snapshots::Get().Allowed(local_path)) {
		throw IOException("Cannot open \"%s\": it is not a snapshot haduck opened (haduck-snapshot:// paths are "
		                  "haduck's own follower snapshots, registered by its bridge)",
		                  path);
	}
	return local_path;
}

bool HaduckSnapshotFileSystem::CanHandleFile(const string &fpath) {
	return StringUtil::StartsWith(fpath, SCHEME);
}

unique_ptr<FileHandle> HaduckSnapshotFileSystem::OpenFile(const string &path, FileOpenFlags flags,
                                                    optional_ptr<FileOpener> opener) {
	RefuseStatementsOfServingInstance(path, opener);
	auto local_path = Local(path);
	auto overlay = haduck::Snapshots::Get().Find(local_path);
	if (overlay) {
		return make_uniq<HaduckSnapshotFileHandle>(*this, path, flags, std::move(overlay), nullptr, haduck::FileKey());
	}
	auto inner = local->OpenFile(local_path, flags, opener);
	if (!inner) {
		return nullptr; // FILE_FLAGS_NULL_IF_NOT_EXISTS
	}
	haduck::FileKey key;
	haduck::StatFileKey(local_path, key);
	return make_uniq<HaduckSnapshotFileHandle>(*this, path, flags, nullptr, std::move(inner), key);
}

void HaduckSnapshotFileSystem::Read(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) {
	auto &h = Handle(handle);
	if (h.overlay) {
		try {
			h.overlay->Read(buffer, uint64_t(nr_bytes), location);
		} catch (std::exception &error) {
			throw IOException("%s", error.what());
		}
		return;
	}
	local->Read(*h.inner, buffer, nr_bytes, location);
}

int64_t HaduckSnapshotFileSystem::Read(FileHandle &handle, void *buffer, int64_t nr_bytes) {
	auto &h = Handle(handle);
	if (!h.overlay) {
		return local->Read(*h.inner, buffer, nr_bytes);
	}
	auto size = idx_t(h.overlay->Size());
	auto n = h.position >= size ? 0 : std::min<idx_t>(idx_t(nr_bytes), size - h.position);
	Read(handle, buffer, int64_t(n), h.position);
	h.position += n;
	return int64_t(n);
}

void HaduckSnapshotFileSystem::Write(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) {
	auto &h = Handle(handle);
	try {
		if (h.overlay) {
			h.overlay->Write(buffer, uint64_t(nr_bytes), location);
			return;
		}
		haduck::Snapshots::Get().BeforeBaseWrite(h.key, location, uint64_t(nr_bytes));
	} catch (std::exception &error) {
		throw IOException("%s", error.what());
	}
	local->Write(*h.inner, buffer, nr_bytes, location);
}

int64_t HaduckSnapshotFileSystem::Write(FileHandle &handle, void *buffer, int64_t nr_bytes) {
	auto &h = Handle(handle);
	if (h.overlay) {
		Write(handle, buffer, nr_bytes, h.position);
		h.position += idx_t(nr_bytes);
		return nr_bytes;
	}
	// A WAL opened for appending writes at its end whatever the position says.
	idx_t location = handle.flags.OpenForAppending() ? idx_t(local->GetFileSize(*h.inner))
	                                                 : local->SeekPosition(*h.inner);
	Write(handle, buffer, nr_bytes, location);
	local->Seek(*h.inner, location + idx_t(nr_bytes));
	return nr_bytes;
}

bool HaduckSnapshotFileSystem::Trim(FileHandle &handle, idx_t offset_bytes, idx_t length_bytes) {
	// Trimming is advice: an overlay keeps its pages, and a base is never trimmed behind a snapshot's back.
	return false;
}

int64_t HaduckSnapshotFileSystem::GetFileSize(FileHandle &handle) {
	auto &h = Handle(handle);
	return h.overlay ? int64_t(h.overlay->Size()) : local->GetFileSize(*h.inner);
}

timestamp_t HaduckSnapshotFileSystem::GetLastModifiedTime(FileHandle &handle) {
	auto &h = Handle(handle);
	return h.overlay ? timestamp_t(0) : local->GetLastModifiedTime(*h.inner);
}

FileType HaduckSnapshotFileSystem::GetFileType(FileHandle &handle) {
	auto &h = Handle(handle);
	return h.overlay ? FileType::FILE_TYPE_REGULAR : local->GetFileType(*h.inner);
}

void HaduckSnapshotFileSystem::Truncate(FileHandle &handle, int64_t new_size) {
	auto &h = Handle(handle);
	try {
		if (h.overlay) {
			h.overlay->Truncate(uint64_t(new_size));
			return;
		}
		haduck::Snapshots::Get().BeforeBaseWrite(h.key, uint64_t(new_size), UINT64_MAX);
	} catch (std::exception &error) {
		throw IOException("%s", error.what());
	}
	local->Truncate(*h.inner, new_size);
}

bool HaduckSnapshotFileSystem::DirectoryExists(const string &directory, optional_ptr<FileOpener> opener) {
	return local->DirectoryExists(Local(directory), opener);
}

void HaduckSnapshotFileSystem::CreateDirectory(const string &directory, optional_ptr<FileOpener> opener) {
	local->CreateDirectory(Local(directory), opener);
}

void HaduckSnapshotFileSystem::RemoveDirectory(const string &directory, optional_ptr<FileOpener> opener) {
	local->RemoveDirectory(Local(directory), opener);
}

bool HaduckSnapshotFileSystem::ListFiles(const string &directory, const std::function<void(const string &, bool)> &callback,
                                   FileOpener *opener) {
	return local->ListFiles(Local(directory), callback, opener);
}

void HaduckSnapshotFileSystem::MoveFile(const string &source, const string &target, optional_ptr<FileOpener> opener) {
	local->MoveFile(Local(source), Local(target), opener);
}

bool HaduckSnapshotFileSystem::FileExists(const string &filename, optional_ptr<FileOpener> opener) {
	auto local_path = Local(filename);
	return haduck::Snapshots::Get().Find(local_path) != nullptr || local->FileExists(local_path, opener);
}

bool HaduckSnapshotFileSystem::IsPipe(const string &filename, optional_ptr<FileOpener> opener) {
	return false;
}

void HaduckSnapshotFileSystem::RemoveFile(const string &filename, optional_ptr<FileOpener> opener) {
	local->RemoveFile(Local(filename), opener);
}

bool HaduckSnapshotFileSystem::TryRemoveFile(const string &filename, optional_ptr<FileOpener> opener) {
	return local->TryRemoveFile(Local(filename), opener);
}

void HaduckSnapshotFileSystem::FileSync(FileHandle &handle) {
	auto &h = Handle(handle);
	if (h.inner) {
		local->FileSync(*h.inner);
	}
	// An overlay is a private scratch copy: it is never read after a crash, so it is never synced.
}

vector<OpenFileInfo> HaduckSnapshotFileSystem::Glob(const string &path, FileOpener *opener) {
	RefuseStatementsOfServingInstance(path, opener);
	auto local_path = Local(path);
	vector<OpenFileInfo> matches;
	if (haduck::Snapshots::Get().Find(local_path) != nullptr || local->FileExists(local_path)) {
		matches.emplace_back(path);
	}
	return matches;
}

void HaduckSnapshotFileSystem::Seek(FileHandle &handle, idx_t location) {
	auto &h = Handle(handle);
	if (h.overlay) {
		h.position = location;
	} else {
		local->Seek(*h.inner, location);
	}
}

void HaduckSnapshotFileSystem::Reset(FileHandle &handle) {
	Seek(handle, 0);
}

idx_t HaduckSnapshotFileSystem::SeekPosition(FileHandle &handle) {
	auto &h = Handle(handle);
	return h.overlay ? h.position : local->SeekPosition(*h.inner);
}

bool HaduckSnapshotFileSystem::CanSeek() {
	return true;
}

bool HaduckSnapshotFileSystem::OnDiskFile(FileHandle &handle) {
	return true;
}

std::string HaduckSnapshotFileSystem::GetName() const {
	return "HaduckSnapshotFileSystem";
}

#ifdef HADUCK_DUCKDB_1_4_5
void HaduckSnapshotFileSystem::RemoveFiles(const vector<string> &filenames, optional_ptr<FileOpener> opener) {
	for (auto &filename : filenames) {
		TryRemoveFile(filename, opener);
	}
}

bool HaduckSnapshotFileSystem::IsLocalFileSystem() const {
	return false;
}
#endif

} // namespace duckdb
