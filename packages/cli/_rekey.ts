/**
 * @module
 * `haduck rekey`: every object of the store (or of one database) encrypted with the current key, by
 * `rekey()` of `@haduck/s3-block-store`. Progress goes to stderr once a second, the summary to stdout.
 */
import { assertValidDbKey } from "@haduck/duckdb-fs-bridge";
import { ENCRYPTION_ENV, rekey, type RekeyReport, StoreConfigError } from "@haduck/s3-block-store";
import { HELP } from "./_help.ts";
import { EXIT, mib, needStoreOnly, parse, UsageError } from "./_command.ts";

/** Progress lines at most this often. */
const PROGRESS_INTERVAL_MS = 1000;

const resealedCount = (report: RekeyReport) => Object.values(report.objectsResealed).reduce((a, b) => a + b, 0);

export async function commandRekey(args: string[]): Promise<number> {
  const { values } = parse(args, { "dry-run": { type: "boolean" }, json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.rekey), EXIT.ok);
  const dbKey = values["db-key"];
  if (dbKey !== undefined) {
    try {
      assertValidDbKey(dbKey);
    } catch (error) {
      throw new UsageError(`--db-key: ${(error as Error).message}`);
    }
  }
  const store = needStoreOnly(values);
  if (!store.sealing) {
    throw new StoreConfigError(`rekey needs the key to encrypt with: set ${ENCRYPTION_ENV.key} (the new key first, ` +
      `then the old ones, separated by commas) or ${ENCRYPTION_ENV.keyFile}`);
  }
  const verb = values["dry-run"] ? "would reseal" : "resealed";
  let shownAt = performance.now();
  const report = await rekey(store, {
    prefix: dbKey === undefined ? "" : `${dbKey}/`,
    dryRun: values["dry-run"],
    onProgress: (progress) => {
      if (performance.now() - shownAt < PROGRESS_INTERVAL_MS) return;
      shownAt = performance.now();
      console.error(`rekey: ${progress.objectsChecked} objects checked, ${resealedCount(progress)} ${verb} ` +
        `(${mib(progress.bytesResealed)})`);
    },
  });
  if (values.json) {
    console.log(JSON.stringify({ store: store.url, dbKey: dbKey ?? null, ...report }, null, 2));
    return EXIT.ok;
  }
  const from = Object.entries(report.objectsResealed).map(([key, count]) =>
    `${count} ${key === "plain" ? "plain" : `of key ${key}`}`).join(", ");
  console.log(`rekey of ${dbKey ?? "every database"} in ${store.url} to key ${report.currentKeyId}` +
    `${values["dry-run"] ? " (dry run: nothing written)" : ""}: ${report.objectsChecked} objects checked, ` +
    `${report.objectsCurrent} already current, ${resealedCount(report)} ${verb}${from ? ` (${from})` : ""}, ` +
    `${mib(report.bytesResealed)}` + (report.objectsPlainKept ? `, ${report.objectsPlainKept} leases kept plain` : "") +
    (report.objectsGone ? `, ${report.objectsGone} deleted meanwhile` : ""));
  if (!values["dry-run"] && dbKey === undefined) {
    const others = store.keyring.ids.slice(1);
    if (others.length > 0) console.log(`every object is sealed with ${report.currentKeyId}: keys ${others.join(", ")} can be retired`);
  }
  return EXIT.ok;
}
