/**
 * @module
 * Tells a DuckDB failure of resources (memory, temp space, disk) from a refusal of the file. Read
 * from DuckDB 1.4.4's source rather than from one message: every `OutOfMemoryException`
 * (`src/common/exception.cpp`, `ExtendOutOfMemoryError`) carries the tuning guide's address and
 * "Out of Memory Error" as its type, and keeps both when a WAL replay or a commit wraps it in
 * another error ("TransactionContext Error: Failure while replaying WAL file ...: Failed to commit:
 * failed to pin block ..."), which is how issue 30's replay reported it. The buffer manager's own
 * phrases (`standard_buffer_manager.cpp`: "could not allocate block", "failed to pin block"; the
 * temporary file manager's "failed to offload data block" under `max_temp_directory_size`;
 * `allocator.cpp`'s "Failed to allocate block"; `error_data.cpp`'s "Allocation failure" for a
 * `std::bad_alloc`) are matched too, since a wrapper may keep only the first line. A full disk
 * ("No space left on device", ENOSPC; "Disk quota exceeded") is the machine's, never the file's.
 */

const MEMORY = [
  /Out of Memory Error/i,
  /how_to_tune_workloads/,
  /could not allocate block of size/i,
  /failed to pin block of size/i,
  /failed to offload data block/i,
  /Failed to (re-)?allocate block of \d+ bytes/i,
  /Allocation failure/,
  /std::bad_alloc/,
  /max_temp_directory_size/,
];
const DISK = [/No space left on device/i, /ENOSPC/, /Disk quota exceeded/i, /EDQUOT/];

/** "memory" when more memory (or temp space) may help, "disk" when the disk is full, else undefined. */
export function isResourceFailure(message: string): "memory" | "disk" | undefined {
  if (DISK.some((pattern) => pattern.test(message))) return "disk";
  if (MEMORY.some((pattern) => pattern.test(message))) return "memory";
  return undefined;
}

/** The open check child's exit code for "the check could not run here": never read as the file's fault. */
export const CHECK_EXIT_UNAVAILABLE = 3;
