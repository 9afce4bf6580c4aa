/**
 * @module
 * The help text of every command (`haduck <command> --help`).
 */
export const HELP: Record<string, string> = {
  main: `haduck: highly available embedded DuckDB (block-level replication to object storage)

Usage: haduck <command> [options]

Commands:
  attach <db-path>    open a database with replication running (SQL shell, or -c/-f)
  databases (ls)      list the databases in the store: key, last generation, its time and size (--json)
  restore --to <path> restore a generation into a new file
  generations         list the generations of a database in the store (--json)
  verify              check every object and checksum, and restore and open the latest commit (--drill: every generation)
  status              the latest generation and the store's state (--json)
  gc                  delete generations beyond the kept ones (dry run unless --apply)
  fork --to-key KEY   a new database in the store at a commit of this one, without copying a block
  serve <db-path>     serve a database over HTTP (SQL, admin) as a node of a cluster, no shell
  rekey               encrypt every object with the current key (after a rotation, or a plain store)
  handoff             move a cluster's lease to another node without stopping (--node URL [--to URL])
  aside [PATH]        list the databases a takeover moved aside (*.haduck-aside-*), size and age; --apply deletes
  version             haduck's version and the DuckDB it is built for (also --version)

Store (every command): --store file:///abs/dir | --store s3://bucket/prefix [--endpoint URL],
  or HADUCK_STORE=file:///abs/dir | s3://bucket/prefix (an s3:// store takes its endpoint and keys from
  --endpoint and the variables below), or HADUCK_S3_BUCKET, HADUCK_S3_ENDPOINT, HADUCK_S3_ACCESS_KEY,
  HADUCK_S3_SECRET_KEY (HADUCK_S3_PREFIX, HADUCK_S3_REGION). What HADUCK_S3_* leave unset comes from AWS's
  variables: the endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (else AWS S3 itself), the region
  from AWS_REGION or AWS_DEFAULT_REGION, the keys from the AWS credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE
  and ~/.aws, container credentials, instance metadata); never from a flag (a flag would show them in the
  process list). --db-key KEY names the database in the store: attach and serve default to the file's
  name, the commands that read the store require it (\`haduck databases\` lists the keys). Flags win over
  variables, HADUCK_STORE over HADUCK_S3_*, and HADUCK_S3_* over AWS_*.
  An s3:// URL may carry its own endpoint and region: s3://bucket/prefix?endpoint=https://host:port&region=R.

Replica stores (attach, serve, gc, and the sidecar of a DuckDB host): --replica-store URL (repeatable,
  the same URL forms), or HADUCK_REPLICA_STORES=URL[,URL...] (commas or spaces). Every object the
  store accepts is copied on to each, asynchronously and in order; commits and --sync wait for the
  store only. The lease stays in the store. restore, verify and generations read any of them with
  --store; gc --replica-store applies its policy to each.

Encryption (every command, attach, serve and the extension's sidecar alike): HADUCK_ENCRYPTION_KEY=KEY
  (32 bytes as 64 hex digits or base64; several keys separated by commas, the current one first) or
  HADUCK_ENCRYPTION_KEY_FILE=PATH (one key per line, the current one first) encrypts every object
  haduck writes (AES-256-GCM; lease.json stays plain) and opens what any listed key encrypted. A
  missing or wrong key is exit 3 naming the key id the object needs. HADUCK_ENCRYPTION_ACCEPT_PLAIN=1
  also reads plain objects while \`haduck rekey\` moves a plain store to encryption.

Progress: on a terminal, long work (uploads, restore, verify, gc) draws a bar on stderr; off a terminal
  nothing, unless --progress asks for a plain line at every tenth of the way.

Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 store or node unreachable, or access denied,
  5 integrity failure, 6 conflict (target exists, diverged), 7 the open check could not run here (out of
  memory or disk: give it more with HADUCK_CHECK_MEMORY_MB; nothing is wrong with the store).

Examples:
  haduck attach demo.duckdb --store file://$PWD/haduck-store -c "CREATE TABLE t AS SELECT 42 AS x"
  haduck databases --store file://$PWD/haduck-store
  haduck generations --store file://$PWD/haduck-store --db-key demo.duckdb
  haduck restore --store file://$PWD/haduck-store --db-key demo.duckdb --to restored.duckdb`,
  attach: `Usage: haduck attach <db-path> [--store URL] [--replica-store URL]... [-c SQL]... [-f file.sql] [--sync]
       [--admin HOST:PORT]
       haduck attach --from-store --store URL --db-key KEY [--generation N | --time ISO-8601] [-c SQL]...
Opens <db-path> through haduck://, ships a generation at every checkpoint and the WAL's commits in
between (WAL frames, within about 250 ms), and prints one line per generation. Without -c or -f it
starts an SQL shell, or runs the script piped on stdin: statements end with ';', and a line that
starts with '.' is one of DuckDB's dot-commands: .tables, .schema [TABLE], .mode table|csv|json|line,
.timer on|off, .help, .quit (or .exit).
Without any store configured (no --store, HADUCK_STORE unset, no HADUCK_S3_*), the store is
./haduck-store in the working directory, and attach says so; HADUCK_STORE= (set, empty) runs
local-only: tracking changes, uploading nothing.
--sync prints a statement's result only once its commit is durable in the store (concurrent commits
share one frame); a statement whose commit the store did not take fails.
--admin serves the admin endpoint while the database is attached (token: HADUCK_ADMIN_TOKEN, or
one is generated and printed).
--replica-store URL (repeatable; or HADUCK_REPLICA_STORES) copies every generation and WAL frame to
a second store after the first has it, without holding commits up; a replica that is down catches
up when it answers (its lag and last error: /status "replicaStores", /metrics haduck_replica_store_*,
and a line on stderr when it fails and when it answers again). At exit it waits up to 10 s for the
replicas; what is left is copied by the next start's reconcile pass.
--from-store opens the database in the store at once, without a restore: a read-only view that
fetches the blocks its queries read (and the rest in the background), at the latest commit
(following new ones), at --generation N's checkpoint, or at the last commit at or before --time.
Example: haduck attach demo.duckdb --store file://$PWD/haduck-store -c "CREATE TABLE t AS SELECT 1 AS x"
Example: haduck attach --from-store --store file://$PWD/haduck-store --db-key demo.duckdb -c "SELECT count(*) FROM t"`,
  restore: `Usage: haduck restore --to <path> [--generation N | --time ISO-8601] [--force | --if-missing] --store URL --db-key KEY
Restores the latest durable commit (the latest generation plus its WAL frames, replayed by DuckDB and
checkpointed into one file); --generation N gives that checkpoint alone, --time the last commit at or
before that time. A missing WAL frame stops at the last one before it (a warning says what was not
applied); a damaged one is refused by name. Refuses to overwrite unless --force,
and refuses targets that are not regular files (devices, directories, sockets, FIFOs). A symbolic
link is followed: the file it points to is replaced, the link stays. The result is opened in DuckDB
(in a child process) before it is renamed into place; a leftover of a killed restore is removed.
--if-missing (a container's start): exits 0 and keeps the file when <path> exists, restores when it
does not, and fails by name (exit 1) when the store holds nothing for the key.
Example: haduck restore --store file://$PWD/haduck-store --db-key demo.duckdb --to restored.duckdb`,
  aside: `Usage: haduck aside [PATH ...] [--apply | --delete] [--json]
Lists the databases haduck moved aside: a cluster node that takes over or steps down renames its
local file to <db>.haduck-aside-epoch<E>-<time> (its .wal and .haduck-identity beside it) and never
deletes it. PATH is a directory (every moved-aside database in it) or a database's path (its own),
default the current directory. Each is shown with its size and age. A dry run: --apply (or --delete)
deletes the files listed, and nothing else (regular files with .haduck-aside- in their name only).
--json: {applied, sizeBytes, asides: [{path, database, files, sizeBytes, movedAt, ageMs, epoch}]}.
Example: haduck aside data/ && haduck aside data/node.duckdb --apply`,
  databases: `Usage: haduck databases --store URL [--json]    (alias: haduck ls)
Lists every database in the store, sorted by key: its last generation, when that generation was
checkpointed, and the database file's size then (--json: an array of {dbKey, lastGeneration,
lastGenerationTime, sizeBytes}). A key is what --db-key takes; a key with a '/' was written under a
deeper prefix (give that prefix in --store). It lists the whole store once.
Example: haduck databases --store file://$PWD/haduck-store`,
  generations: `Usage: haduck generations --store URL --db-key KEY [--json]
Lists the generations of KEY in the store, oldest first, with each one's WAL frames and last commit.
A key the store holds nothing for fails by name (exit 1); \`haduck databases\` lists the keys.
Example: haduck generations --store file://$PWD/haduck-store --db-key demo.duckdb --json`,
  verify: `Usage: haduck verify --store URL --db-key KEY [--drill | --no-drill]
Checks the manifest chain (no gap, no second writer), every segment's and block's checksum, that
every manifest entry is in the segment it names, and that no generation inherits a block its
predecessor did not have. Then, since checksums cannot tell whether a generation holds every block
its header needs, it restores the latest commit (the newest generation with its WAL frames) into a
temp dir and opens it in DuckDB (in a child process), reading every row. --drill does that for every
kept generation too; --no-drill checks objects only. Exit 5 when anything is wrong. Prints the
counts, then what the drill opened (a line each); a bar per step on a terminal.
Example: haduck verify --store file://$PWD/haduck-store --db-key demo.duckdb --drill`,
  status: `Usage: haduck status --store URL --db-key KEY [--json]
What the store holds: the last generation, its WAL frames, the last durable commit and how old it is
(newestCommitAgeMs). The writer's own lag (walLagMs: its oldest commit not yet in the store) is in
its admin endpoint's /status and /metrics, and in haduck_status() in a DuckDB host. A key the store
holds nothing for fails by name (exit 1); \`haduck databases\` lists the keys.
Example: haduck status --store file://$PWD/haduck-store --db-key demo.duckdb`,
  gc: `Usage: haduck gc --store URL --db-key KEY [--keep-last N] [--keep-within DURATION] [--apply] [--json]
       [--replica-store URL]...
Keeps the newest N generations (default 10) and every generation younger than DURATION (e.g. 90m,
36h, 7d), and deletes the other manifests and every segment no kept generation references.
--keep-within adds to --keep-last, it does not replace it: \`--keep-within 7d\` alone still keeps the
newest 10 however old they are; give \`--keep-last 1 --keep-within 7d\` to keep only the last 7 days
(the newest generation is always kept).
Without --apply it only prints what it would delete. Progress on a terminal (reading, deleting).
With --replica-store URL (repeatable; or HADUCK_REPLICA_STORES) the same policy is applied to each replica store too, each on its own
generations (--json: the replicas' reports under "replicaStores").
Example: haduck gc --store file://$PWD/haduck-store --db-key demo.duckdb --keep-last 3 --apply`,
  rekey: `Usage: haduck rekey --store URL [--db-key KEY] [--dry-run] [--json]
Rewrites every object of the store (or of --db-key KEY) that is not encrypted with the current key
(the first of HADUCK_ENCRYPTION_KEY or HADUCK_ENCRYPTION_KEY_FILE): objects of an older key, and
plain objects of a store moving to encryption, get the same content sealed with the current key.
Objects already current are skipped, so a rekey that was interrupted (even by kill -9) is resumed by
running it again. Each rewrite is a compare-and-swap on the object's ETag: what changed or was deleted
meanwhile is never overwritten with old content. Writers may run during a rekey, once they all have
the new key first. Afterwards (without --db-key, since forks share their parent's objects) the old
key can be dropped. Prints progress to stderr and a summary; --dry-run counts what it would rewrite
and writes nothing; --json prints the summary as JSON. lease.json stays plain.
Rotation: HADUCK_ENCRYPTION_KEY=NEW,OLD on every writer and then \`haduck rekey\`; then NEW alone.
Example: HADUCK_ENCRYPTION_KEY=$NEW,$OLD haduck rekey --store file://$PWD/haduck-store`,
  fork: `Usage: haduck fork --store URL --db-key SRC --to-key DST [--generation N | --time ISO-8601] [--json]
Creates the database DST in the store at the latest commit of SRC (--generation N: that checkpoint
alone; --time: the last commit at or before it), without copying a block: DST's first generation
names SRC's segments and block map pages, and the WAL frames after the checkpoint are written again
under DST. DST can then be restored, attached and written, followed and verified like any database.
SRC's gc keeps every object a fork still references (it says which fork holds how many); DST must
be a new key.
Example: haduck fork --store file://$PWD/haduck-store --db-key demo.duckdb --to-key demo-test.duckdb`,
  handoff: `Usage: haduck handoff --node URL [--to URL] [--db KEY] [--tls-ca PEM]
Asks the leader of the cluster --node belongs to (any node: the handoff goes to the leader it names)
to hand its lease over without stopping: new statements wait, everything ships, the lease goes to
--to (that node takes over at once; the others wait) or to the first follower that looks, and the
statements that waited go there. The old leader then follows. Token: HADUCK_ADMIN_TOKEN.
URLs start with http:// or https://; a node that does not answer exits 4. An https:// node whose
certificate a private CA signed needs --tls-ca (the PEM of that CA); without it the command says so
(exit 3).
Example: HADUCK_ADMIN_TOKEN=... haduck handoff --node http://127.0.0.1:8081 --to http://127.0.0.1:8082`,
  serve: `Usage: haduck serve <db-path> --listen HOST:PORT [--store URL] [--db-key KEY] [--lease-ttl 5s]
       [--tls-cert PEM --tls-key PEM] [--tls-ca PEM] [--allow-files DIR ...] [--statement-timeout 30s]
       [--max-result-bytes 64MiB] [--max-statements 4] [--max-queued-statements 64] [--memory-limit 2GB]
       [--max-temp-size 16GB] [--replica-store URL]...
       haduck serve --db PATH=KEY [--db PATH=KEY ...] [--group NAME] --listen HOST:PORT [--store URL] ...
Serves <db-path> until Ctrl-C or SIGTERM: the admin endpoint (status, metrics, generations, POST
/checkpoint, dashboard at /) and SQL over HTTP: POST /sql {"sql": "...", "params": [...]} answers
{"columns", "rows", "role", "position"}; a write answers only once its commit is durable in the store
(unless "durable": false). Every route but /healthz and / needs the token (Authorization: Bearer
$HADUCK_ADMIN_TOKEN; the same on every node).
With a store, the node is one of a cluster: every node runs the same command with the same --store
and --db-key. A lease in the store decides who writes (--lease-ttl, 500ms to 600s, default 5s):
the leader runs writes; followers keep a replica, run reads, and forward writes to the leader; when
the leader dies or is cut off, another takes over within about the TTL, and no write answered 200
is lost. SIGTERM to the leader ships everything and hands the lease to the others at once.
Followers tell the leader of themselves (POST /members): /status and the dashboard on any node list
every node with its role, epoch and lag, and the last failover.
Without a store the node leads itself, local-only. --admin HOST:PORT is the same as --listen.
--replica-store URL (repeatable; or HADUCK_REPLICA_STORES): the leader copies every object of its
databases to each replica store after the store has it (see attach); the lease stays in --store.
--db PATH=KEY (repeated) serves several databases, each with its own lease, role and leader; POST
/sql names one with "db": KEY, and /status lists each under "databases". --group NAME (the same on
every node) gives them one lease and one change object: one leader for all, idle requests flat in
their number.
--tls-cert and --tls-key serve HTTPS (a node listening beyond loopback without them warns at start);
--tls-ca is the CA the other nodes' certificates are checked against when a follower forwards.
HADUCK_READ_TOKEN, if set, is a second token that may only run reads on POST /sql (anything else: 403).
Every statement reaches the database and nothing else (docs/SECURITY.md): no file, setting or
extension, for either token; --allow-files DIR (repeatable) lets the admin token read and write files
in DIR. A statement is interrupted after --statement-timeout (504), an answer larger than
--max-result-bytes is refused (413), --max-statements run at once and --max-queued-statements wait
(beyond: 503 with Retry-After); --memory-limit and --max-temp-size bound DuckDB (spill: <db>.haduck-tmp).
POST /sql also takes "after" (or the X-Haduck-Position header: a position from an earlier answer; a
follower waits "waitMs", default 1000, until it shows it, then asks the leader), "maxLagMs" (a
follower further behind asks the leader) and "consistency": "leader" (a linearizable read).
Example: HADUCK_ADMIN_TOKEN=... haduck serve demo.duckdb --store file://$PWD/haduck-store --listen 127.0.0.1:8080`,
};
