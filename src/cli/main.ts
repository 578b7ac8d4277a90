/**
 * `kvlab <command> [options]`: the command-line entry. Only the CLI reads the environment, prints,
 * and exits; library code takes everything as arguments.
 */
import { KvlabError } from '../runtime/errors.js';
import { VERSION } from '../version.js';
import { commandHelp, parseCommand, type CliIO, type Command } from './command.js';
import { benchCommand } from './commands/bench.js';
import { blendCommand } from './commands/blend.js';
import { codecCommand } from './commands/codec.js';
import { doctorCommand } from './commands/doctor.js';
import { evalCommand } from './commands/eval.js';
import { generateCommand } from './commands/generate.js';
import { qaCommand } from './commands/qa.js';
import { storeCommand } from './commands/store.js';
import { streamCommand } from './commands/stream.js';
import { reproduceCommand } from './commands/reproduce.js';

export const COMMANDS: Command[] = [doctorCommand, generateCommand, benchCommand, blendCommand, reproduceCommand, codecCommand, evalCommand, storeCommand, streamCommand, qaCommand];

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    `kvlab ${VERSION}: KV-cache compression (CacheGen) and reuse (CacheBlend) for LLM inference`,
    '',
    'Usage: kvlab <command> [options]      kvlab <command> --help for its options',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
  ].join('\n');
}

/** Runs the CLI and returns the exit code (never calls process.exit itself). */
export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const target = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.out(target ? commandHelp(target) : topHelp());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    io.out(VERSION);
    return 0;
  }
  // `kvlab bench X` is the same command as `kvlab X bench` for every module with its own command
  // (blend, codec, store): one implementation, two spellings.
  const sub = rest[0];
  if (name === 'bench' && sub !== undefined && sub !== 'prefill' && COMMANDS.some((c) => c.name === sub))
    return main([sub, 'bench', ...rest.slice(1)], io);
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    io.err(`kvlab: unknown command '${name}'\n\n${topHelp()}`);
    return 2;
  }
  try {
    const { values, positionals, help } = parseCommand(cmd, rest);
    if (help) {
      io.out(commandHelp(cmd));
      return 0;
    }
    return await cmd.run(values, positionals, io);
  } catch (e) {
    if (e instanceof KvlabError) {
      io.err(`kvlab ${cmd.name}: ${e.name} [${e.code}]: ${e.message}`);
      return e.code === 'KVLAB_ARG' ? 2 : 1;
    }
    throw e;
  }
}

export const processIO: CliIO = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  write: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
  env: process.env,
  cwd: process.cwd(),
};
