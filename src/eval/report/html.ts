/**
 * The HTML report: every figure's SVG inline (its PNG beside it under figures/), the tables behind
 * them (arquero's HTML formatter), and a run log of which producers ran, how long they took and why
 * any did not. One self-contained index.html; nothing is fetched from the network when viewed.
 */
import { from } from 'arquero';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Figure, FigureFamily } from '../figures/figure.js';
import type { FontSet } from './fonts.js';
import { specToSvg, svgToPng, useFontMetrics } from './render.js';

export interface ReportTable {
  family: FigureFamily | 'run';
  title: string;
  rows: readonly object[];
  note?: string;
}

export interface RunLogEntry {
  step: string;
  status: 'ok' | 'missing' | 'failed';
  seconds: number;
  detail: string;
}

export interface ReportMeta {
  title: string;
  /** Lines under the title: command, machine, date. */
  lines: string[];
  log: RunLogEntry[];
}

export interface RenderedFigure {
  figure: Figure;
  svg: string;
  /** Relative to the report folder. */
  svgFile: string;
  pngFile: string;
}

const FAMILY_TITLES: Record<FigureFamily, string> = {
  cacheblend: 'CacheBlend (Yao et al., EuroSys 2025)',
  cachegen: 'CacheGen codec (Liu et al., SIGCOMM 2024)',
  streaming: 'CacheGen adaptive streaming',
  benchmarks: 'GPU benchmarks (results/)',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Objects print as JSON; arquero's formatter escapes every string it writes. */
function cell(v: unknown): unknown {
  return typeof v === 'object' && v !== null ? JSON.stringify(v) : v;
}

export function tableHtml(t: ReportTable): string {
  const body = t.rows.length === 0
    ? '<p class="missing">no rows</p>'
    : from(t.rows.map((r) => Object.fromEntries(Object.entries(r as Record<string, unknown>).map(([k, v]) => [k, cell(v)])))).toHTML({ maxdigits: 4 });
  return `<h3>${escapeHtml(t.title)}</h3>${t.note ? `<p class="note">${escapeHtml(t.note)}</p>` : ''}\n${body}`;
}

function figureHtml(f: RenderedFigure): string {
  const fig = f.figure;
  return `<figure id="${fig.id}" class="${fig.missing ? 'missing' : 'ok'}">
${f.svg}
<figcaption><b>${escapeHtml(fig.title)}</b> (${escapeHtml(fig.id)}). ${escapeHtml(fig.subtitle)}.<br>
Paper: ${escapeHtml(fig.claim)}<br>kvlab: ${escapeHtml(fig.measured)}<br>
<a href="${f.pngFile}">PNG</a> · <a href="${f.svgFile}">SVG</a></figcaption>
</figure>`;
}

/** The whole page as a string. */
export function reportHtml(meta: ReportMeta, figures: readonly RenderedFigure[], tables: readonly ReportTable[]): string {
  const families = Object.keys(FAMILY_TITLES) as FigureFamily[];
  const toc = figures.map((f) => `<li><a href="#${f.figure.id}">${escapeHtml(f.figure.title)}</a>${f.figure.missing ? ' <span class="missing">(data missing)</span>' : ''}</li>`).join('\n');
  const sections = families.map((fam) => {
    const fs = figures.filter((f) => f.figure.family === fam);
    const ts = tables.filter((t) => t.family === fam);
    if (fs.length === 0 && ts.length === 0) return '';
    return `<section><h2>${FAMILY_TITLES[fam]}</h2>\n${fs.map(figureHtml).join('\n')}\n${ts.map(tableHtml).join('\n')}</section>`;
  }).join('\n');
  const log: ReportTable = { family: 'run', title: 'Run log', rows: meta.log.map((e) => ({ ...e, seconds: Number(e.seconds.toFixed(2)) })) };
  const runTables = tables.filter((t) => t.family === 'run');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(meta.title)}</title>
<style>
body { font-family: 'DejaVu Sans', sans-serif; margin: 2em; max-width: 1400px; }
figure { margin: 1.5em 0; border-top: 1px solid #ccc; padding-top: 1em; }
figcaption { font-size: 0.9em; color: #333; max-width: 1000px; }
.missing { color: #a33; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; }
.note { font-size: 0.85em; color: #555; }
</style></head><body>
<h1>${escapeHtml(meta.title)}</h1>
${meta.lines.map((l) => `<p class="note">${escapeHtml(l)}</p>`).join('\n')}
<h2>Figures</h2><ol>${toc}</ol>
${sections}
<section><h2>Run</h2>${tableHtml(log)}${runTables.map(tableHtml).join('\n')}</section>
</body></html>
`;
}

/** Renders every figure to SVG and PNG under `outDir`/figures and writes `outDir`/index.html. */
export async function writeReport(outDir: string, meta: ReportMeta, figures: readonly Figure[], tables: readonly ReportTable[],
  fonts: FontSet): Promise<{ index: string; rendered: RenderedFigure[] }> {
  mkdirSync(join(outDir, 'figures'), { recursive: true });
  useFontMetrics(fonts);
  const rendered: RenderedFigure[] = [];
  for (const figure of figures) {
    const svg = await specToSvg(figure.spec);
    const svgFile = `figures/${figure.id}.svg`, pngFile = `figures/${figure.id}.png`;
    writeFileSync(join(outDir, svgFile), svg);
    writeFileSync(join(outDir, pngFile), svgToPng(svg, fonts));
    rendered.push({ figure, svg, svgFile, pngFile });
  }
  const index = join(outDir, 'index.html');
  writeFileSync(index, reportHtml(meta, rendered, tables));
  return { index, rendered };
}
