//===----------------------------------------------------------------------===//
// sidecar.hpp: replication from any DuckDB host. When the store is configured in the environment
// (HADUCK_STORE, or HADUCK_S3_*) and no in-process consumer (haduck's own TypeScript bridge) is
// attached, a database opened for writing through haduck:// gets a replicator process of its own:
// `haduck sidecar <path>`, the same TypeScript replicator the bridge runs.
//
// Host and sidecar talk over a socketpair (the child's stdin and stdout), in lines:
//   host -> sidecar: gen <seq> <iteration> <header blocks> <block size> <created ms> <full scan 0|1> <n> <b,b,...>
//                    wait <seq>                (DuckDB waits for that generation: the hold's HOLD_WAITING)
//                    released <seq> <result>   (the answer to a release: 1 publishable, 0 abandoned, -1 unknown)
//                    wal <iteration> <synced size> <unix ms> <marks> <n> <first:count,...>  (a WAL FileSync;
//                        marks 0 complete, 1 lost, 2 the WAL was there at open)
//                    walreset <iteration> <size>  (the WAL was removed, or cut below its synced size)
//   sidecar -> host: hello <pid> | ready [rebuilt <iteration>] | error <message> | release <seq>
//                    (rebuilt: the WAL marks lost with a predecessor were rebuilt from the file against the store)
//                    status <last generation|-1> <lag ms> <blocks carried> <generations committed> <wal lag ms>
//                           <frames shipped> <last error>
// The hold and the release are the GenerationQueue's, exactly as in one process. A socket rather
// than a ring in shared memory: either side's death is an end-of-file the other sees at once, with
// nothing to unlink, and messages of any length (block lists) need no second shared area.
//===----------------------------------------------------------------------===//
#pragma once
#include "generation_queue.hpp"
#include "tracker.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace haduck {

struct TrackedFile;

//! One row of haduck_status().
struct SidecarRow {
	std::string path;
	std::string mode; // "sidecar", "starting", "stopped", "local-only"
	int64_t pid = 0;
	//! From the replicator's last `status` line: -1 until a generation is committed.
	int64_t last_generation = -1;
	double lag_ms = 0;
	uint64_t blocks_carried = 0;
	uint64_t generations_committed = 0;
	//! Age of the oldest commit not yet in the store (WAL frames), and the frames written.
	double wal_lag_ms = 0;
	uint64_t frames_shipped = 0;
	std::string last_error;
};

//! The replicator program: HADUCK_BIN; beside the extension (node_modules/.bin of the install it came
//! with, or this repository's); then the PATH. Empty when none is found; `searched` says where it looked.
std::string FindReplicator(std::string &searched);

class Sidecars : public TrackerListener {
public:
	struct Sidecar;

	static Sidecars &Get();

	//! HADUCK_STORE or any HADUCK_S3_* is set (the sidecar itself checks that the set is complete).
	static bool Configured();

	//! DuckDB opened `file` for writing. Starts its replicator and waits until it is ready (the
	//! first upload of an existing database happens here); throws std::runtime_error with the fix
	//! when none can be started. Without a store configured, says once that haduck runs local-only.
	void OnDatabaseOpen(TrackedFile &file);
	//! A generation of `file` was published: hands it to the file's sidecar, or starts a new
	//! sidecar when the last one died (it catches up by reconcile, then gets what is pending).
	void OnGeneration(TrackedFile &file, const Generation &generation) override;
	//! A commit of `file` while no replicator is attached: starts another when the last one died, so
	//! that frames resume at the next commit (the new one rebuilds the WAL marks that died with it).
	void RestartIfGone(TrackedFile &file) override;
	//! DuckDB waits for generation `seq` of `file` (the hold).
	void OnHoldWaiting(TrackedFile &file, uint64_t seq) override;
	//! The WAL of `file` was synced at `size` (see HADUCK_EVENT_WAL_SYNCED); `runs`: (first block, count).
	void OnWalSync(TrackedFile &file, uint64_t iteration, uint64_t size, uint64_t unix_ms, uint64_t marks,
	               const std::vector<std::pair<uint64_t, uint64_t>> &runs) override;
	void OnWalReset(TrackedFile &file, uint64_t iteration, uint64_t size) override;
	std::vector<SidecarRow> Rows();
	//! `sidecar` is its file's replicator now (not one replaced by a newer start).
	bool IsCurrent(const std::shared_ptr<Sidecar> &sidecar);

private:
	std::shared_ptr<Sidecar> Start(TrackedFile &file, bool live);
	//! The file's running replicator, or nullptr; starts another when it died (the caller holds `lock`).
	std::shared_ptr<Sidecar> CurrentOrRestart(TrackedFile &file);

	std::mutex lock;
	std::map<uint32_t, std::shared_ptr<Sidecar>> by_file;
	bool warned_local_only = false;
};

} // namespace haduck
