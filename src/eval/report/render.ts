/**
 * vega-lite spec -> vega -> SVG (vega's headless View, renderer 'none') -> PNG (resvg, with the
 * fonts handed to it explicitly; see fonts.ts).
 *
 * vega and vega-lite are loaded on first use (dynamic import): their vega-canvas dependency has a
 * top-level await, and a static import would make all of `kvlab` impossible to require() from
 * CommonJS (and from notebook kernels that compile cells to CommonJS). resvg (a native module) is
 * required on first PNG, so `import 'kvlab'` works where the plotting stack is not installed (a GPU
 * host that only benchmarks).
 */
import { createRequire } from 'node:module';
import type { Resvg as ResvgClass } from '@resvg/resvg-js';
import type { TopLevelSpec } from 'vega-lite';
import { FormatError } from '../../runtime/errors.js';
import type { FontSet } from './fonts.js';
import { readFontMetrics, textWidth, type FontMetrics } from './text-metrics.js';

/** A spec vega-lite or vega rejected. */
export class SpecError extends FormatError {}

type VegaLite = typeof import('vega-lite');
type Vega = typeof import('vega');
let engines: Promise<{ vl: VegaLite; vega: Vega }> | undefined;

function loadEngines(): Promise<{ vl: VegaLite; vega: Vega }> {
  engines ??= Promise.all([import('vega-lite'), import('vega')]).then(([vl, vega]) => ({ vl, vega }));
  return engines;
}

/** Compiles a vega-lite spec to a vega spec; vega-lite's complaints become a SpecError. */
export async function compileSpec(spec: TopLevelSpec): Promise<ReturnType<VegaLite['compile']>['spec']> {
  const { vl } = await loadEngines();
  try {
    return vl.compile(spec).spec;
  } catch (e) {
    throw new SpecError(`vega-lite could not compile the spec: ${(e as Error).message}`, { cause: e });
  }
}

interface TextItem { fontSize?: number; fontWeight?: string | number; text?: unknown }
let metrics: { regular: FontMetrics; bold: FontMetrics } | undefined;

/**
 * Makes vega lay text out with the real advance widths of `fonts` (regular, and bold where the set
 * has a bold file) instead of its 0.8 em per character guess. vega keeps one text measurer per
 * process, so this holds for every later render in the process.
 */
export function useFontMetrics(fonts: FontSet): void {
  const regular = readFontMetrics(fonts.files[0]!);
  const boldFile = fonts.files.find((f) => /bold/i.test(f));
  metrics = { regular, bold: boldFile ? readFontMetrics(boldFile) : regular };
}

function installMetrics(vega: Vega): void {
  if (!metrics) return;
  const m = metrics;
  // vega exports its measurer at run time but not in its typings.
  const tm = (vega as unknown as { textMetrics: { width: (item: TextItem, text?: unknown) => number } }).textMetrics;
  tm.width = (item, text) => {
    const t = text ?? item.text;
    const s = t === undefined || t === null ? '' : Array.isArray(t) ? t.join(' ') : String(t);
    const heavy = item.fontWeight === 'bold' || (typeof item.fontWeight === 'number' && item.fontWeight >= 600);
    return textWidth(heavy ? m.bold : m.regular, s, item.fontSize ?? 11);
  };
}

/** Renders a vega-lite spec to an SVG string. */
export async function specToSvg(spec: TopLevelSpec): Promise<string> {
  const vg = await compileSpec(spec);
  const { vega } = await loadEngines();
  installMetrics(vega);
  let view: InstanceType<Vega['View']> | undefined;
  try {
    view = new vega.View(vega.parse(vg), { renderer: 'none' });
    return await view.toSVG();
  } catch (e) {
    throw new SpecError(`vega could not render the spec: ${(e as Error).message}`, { cause: e });
  } finally {
    view?.finalize();
  }
}

/** Rasterises an SVG to PNG bytes at `scale` x its size, drawing text with `fonts` only. */
export function svgToPng(svg: string, fonts: FontSet, scale = 2): Buffer {
  const { Resvg } = createRequire(import.meta.url)('@resvg/resvg-js') as { Resvg: typeof ResvgClass };
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: {
      loadSystemFonts: false,
      fontFiles: fonts.files,
      defaultFontFamily: fonts.family,
      sansSerifFamily: fonts.family,
    },
  });
  return r.render().asPng();
}
