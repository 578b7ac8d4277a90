/** Small helpers the model-file readers share. */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { ModelFormatError } from './errors.js';

export async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value for an error message, cut to 80 characters. */
export function show(v: unknown): string {
  try {
    const s = JSON.stringify(v) ?? String(v);
    return s.length > 80 ? s.slice(0, 77) + '...' : s;
  } catch {
    return String(v);
  }
}

/**
 * Random access to the bytes of a model file without holding the file in memory: readers parse a
 * header, then read each tensor's bytes where it lies. Files of any size work (fs.readFile stops at
 * 2 GiB), and only one copy of a tensor exists at a time.
 */
export interface ByteSource {
  readonly length: number;
  /** Bytes [offset, offset + n); a fresh buffer for files, a view for memory. */
  read(offset: number, n: number): Uint8Array;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  return { length: bytes.length, read: (offset, n) => bytes.subarray(offset, offset + n) };
}

/** A file read on demand: each read opens it, reads with positioned reads (1 GiB at a time) and closes it. */
export function fileSource(path: string): ByteSource {
  const length = fstatSize(path);
  return {
    length,
    read(offset: number, n: number): Uint8Array {
      const out = Buffer.allocUnsafe(n);
      const fd = openSync(path, 'r');
      try {
        let done = 0;
        while (done < n) {
          const got = readSync(fd, out, done, Math.min(n - done, 1 << 30), offset + done);
          if (got === 0) throw new ModelFormatError(path, `truncated: unexpected end of file at byte ${offset + done} (did the file change while it was read?)`);
          done += got;
        }
      } finally {
        closeSync(fd);
      }
      return out;
    },
  };
}

function fstatSize(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}
