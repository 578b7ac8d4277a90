/**
 * What every reproduced figure is: a vega-lite spec over tidy rows, plus the words around it (what
 * it shows, on which model and hardware, the paper's claim beside kvlab's measured number). A
 * figure whose producer has not run (or has no GPU data here) keeps its title and caption and says
 * "data missing: <why>" in its panel instead of disappearing from the report.
 */
import type { TopLevelSpec } from 'vega-lite';

export type FigureFamily = 'cacheblend' | 'cachegen' | 'streaming' | 'benchmarks';

/** Rows a producer made, or the reason there are none. */
export type Rows<T> = readonly T[] | Missing;

export interface Missing {
  missing: string;
}

export function isMissing<T>(r: Rows<T>): r is Missing {
  return !Array.isArray(r);
}

/** Turns "no rows" into a Missing with a reason, so an empty producer output is never drawn blank. */
export function rowsOr<T>(r: Rows<T>, why: string): Rows<T> {
  return isMissing(r) || r.length > 0 ? r : { missing: why };
}

/** Where the numbers came from: printed in every figure's subtitle. */
export interface Provenance {
  /** e.g. 'stories260K' */
  model: string;
  /** e.g. 'CPU: AMD EPYC (2 threads)' or 'NVIDIA H100 80GB HBM3' */
  hardware: string;
  /** Anything else a reader needs (dataset, contexts). */
  note?: string;
}

export interface Figure {
  /** Stable id, also the file name of its SVG/PNG: 'cacheblend-fig6'. */
  id: string;
  family: FigureFamily;
  title: string;
  subtitle: string;
  /** The paper's claim, with the paper's setting. */
  claim: string;
  /** kvlab's number for the same claim, or 'data missing: ...'. */
  measured: string;
  /** Set when the panel shows no data. */
  missing?: string;
  spec: TopLevelSpec;
}

export const WIDTH = 420;
export const HEIGHT = 260;

/** One wrapped line set for a title subtitle: vega draws no automatic line breaks. */
export function wrap(text: string, max = 95): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > max) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

export function subtitleOf(p: Provenance): string {
  return `model: ${p.model}; hardware: ${p.hardware}${p.note ? `; ${p.note}` : ''}`;
}

/** The title block: title, then subtitle and caption lines (paper's claim beside kvlab's number). */
export function titleBlock(title: string, subtitle: string, claim: string, measured: string) {
  return {
    text: title,
    subtitle: [...wrap(subtitle), ...wrap(`Paper: ${claim}`), ...wrap(`kvlab: ${measured}`)],
    anchor: 'start' as const,
    fontSize: 15,
    subtitleFontSize: 11,
    subtitlePadding: 4,
    offset: 10,
  };
}

export const CONFIG = {
  background: 'white',
  font: 'DejaVu Sans',
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400 },
  // Category labels read horizontally; long ones are cut at 160 px rather than rotated.
  axisBand: { labelAngle: 0, labelLimit: 160 },
  axisPoint: { labelAngle: 0 },
  view: { stroke: '#888' },
} as const;

interface FigureHead {
  id: string;
  family: FigureFamily;
  title: string;
  provenance: Provenance;
  claim: string;
}

/** Assembles a figure from a data layer (any vega-lite unit/layer/concat body without title). */
export function makeFigure(head: FigureHead, measured: string, body: Record<string, unknown>): Figure {
  const subtitle = subtitleOf(head.provenance);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: titleBlock(head.title, subtitle, head.claim, measured),
    config: CONFIG,
    ...body,
  } as TopLevelSpec;
  return { id: head.id, family: head.family, title: head.title, subtitle, claim: head.claim, measured, spec };
}

/** The panel of a figure whose data is absent: same title and caption, the reason in the plot area. */
export function missingFigure(head: FigureHead, why: string): Figure {
  const reason = `data missing: ${why}`;
  const lines = wrap(reason, 60);
  const fig = makeFigure(head, reason, {
    width: WIDTH,
    height: HEIGHT,
    // Pixel positions (scale: null): the lines sit together in the middle of an empty plot area.
    data: { values: lines.map((text, i) => ({ text, py: HEIGHT / 2 + (i - (lines.length - 1) / 2) * 18 })) },
    mark: { type: 'text', fontSize: 13, color: '#a33', align: 'center', baseline: 'middle' },
    encoding: {
      text: { field: 'text', type: 'nominal' },
      x: { value: WIDTH / 2 },
      y: { field: 'py', type: 'quantitative', scale: null },
    },
  });
  return { ...fig, missing: why };
}

/** Formats a number for captions: 3 significant digits, no exponent for ordinary sizes. */
export function fmt(x: number | undefined, digits = 3): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}
