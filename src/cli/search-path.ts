/**
 * The model search path, built only here (library code takes it as an argument):
 * --models DIR, then KVLAB_MODELS (':'-separated), then the repo's models/, then ../shared/models.
 */
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../runtime/addon.js';
import type { CliIO } from './command.js';

export function modelSearchPath(flag: string | undefined, io: CliIO): string[] {
  const out: string[] = [];
  if (flag) out.push(resolve(io.cwd, flag));
  for (const d of (io.env.KVLAB_MODELS ?? '').split(delimiter)) if (d) out.push(resolve(io.cwd, d));
  out.push(join(PACKAGE_ROOT, 'models'));
  const shared = resolve(PACKAGE_ROOT, '..', 'shared', 'models');
  if (existsSync(shared)) out.push(shared);
  return out;
}
