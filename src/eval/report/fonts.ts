/**
 * Fonts for PNG rendering. resvg draws no text at all when it has no font, so a PNG with blank
 * axes would pass silently; instead the font files are found up front and handed to resvg
 * explicitly, and their absence is a typed error that says what to install.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError } from '../../runtime/errors.js';

/** Where Debian's fonts-dejavu-core (and most distributions) put DejaVu. */
export const DEFAULT_FONT_DIRS: readonly string[] = [
  '/usr/share/fonts/truetype/dejavu',
  '/usr/share/fonts/dejavu',
  '/usr/share/fonts/TTF',
  '/usr/share/fonts',
  '/usr/local/share/fonts',
];

export const FONT_FAMILY = 'DejaVu Sans';

/** No usable font file: PNGs would have no text. */
export class FontNotFoundError extends NotFoundError {}

export interface FontSet {
  family: string;
  files: string[];
}

const WANTED = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'];

/** Finds DejaVu Sans (regular, and bold when present) in `dirs`, searching subfolders two deep. */
export function findFonts(dirs: readonly string[] = DEFAULT_FONT_DIRS): FontSet {
  const found = new Map<string, string>();
  const visit = (dir: string, depth: number) => {
    if (!existsSync(dir) || depth > 2) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      if (WANTED.includes(n) && !found.has(n)) found.set(n, p);
      else if (depth < 2 && !n.includes('.')) {
        try {
          if (statSync(p).isDirectory()) visit(p, depth + 1);
        } catch { /* unreadable entry: skip */ }
      }
    }
  };
  for (const d of dirs) visit(d, 0);
  const regular = found.get(WANTED[0]!);
  if (!regular) {
    throw new FontNotFoundError(`no ${WANTED[0]} in ${dirs.join(', ')}: PNG figures need a font ` +
      '(Debian/Ubuntu: apt-get install fonts-dejavu-core)');
  }
  return { family: FONT_FAMILY, files: WANTED.map((n) => found.get(n)).filter((x): x is string => !!x) };
}
