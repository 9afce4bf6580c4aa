/**
 * @module
 * A seeded random SQL workload (inserts, updates, deletes, DDL, several tables) and a content
 * digest of a database: every table's row count and an order-independent hash of its whole rows
 * (`sum(hash(t))`: a sum, so duplicate rows do not cancel as they would under `bit_xor`).
 */

/** A small seeded generator (LCG): the same seed gives the same sequence on every runtime. */
export function seededRandom(seed: number): (n: number) => number {
  let state = seed % 2147483648;
  return (n: number) => Math.floor((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648 * n);
}

/** The next statement of the workload, keeping track of the tables it made. */
export function workload(seed: number): () => string {
  const random = seededRandom(seed);
  const tables: { name: string; rows: number; columns: number }[] = [];
  let made = 0;
  return (): string => {
    const roll = random(100);
    if (tables.length === 0 || (roll < 12 && tables.length < 4)) {
      const name = `t${made++}`;
      tables.push({ name, rows: 0, columns: 0 });
      return `CREATE TABLE ${name} (id BIGINT, v BIGINT, s VARCHAR)`;
    }
    const table = tables[random(tables.length)];
    if (roll < 50) {
      const count = 1 + random(30000);
      const offset = table.rows;
      table.rows += count;
      return `INSERT INTO ${table.name} (id, v, s) SELECT i + ${offset}, (i * ${1 + random(97)}) % 1000, ` +
        `md5((i + ${offset})::VARCHAR) FROM range(${count}) r(i)`;
    }
    if (roll < 70) return `UPDATE ${table.name} SET v = v + ${1 + random(9)}, s = 'u' || s WHERE id % ${2 + random(40)} = 0`;
    if (roll < 85) return `DELETE FROM ${table.name} WHERE id % ${3 + random(50)} = ${random(3)}`;
    if (roll < 95) return `ALTER TABLE ${table.name} ADD COLUMN c${table.columns++} INT DEFAULT ${random(1000)}`;
    if (tables.length > 1) {
      tables.splice(tables.indexOf(table), 1);
      return `DROP TABLE ${table.name}`;
    }
    return `DELETE FROM ${table.name} WHERE v < ${random(200)}`;
  };
}

type Run = (sql: string) => Promise<Record<string, unknown>[]>;

/** Every table of schema `main` (of the current database): name, row count, and a hash of its whole rows. */
export async function digest(run: Run): Promise<string> {
  const parts: string[] = [];
  const tables = await run("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' " +
    "AND database_name = current_database() ORDER BY table_name");
  for (const { table_name } of tables) {
    const [row] = await run(`SELECT count(*)::BIGINT AS n, coalesce(sum(hash(t)), 0)::HUGEINT::VARCHAR AS h ` +
      `FROM ${table_name} t`);
    parts.push(`${table_name}:${row.n}:${row.h}`);
  }
  return parts.join(" ");
}
