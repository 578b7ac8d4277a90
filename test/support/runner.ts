/**
 * Runs uvu test files in one process and ends with the line `N passed, N failed, N skipped`
 * (uvu prints its own totals in another shape). A file that fails to import counts as a failure.
 * Usage: node --expose-gc --import tsx test/run.ts [filter...]
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

type Result = [errors: unknown, passed: number, skipped: number, total: number];
type Run = () => Promise<Result>;
declare global {
  // uvu's queue protocol (what its own CLI uses): one group per file, [name, ...runs].
  var UVU_DEFER: number | undefined;
  var UVU_INDEX: number | undefined;
  var UVU_QUEUE: [string | null, ...Run[]][] | undefined;
}

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

export async function runTests(dir: string, filters: string[]): Promise<number> {
  globalThis.UVU_DEFER = 1;
  globalThis.UVU_QUEUE = [];
  const root = join(dir, '..');
  const files = findTests(dir).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
  let passed = 0, failed = 0, skipped = 0;
  for (const [i, file] of files.entries()) {
    globalThis.UVU_INDEX = i;
    globalThis.UVU_QUEUE.push([relative(root, file)]);
    try {
      await import(pathToFileURL(file).href);
    } catch (e) {
      failed++;
      process.stdout.write(`\nFAIL ${relative(root, file)}: could not load: ${(e as Error).stack ?? e}\n`);
    }
  }
  // Count each suite's result as it finishes, then let uvu print its usual report.
  for (const group of globalThis.UVU_QUEUE) {
    for (let j = 1; j < group.length; j++) {
      const run = group[j] as Run;
      group[j] = async () => {
        const r = await run();
        passed += r[1];
        skipped += r[2];
        failed += r[3] - r[1];
        return r;
      };
    }
  }
  const { exec } = await import('uvu');
  await exec();
  const line = `${passed} passed, ${failed} failed, ${skipped} skipped`;
  process.stdout.write(line + '\n');
  return failed > 0 || files.length === 0 ? 1 : 0;
}
