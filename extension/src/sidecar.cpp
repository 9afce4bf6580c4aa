#include "sidecar.hpp"

#include "haduck_assert.hpp"
#include "tracker.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace haduck {

//! Messages queued for one sidecar at most; beyond, the sidecar is told it missed events.
static constexpr size_t OUTBOX_BYTES_MAX = 64 * 1024 * 1024;
//! A replicator must say hello within this long after it was started.
static constexpr auto HELLO_TIMEOUT = std::chrono::seconds(30);
//! A replicator that died is started again at the next checkpoint, but not more often than this.
static constexpr auto RESTART_INTERVAL = std::chrono::seconds(2);

struct Sidecars::Sidecar {
	uint32_t file_id = 0;
	std::string path;
	//! The replicator's pid (from its hello), and the process posix_spawn started (HADUCK_BIN, maybe a wrapper).
	pid_t pid = 0;
	pid_t spawned_pid = 0;
	int fd = -1;
	std::shared_ptr<TrackedFile> file;
	std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

	~Sidecar() {
		if (fd >= 0) {
			close(fd);
		}
	}

	//! Waits until the replicator said ready (or failed); throws with its reason. It must say hello
	//! within HELLO_TIMEOUT (a HADUCK_BIN that is not haduck never does); reconcile, which may ship a
	//! large database's first upload, has no time limit.
	void WaitReady() {
		std::unique_lock<std::mutex> guard(lock);
		if (!changed.wait_for(guard, HELLO_TIMEOUT, [&] { return greeted || state != State::STARTING; })) {
			error = "it did not answer within " + std::to_string(HELLO_TIMEOUT.count()) + " s (is HADUCK_BIN the " +
			        "`haduck` command?)";
			kill(spawned_pid, SIGKILL);
			shutdown(fd, SHUT_RDWR); // whatever else holds its end, the reader sees the end now
		}
		changed.wait(guard, [&] { return state != State::STARTING; });
		if (state != State::READY) {
			throw std::runtime_error("haduck: the replicator for " + path + " did not start: " +
			                         (error.empty() ? "it exited (see its messages above)" : error));
		}
	}

	std::mutex lock;
	std::condition_variable changed;
	bool greeted = false;
	enum class State { STARTING, READY, FAILED, STOPPED } state = State::STARTING;
	std::string error;
	SidecarRow status;
	std::deque<std::string> outbox;
	size_t outbox_bytes = 0;
	bool overflowed = false;

	//! Serializes handing generations over: the pending ones at "ready", and each new one after it,
	//! so that the replicator sees them in order (it skips a sequence number it has seen).
	std::mutex handover;

	//! Queues a line for the writer thread; never blocks a DuckDB thread. Answers to releases are
	//! never dropped (the replicator waits for them); generations beyond the bound are.
	void Send(std::string line, bool control = false) {
		std::lock_guard<std::mutex> guard(lock);
		if (state == State::STOPPED || state == State::FAILED) {
			return;
		}
		if (!control && outbox_bytes + line.size() > OUTBOX_BYTES_MAX) {
			overflowed = true; // the sidecar falls back to comparing every block (see "overflow")
			if (file) {
				file->wal_marks_lost.store(true); // and ships no more frames of this iteration
			}
			return;
		}
		outbox_bytes += line.size();
		outbox.push_back(std::move(line));
		changed.notify_all();
	}
};

Sidecars &Sidecars::Get() {
	static Sidecars *sidecars = new Sidecars(); // never destroyed: its threads may outlive static destructors
	return *sidecars;
}

static bool EnvSet(const char *name) {
	const char *value = std::getenv(name);
	return value && *value;
}

bool Sidecars::Configured() {
	return EnvSet("HADUCK_STORE") || EnvSet("HADUCK_S3_BUCKET") || EnvSet("HADUCK_S3_ENDPOINT") ||
	       EnvSet("HADUCK_S3_ACCESS_KEY") || EnvSet("HADUCK_S3_SECRET_KEY");
}

static void WriterLoop(std::shared_ptr<Sidecars::Sidecar> sidecar);
static void ReaderLoop(std::shared_ptr<Sidecars::Sidecar> sidecar);

std::shared_ptr<Sidecars::Sidecar> Sidecars::Start(TrackedFile &file, bool live) {
	std::string searched;
	auto binary = FindReplicator(searched);
	if (binary.empty()) {
		throw std::runtime_error("haduck: a store is configured (HADUCK_STORE or HADUCK_S3_*) but no replicator was "
		                         "found in " + searched + ": install haduck (npm install haduck) and set HADUCK_BIN "
		                         "to its `haduck` command, or unset the store variables to run local-only");
	}
	int fds[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
		throw std::runtime_error(std::string("haduck: cannot create a socket for the replicator: ") + strerror(errno));
	}
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, fds[1], 0);
	posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
	std::vector<std::string> env_strings;
	for (char **entry = environ; entry && *entry; entry++) {
		env_strings.emplace_back(*entry);
	}
	env_strings.push_back("HADUCK_SIDECAR=1");
	env_strings.push_back("HADUCK_SIDECAR_HOST_PID=" + std::to_string(getpid()));
	std::vector<char *> envp;
	for (auto &entry : env_strings) {
		envp.push_back(const_cast<char *>(entry.c_str()));
	}
	envp.push_back(nullptr);
	std::string command = "sidecar";
	std::string live_flag = "--live";
	std::vector<char *> argv {const_cast<char *>(binary.c_str()), const_cast<char *>(command.c_str()),
	                          const_cast<char *>(file.path.c_str())};
	if (live) {
		argv.push_back(const_cast<char *>(live_flag.c_str()));
	}
	argv.push_back(nullptr);
	pid_t pid = 0;
	int spawned = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
	posix_spawn_file_actions_destroy(&actions);
	close(fds[1]);
	if (spawned != 0) {
		close(fds[0]);
		throw std::runtime_error("haduck: cannot start the replicator " + binary + ": " + strerror(spawned) +
		                         "; set HADUCK_BIN to the `haduck` command");
	}
	auto sidecar = std::make_shared<Sidecar>();
	sidecar->file_id = file.id;
	sidecar->path = file.path;
	sidecar->pid = pid;
	sidecar->spawned_pid = pid;
	sidecar->fd = fds[0];
	sidecar->file = Tracker::Get().Find(file.id);
	std::thread(WriterLoop, sidecar).detach();
	std::thread(ReaderLoop, sidecar).detach();
	return sidecar;
}

void Sidecars::OnDatabaseOpen(TrackedFile &file) {
	if (EnvSet("HADUCK_SIDECAR") || Tracker::Get().ConsumerAttached()) {
		return; // the in-process bridge replicates (or this is a sidecar's own DuckDB)
	}
	std::unique_lock<std::mutex> guard(lock);
	if (!Configured()) {
		if (!warned_local_only) {
			warned_local_only = true;
			std::fprintf(stderr, "haduck: local-only mode: no store configured (set HADUCK_S3_BUCKET, HADUCK_S3_ENDPOINT, "
			                     "HADUCK_S3_ACCESS_KEY, HADUCK_S3_SECRET_KEY, or HADUCK_STORE=file:///dir); "
			                     "tracking changes, uploading nothing\n");
		}
		return;
	}
	auto existing = by_file.find(file.id);
	if (existing != by_file.end()) {
		auto current = existing->second;
		bool running;
		{
			std::lock_guard<std::mutex> sidecar_guard(current->lock);
			running = current->state == Sidecar::State::READY || current->state == Sidecar::State::STARTING;
		}
		if (running) {
			// Re-attached in the same host: the same replicator goes on (one starting is waited for).
			guard.unlock();
			current->WaitReady();
			return;
		}
	}
	auto sidecar = Start(file, false);
	by_file[file.id] = sidecar;
	guard.unlock(); // other databases' generations go on while this one's replicator starts
	sidecar->WaitReady();
}

static std::string GenerationLine(const Generation &generation) {
	std::string line = "gen " + std::to_string(generation.seq) + " " + std::to_string(generation.iteration) + " " +
	                   std::to_string(generation.header_block_count) + " " +
	                   std::to_string(generation.block_alloc_size) + " " + std::to_string(generation.created_unix_ms) +
	                   " " + (generation.needs_full_scan ? "1" : "0") + " " + std::to_string(generation.blocks.size()) +
	                   " ";
	for (size_t i = 0; i < generation.blocks.size(); i++) {
		if (i > 0) {
			line += ",";
		}
		line += std::to_string(generation.blocks[i]);
	}
	return line + "\n";
}

std::shared_ptr<Sidecars::Sidecar> Sidecars::CurrentOrRestart(TrackedFile &file) {
	// The caller holds `lock`.
	auto entry = by_file.find(file.id);
	if (entry == by_file.end()) {
		return nullptr; // none was ever started for this file (in-process bridge, local-only, read-only)
	}
	auto sidecar = entry->second;
	bool gone;
	{
		std::lock_guard<std::mutex> sidecar_guard(sidecar->lock);
		gone = sidecar->state == Sidecar::State::STOPPED || sidecar->state == Sidecar::State::FAILED;
	}
	if (!gone) {
		return sidecar;
	}
	// The replicator died: start another without making DuckDB wait for it (at most one start per
	// RESTART_INTERVAL). It reconciles the file with the store while DuckDB writes (--live), and on
	// "ready" gets every generation still pending (see Handle).
	auto now = std::chrono::steady_clock::now();
	if (now - sidecar->started < RESTART_INTERVAL) {
		return nullptr;
	}
	try {
		by_file[file.id] = Start(file, true);
	} catch (std::exception &error) {
		sidecar->started = now;
		std::fprintf(stderr, "%s\n", error.what());
	}
	return nullptr;
}

void Sidecars::OnGeneration(TrackedFile &file, const Generation &generation) {
	std::shared_ptr<Sidecar> sidecar;
	{
		std::lock_guard<std::mutex> guard(lock);
		sidecar = CurrentOrRestart(file);
		if (!sidecar) {
			return;
		}
	}
	std::lock_guard<std::mutex> handover(sidecar->handover);
	if (file.sidecar_attached.load()) {
		sidecar->Send(GenerationLine(generation));
	}
}

void Sidecars::OnHoldWaiting(TrackedFile &file, uint64_t seq) {
	std::lock_guard<std::mutex> guard(lock);
	auto entry = by_file.find(file.id);
	if (entry != by_file.end() && file.sidecar_attached.load()) {
		entry->second->Send("wait " + std::to_string(seq) + "\n");
	}
}

void Sidecars::OnWalSync(TrackedFile &file, uint64_t iteration, uint64_t size, uint64_t unix_ms, uint64_t marks,
                         const std::vector<std::pair<uint64_t, uint64_t>> &runs) {
	std::string line = "wal " + std::to_string(iteration) + " " + std::to_string(size) + " " +
	                   std::to_string(unix_ms) + " " + std::to_string(marks) + " " + std::to_string(runs.size()) + " ";
	for (size_t i = 0; i < runs.size(); i++) {
		line += (i > 0 ? "," : "") + std::to_string(runs[i].first) + ":" + std::to_string(runs[i].second);
	}
	std::lock_guard<std::mutex> guard(lock);
	auto entry = by_file.find(file.id);
	if (entry != by_file.end() && file.sidecar_attached.load()) {
		entry->second->Send(line + "\n");
	}
}

void Sidecars::RestartIfGone(TrackedFile &file) {
	std::lock_guard<std::mutex> guard(lock);
	CurrentOrRestart(file);
}

void Sidecars::OnWalReset(TrackedFile &file, uint64_t iteration, uint64_t size) {
	std::lock_guard<std::mutex> guard(lock);
	auto entry = by_file.find(file.id);
	if (entry != by_file.end() && file.sidecar_attached.load()) {
		entry->second->Send("walreset " + std::to_string(iteration) + " " + std::to_string(size) + "\n");
	}
}

bool Sidecars::IsCurrent(const std::shared_ptr<Sidecar> &sidecar) {
	std::lock_guard<std::mutex> guard(lock);
	auto entry = by_file.find(sidecar->file_id);
	return entry != by_file.end() && entry->second == sidecar;
}

std::vector<SidecarRow> Sidecars::Rows() {
	std::lock_guard<std::mutex> guard(lock);
	std::vector<SidecarRow> rows;
	for (auto &entry : by_file) {
		auto &sidecar = *entry.second;
		std::lock_guard<std::mutex> sidecar_guard(sidecar.lock);
		SidecarRow row;
		row.path = sidecar.path;
		row.pid = sidecar.pid;
		row.mode = sidecar.state == Sidecar::State::READY      ? "sidecar"
		           : sidecar.state == Sidecar::State::STARTING ? "starting"
		                                                       : "stopped";
		row.last_generation = sidecar.status.last_generation;
		row.lag_ms = sidecar.status.lag_ms;
		row.blocks_carried = sidecar.status.blocks_carried;
		row.generations_committed = sidecar.status.generations_committed;
		row.wal_lag_ms = sidecar.status.wal_lag_ms;
		row.frames_shipped = sidecar.status.frames_shipped;
		row.last_error = sidecar.status.last_error.empty() ? sidecar.error : sidecar.status.last_error;
		rows.push_back(std::move(row));
	}
	return rows;
}

static void Stop(const std::shared_ptr<Sidecars::Sidecar> &sidecar, const std::string &why) {
	{
		std::lock_guard<std::mutex> guard(sidecar->lock);
		if (sidecar->state == Sidecars::Sidecar::State::STOPPED) {
			return;
		}
		if (sidecar->state == Sidecars::Sidecar::State::STARTING && sidecar->error.empty()) {
			sidecar->error = why;
		}
		sidecar->state = Sidecars::Sidecar::State::STOPPED;
		sidecar->outbox.clear();
		sidecar->changed.notify_all();
	}
	// DuckDB must not wait for a replicator that is gone: drop the hold. The generation stays pending,
	// so the next replicator gets it (and carries its blocks, since no hold protected them). Only the
	// file's current replicator may do that: an older one ending must not switch off its successor.
	if (sidecar->file && Sidecars::Get().IsCurrent(sidecar)) {
		std::lock_guard<std::mutex> handover(sidecar->handover);
		sidecar->file->sidecar_attached.store(false);
		Tracker::Get().WalMarksLost(*sidecar->file); // what it was told of the WAL's blocks died with it
		Tracker::Get().DropHold(sidecar->file_id);
	}
	shutdown(sidecar->fd, SHUT_RDWR);
}

static void WriterLoop(std::shared_ptr<Sidecars::Sidecar> sidecar) {
	for (;;) {
		std::string line;
		{
			std::unique_lock<std::mutex> guard(sidecar->lock);
			sidecar->changed.wait(guard, [&] {
				return !sidecar->outbox.empty() || sidecar->overflowed ||
				       sidecar->state == Sidecars::Sidecar::State::STOPPED;
			});
			if (sidecar->state == Sidecars::Sidecar::State::STOPPED) {
				return;
			}
			if (sidecar->overflowed && sidecar->outbox.empty()) {
				sidecar->overflowed = false;
				line = "overflow\n";
			} else {
				line = std::move(sidecar->outbox.front());
				sidecar->outbox.pop_front();
				sidecar->outbox_bytes -= line.size();
			}
		}
		for (size_t done = 0; done < line.size();) {
			auto sent = send(sidecar->fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
			if (sent < 0 && errno == EINTR) {
				continue;
			}
			if (sent <= 0) {
				Stop(sidecar, "the connection to the replicator broke");
				return;
			}
			done += size_t(sent);
		}
	}
}

static void Handle(const std::shared_ptr<Sidecars::Sidecar> &sidecar, const std::string &line) {
	auto space = line.find(' ');
	auto verb = line.substr(0, space);
	auto rest = space == std::string::npos ? "" : line.substr(space + 1);
	if (verb == "hello") {
		// The replicator's own pid (HADUCK_BIN may be a wrapper that started it).
		std::lock_guard<std::mutex> guard(sidecar->lock);
		sidecar->pid = pid_t(std::strtol(rest.c_str(), nullptr, 10));
		sidecar->greeted = true;
		sidecar->changed.notify_all();
	} else if (verb == "release") {
		uint64_t seq = std::strtoull(rest.c_str(), nullptr, 10);
		int result = Tracker::Get().ReleaseGeneration(seq);
		sidecar->Send("released " + std::to_string(seq) + " " + std::to_string(result) + "\n", true);
	} else if (verb == "status") {
		SidecarRow status;
		std::istringstream fields(rest);
		fields >> status.last_generation >> status.lag_ms >> status.blocks_carried >> status.generations_committed >>
		    status.wal_lag_ms >> status.frames_shipped;
		std::getline(fields >> std::ws, status.last_error);
		std::lock_guard<std::mutex> guard(sidecar->lock);
		sidecar->status = status;
	} else if (verb == "error") {
		std::lock_guard<std::mutex> guard(sidecar->lock);
		sidecar->error = rest;
	} else if (verb == "ready") {
		// From now on generations are held for it; the ones committed while it started (or while no
		// replicator ran) are still pending: hand them over. Their release answers 0 (no hold
		// protected them), so their blocks are carried into the next generation, which is held.
		if (sidecar->file) {
			std::lock_guard<std::mutex> handover(sidecar->handover);
			// "ready rebuilt <iteration>": the replicator compared the file with the store after its
			// predecessor died (every block written since then is still marked here: nobody drained the
			// WAL marks meanwhile), so the marks that died with its predecessor are whole again.
			if (rest.rfind("rebuilt ", 0) == 0) {
				uint64_t iteration = std::strtoull(rest.c_str() + 8, nullptr, 10);
				std::lock_guard<std::mutex> commit(sidecar->file->commit_lock);
				if (!sidecar->file->header_pending && sidecar->file->last_iteration.load() == iteration) {
					sidecar->file->wal_marks_lost.store(false);
					sidecar->file->wal_leftover.store(false);
				}
			}
			sidecar->file->sidecar_attached.store(true);
			for (auto &generation : Tracker::Get().PendingGenerationsOf(sidecar->file_id)) {
				sidecar->Send(GenerationLine(generation));
			}
		}
		std::lock_guard<std::mutex> guard(sidecar->lock);
		if (sidecar->state == Sidecars::Sidecar::State::STARTING) {
			sidecar->state = Sidecars::Sidecar::State::READY;
		}
		sidecar->changed.notify_all();
	}
}

static void ReaderLoop(std::shared_ptr<Sidecars::Sidecar> sidecar) {
	std::string buffer;
	char chunk[65536];
	for (;;) {
		auto received = recv(sidecar->fd, chunk, sizeof(chunk), 0);
		if (received < 0 && errno == EINTR) {
			continue;
		}
		if (received <= 0) {
			break;
		}
		buffer.append(chunk, size_t(received));
		for (size_t end; (end = buffer.find('\n')) != std::string::npos;) {
			Handle(sidecar, buffer.substr(0, end));
			buffer.erase(0, end + 1);
		}
	}
	Stop(sidecar, "the replicator exited");
	int status = 0;
	waitpid(sidecar->spawned_pid, &status, 0); // reap what we started: no zombie left in the host
}

} // namespace haduck
