/**
 * The commands errors suggest: every word reaches the program as it was, whatever it holds (a
 * shell reads them back), and the store's URL, its S3 endpoint and the key are all there.
 */
import { expect, test } from "bun:test";
import { openStore, S3BlockStore } from "@haduck/s3-block-store";
import { shellQuote, suggestCommand } from "./_suggest.ts";

test("shellQuote() words come back unchanged through sh, spaces, quotes, $ and backticks included", () => {
  const words = ["plain.duckdb", "file:///tmp/my store", "it's", "$HOME", "`id`", "a\"b", "", "x;y", "*", "é"];
  const ran = Bun.spawnSync(["sh", "-c", `printf '%s\\n' ${words.map(shellQuote).join(" ")}`], { stdout: "pipe" });
  expect(ran.stdout.toString().split("\n").slice(0, -1)).toEqual(words);
  expect(shellQuote("file:///tmp/haduck-store")).toBe("file:///tmp/haduck-store"); // plain words stay plain
});

test("suggestCommand() names the store, an S3 store's endpoint, the key and the arguments, in backticks", () => {
  const fsStore = openStore("file:///tmp/my store");
  expect(suggestCommand("restore", { store: fsStore, dbKey: "a.duckdb", args: ["--force", "--to", "/x/a b.duckdb"] }))
    .toBe("`haduck restore --store 'file:///tmp/my store' --db-key a.duckdb --force --to '/x/a b.duckdb'`");
  const s3 = new S3BlockStore({ bucket: "backups", prefix: "team", endpoint: "http://127.0.0.1:9000", accessKey: "ACCESSKEYID0",
    secretKey: "secret-of-the-store" });
  const said = suggestCommand("verify", { store: s3, dbKey: "a.duckdb" });
  expect(said).toBe("`haduck verify --store s3://backups/team --endpoint http://127.0.0.1:9000 --db-key a.duckdb`");
  expect(said).not.toMatch(/ACCESSKEYID0|secret-of-the-store/); // keys stay in the environment
  expect(suggestCommand("attach --from-store", { store: fsStore })).toBe("`haduck attach --from-store --store " +
    "'file:///tmp/my store'`");
});
