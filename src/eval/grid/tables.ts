/** Tidy rows -> arquero table -> CSV and JSON files (one row an observation, one column a variable). */
import { writeFileSync } from 'node:fs';
import * as aq from 'arquero';

/** Rows with the union of their keys, in first-seen order, missing values null. */
export function alignRows(rows: readonly Record<string, unknown>[], leading: readonly string[] = []): Record<string, unknown>[] {
  const cols = [...leading];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  return rows.map((r) => Object.fromEntries(cols.map((c) => [c, r[c] ?? null])));
}

export function rowsTable(rows: readonly Record<string, unknown>[], leading: readonly string[] = []) {
  return aq.from(alignRows(rows, leading));
}

/** Writes rows as CSV and JSON (an array of row objects) through arquero. */
export function writeTables(rows: readonly Record<string, unknown>[], csvPath: string, jsonPath: string, leading: readonly string[] = []): void {
  const t = rowsTable(rows, leading);
  writeFileSync(csvPath, t.toCSV());  // no trailing newline: arquero's fromCSV would read it as an empty row
  writeFileSync(jsonPath, t.toJSON() + '\n');
}
