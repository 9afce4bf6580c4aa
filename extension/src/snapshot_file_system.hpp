//===----------------------------------------------------------------------===//
// snapshot_file_system.hpp: the FileSystem for haduck-snapshot:// paths (see snapshot.hpp).
//
// Deny by default: it opens only what the bridge registered over FFI (an overlay, the files DuckDB
// keeps beside it, a base allowed for an in-place replay); any other path is an error. An overlay's
// handle reads and writes through the overlay; the others pass through to the local file system,
// and their writes copy what open overlays still read from them first.
//===----------------------------------------------------------------------===//
#pragma once
#include "duckdb.hpp"
#include "duckdb/common/file_system.hpp"
#include "duckdb_abi.hpp"
#include "snapshot.hpp"

namespace duckdb {

class HaduckSnapshotFileHandle : public FileHandle {
public:
	HaduckSnapshotFileHandle(FileSystem &file_system, const string &path, FileOpenFlags flags,
	                   std::shared_ptr<haduck::Overlay> overlay, unique_ptr<FileHandle> inner, haduck::FileKey key);
	void Close() override;

	std::shared_ptr<haduck::Overlay> overlay;
	unique_ptr<FileHandle> inner;
	haduck::FileKey key;
	idx_t position = 0;
};

class HaduckSnapshotFileSystem : public FileSystem {
public:
	static constexpr const char *SCHEME = "haduck-snapshot://";

	HaduckSnapshotFileSystem();

	unique_ptr<FileHandle> OpenFile(const string &path, FileOpenFlags flags,
	                                optional_ptr<FileOpener> opener = nullptr) override;
	void Read(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) override;
	void Write(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) override;
	int64_t Read(FileHandle &handle, void *buffer, int64_t nr_bytes) override;
	int64_t Write(FileHandle &handle, void *buffer, int64_t nr_bytes) override;
	bool Trim(FileHandle &handle, idx_t offset_bytes, idx_t length_bytes) override;
	int64_t GetFileSize(FileHandle &handle) override;
	timestamp_t GetLastModifiedTime(FileHandle &handle) override;
	FileType GetFileType(FileHandle &handle) override;
	void Truncate(FileHandle &handle, int64_t new_size) override;
	bool DirectoryExists(const string &directory, optional_ptr<FileOpener> opener = nullptr) override;
	void CreateDirectory(const string &directory, optional_ptr<FileOpener> opener = nullptr) override;
	void RemoveDirectory(const string &directory, optional_ptr<FileOpener> opener = nullptr) override;
	bool ListFiles(const string &directory, const std::function<void(const string &, bool)> &callback,
	               FileOpener *opener = nullptr) override;
	void MoveFile(const string &source, const string &target, optional_ptr<FileOpener> opener = nullptr) override;
	bool FileExists(const string &filename, optional_ptr<FileOpener> opener = nullptr) override;
	bool IsPipe(const string &filename, optional_ptr<FileOpener> opener = nullptr) override;
	void RemoveFile(const string &filename, optional_ptr<FileOpener> opener = nullptr) override;
	bool TryRemoveFile(const string &filename, optional_ptr<FileOpener> opener = nullptr) override;
	void FileSync(FileHandle &handle) override;
	vector<OpenFileInfo> Glob(const string &path, FileOpener *opener = nullptr) override;
	void Seek(FileHandle &handle, idx_t location) override;
	void Reset(FileHandle &handle) override;
	idx_t SeekPosition(FileHandle &handle) override;
	bool CanHandleFile(const string &fpath) override;
	bool CanSeek() override;
	bool OnDiskFile(FileHandle &handle) override;
	std::string GetName() const override;
#ifdef HADUCK_DUCKDB_1_4_5
	//! DuckDB 1.4.5 (COPY ... OVERWRITE, temporary files): each file goes through TryRemoveFile, so only
	//! registered paths are removed.
	void RemoveFiles(const vector<string> &filenames, optional_ptr<FileOpener> opener = nullptr) override;
	//! DuckDB 1.4.5: never DuckDB's local file system (which it uses for its own extensions and secrets).
	bool IsLocalFileSystem() const override;
#endif

private:
	//! The local path of `path`, which must be one the bridge registered.
	static string Local(const string &path);
	unique_ptr<FileSystem> local;
};

} // namespace duckdb
