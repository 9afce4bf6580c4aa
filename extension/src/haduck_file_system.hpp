//===----------------------------------------------------------------------===//
// haduck_file_system.hpp: the FileSystem DuckDB uses for paths that start with haduck://.
//
// Every operation strips the scheme and delegates to DuckDB's local file system; handles are
// wrapped so that every write and sync of a haduck file passes through here (DuckDB calls Write
// and Sync on the file system that created the handle).
//===----------------------------------------------------------------------===//
#pragma once
#include "duckdb.hpp"
#include "duckdb/common/file_system.hpp"
#include "duckdb_abi.hpp"
#include "snapshot.hpp"
#include "tracker.hpp"

namespace duckdb {

class HaduckFileHandle : public FileHandle {
public:
	HaduckFileHandle(FileSystem &file_system, const string &path, FileOpenFlags flags, unique_ptr<FileHandle> inner,
	                 std::shared_ptr<haduck::TrackedFile> tracked);
	~HaduckFileHandle() override;
	void Close() override;

	unique_ptr<FileHandle> inner;
	std::shared_ptr<haduck::TrackedFile> tracked;
	//! The file's identity: a follower's snapshots of it copy what they still read before it is overwritten.
	haduck::FileKey key;
};

//! Refuses `path` to a statement (a call with an opener) on an instance whose external access is off:
//! DuckDB would let it read the attached database's own files raw. Its storage passes no opener.
void RefuseStatementsOfServingInstance(const string &path, optional_ptr<FileOpener> opener);

class HaduckFileSystem : public FileSystem {
public:
	static constexpr const char *SCHEME = "haduck://";

	HaduckFileSystem();

	//! Maps haduck:///abs/path to /abs/path and haduck://rel/path to rel/path; refuses malformed paths.
	static string ToLocalPath(const string &path);

	unique_ptr<FileHandle> OpenFile(const string &path, FileOpenFlags flags,
	                                optional_ptr<FileOpener> opener = nullptr) override;
	void Read(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) override;
	void Write(FileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location) override;
	int64_t Read(FileHandle &handle, void *buffer, int64_t nr_bytes) override;
	int64_t Write(FileHandle &handle, void *buffer, int64_t nr_bytes) override;
	bool Trim(FileHandle &handle, idx_t offset_bytes, idx_t length_bytes) override;
	int64_t GetFileSize(FileHandle &handle) override;
	timestamp_t GetLastModifiedTime(FileHandle &handle) override;
	string GetVersionTag(FileHandle &handle) override;
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
	//! DuckDB 1.4.5 (COPY ... OVERWRITE, temporary files): each file goes through TryRemoveFile, so the
	//! tracker forgets each file removed.
	void RemoveFiles(const vector<string> &filenames, optional_ptr<FileOpener> opener = nullptr) override;
	//! DuckDB 1.4.5: never DuckDB's local file system (which it uses for its own extensions and secrets).
	bool IsLocalFileSystem() const override;
#endif

private:
	void WriteTracked(HaduckFileHandle &handle, void *buffer, int64_t nr_bytes, idx_t location);
	unique_ptr<FileSystem> local;
};

} // namespace duckdb
