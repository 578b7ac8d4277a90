/**
 * Text widths for vega's layout, read from the font files resvg will draw with. Without a canvas,
 * vega guesses 0.8 em per character, which makes titles and legends far wider than drawn (wide
 * empty margins, labels cut short); here each character's advance comes from the TrueType
 * 'hmtx' table through the 'cmap' (format 4) of the same font.
 */
import { readFileSync } from 'node:fs';
import { FormatError } from '../../runtime/errors.js';

/** Advance widths in em for the Basic Multilingual Plane characters the font maps. */
export interface FontMetrics {
  advance: Map<number, number>;
  /** Used for characters the font does not map. */
  fallback: number;
}

export function readFontMetrics(file: string): FontMetrics {
  const b = readFileSync(file);
  const u16 = (o: number) => b.readUInt16BE(o);
  const tables = new Map<string, number>();
  try {
    const n = u16(4);
    for (let i = 0; i < n; i++) {
      const rec = 12 + 16 * i;
      tables.set(b.toString('latin1', rec, rec + 4), b.readUInt32BE(rec + 8));
    }
    const head = tables.get('head'), hhea = tables.get('hhea'), hmtx = tables.get('hmtx'), cmap = tables.get('cmap');
    if (head === undefined || hhea === undefined || hmtx === undefined || cmap === undefined) throw new Error('missing head/hhea/hmtx/cmap');
    const unitsPerEm = u16(head + 18), nMetrics = u16(hhea + 34);
    const advanceOf = (g: number) => u16(hmtx + 4 * Math.min(g, nMetrics - 1)) / unitsPerEm;
    let sub = -1;
    for (let i = 0; i < u16(cmap + 2); i++) {
      const rec = cmap + 4 + 8 * i;
      const platform = u16(rec), encoding = u16(rec + 2), off = cmap + b.readUInt32BE(rec + 4);
      if ((platform === 3 && encoding === 1) || platform === 0) if (u16(off) === 4) { sub = off; break; }
    }
    if (sub < 0) throw new Error('no format-4 Unicode cmap');
    const seg = u16(sub + 6) / 2;
    const ends = sub + 14, starts = ends + 2 * seg + 2, deltas = starts + 2 * seg, ranges = deltas + 2 * seg;
    const advance = new Map<number, number>();
    for (let i = 0; i < seg; i++) {
      const start = u16(starts + 2 * i), end = u16(ends + 2 * i), delta = u16(deltas + 2 * i), range = u16(ranges + 2 * i);
      for (let c = start; c <= Math.min(end, 0xfffe); c++) {
        let g: number;
        if (range === 0) g = (c + delta) & 0xffff;
        else {
          const at = ranges + 2 * i + range + 2 * (c - start);
          g = at + 2 <= b.length ? u16(at) : 0;
          if (g !== 0) g = (g + delta) & 0xffff;
        }
        if (g !== 0) advance.set(c, advanceOf(g));
      }
    }
    return { advance, fallback: advance.get(0x6e) ?? 0.6 };
  } catch (e) {
    throw new FormatError(`${file}: not a readable TrueType font (${(e as Error).message})`, { cause: e });
  }
}

/** Width in pixels of `text` at `fontSize`. */
export function textWidth(m: FontMetrics, text: string, fontSize: number): number {
  let w = 0;
  for (const ch of text) w += m.advance.get(ch.codePointAt(0)!) ?? m.fallback;
  return w * fontSize;
}
