/**
 * A tiny command framework over node:util parseArgs: each command declares its options with help
 * text, so `kvlab <command> --help` is generated from the same table that parses the flags.
 */
import { parseArgs } from 'node:util';
import { ArgumentError } from '../runtime/errors.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Shown in --help; the placeholder for string options, e.g. 'NAME|PATH'. */
  value?: string;
  help: string;
  default?: string | boolean;
  multiple?: boolean;
}

export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** Extra lines printed under the usage line. */
  description?: string;
  options: Record<string, OptionSpec>;
  positionals?: string;
  run(values: Values, positionals: string[], io: CliIO): Promise<number>;
}

/** Where commands print; tests pass their own. */
export interface CliIO {
  /** A line (a newline is added when missing). */
  out(text: string): void;
  /** Raw text, no newline (streaming). */
  write(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  cwd: string;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help' };

export function commandHelp(cmd: Command): string {
  const opts = { ...cmd.options, help: HELP };
  const rows = Object.entries(opts).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const def = o.default !== undefined && o.default !== false ? ` (default: ${o.default})` : '';
    return [flag, o.help + def] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  return [
    `Usage: kvlab ${cmd.name}${cmd.positionals ? ' ' + cmd.positionals : ''} [options]`,
    '',
    cmd.summary,
    ...(cmd.description ? ['', cmd.description] : []),
    '',
    'Options:',
    ...rows.map(([f, h]) => `  ${f.padEnd(w)}${h}`),
  ].join('\n');
}

/** Parses argv for `cmd`; unknown flags are ArgumentErrors that name the flag and the command. */
export function parseCommand(cmd: Command, argv: string[]): { values: Values; positionals: string[]; help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, o] of Object.entries(cmd.options)) {
    options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: cmd.positionals !== undefined, strict: true });
  } catch (e) {
    throw new ArgumentError(`kvlab ${cmd.name}: ${(e as Error).message.split('\n')[0]} (see kvlab ${cmd.name} --help)`);
  }
  const values: Values = {};
  for (const [name, o] of Object.entries(cmd.options)) values[name] = parsed.values[name] ?? o.default;
  return { values, positionals: parsed.positionals, help: parsed.values.help === true };
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function num(values: Values, name: string, cmd: string): number | undefined {
  const v = str(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ArgumentError(`kvlab ${cmd}: --${name} expects a number but received ${JSON.stringify(v)}`);
  return n;
}
