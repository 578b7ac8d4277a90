/**
 * CacheGen's adaptation experiment: SLO violation rate, mean quality and median TTFT of adaptive
 * streaming vs each fixed level vs text only, over random bandwidth traces (rows of
 * `kvlab stream eval --json`), one row of panels per setting (e.g. the artifact's 0.2 s text
 * recompute, and the engine's measured prefill speed).
 */
import { fmt, HEIGHT, isMissing, makeFigure, missingFigure, WIDTH, type Figure, type Provenance, type Rows } from './figure.js';

export interface StreamRow {
  /** 'adaptive' | 'level-<name>' | 'text' */
  policy: string;
  /** Share of traces whose TTFT exceeded the SLO (0..1). */
  sloViolationRate: number;
  meanQuality: number;
  medianTtftS: number;
  /** Which experiment setting the row belongs to (absent: one setting). */
  setting?: string;
}

export function sloViolation(rows: Rows<StreamRow>, p: Provenance, qualityTitle = 'mean quality (stream eval units)'): Figure {
  const h = {
    id: 'streaming-slo', family: 'streaming' as const, provenance: p,
    title: 'SLO violations under bandwidth traces: adaptive streaming vs fixed levels vs text',
    claim: 'adapting the level per chunk to measured bandwidth (text fallback when recompute is faster) keeps TTFT within ' +
      'the SLO more often than any fixed level at similar quality (artifact: 1500-token chunks, SLO 0.5 s, 0.1-10 Gbps per chunk, text 0.2 s per chunk).',
  };
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const settings = [...new Set(rows.map((r) => r.setting ?? ''))];
  const measured = settings.map((s) => {
    const rs = rows.filter((r) => (r.setting ?? '') === s);
    const a = rs.find((r) => r.policy === 'adaptive');
    const fixed = rs.filter((r) => r.policy.startsWith('level-')).sort((x, y) => x.sloViolationRate - y.sloViolationRate)[0];
    const text = rs.find((r) => r.policy === 'text');
    return `${s ? `${s}: ` : ''}adaptive ${fmt(100 * (a?.sloViolationRate ?? NaN))}% violations (quality ${fmt(a?.meanQuality)}), best fixed ` +
      `${fixed ? `${fixed.policy} ${fmt(100 * fixed.sloViolationRate)}% (quality ${fmt(fixed.meanQuality)})` : 'none'}, text ${fmt(100 * (text?.sloViolationRate ?? NaN))}%`;
  }).join('; ') + '.';
  const bar = (setting: string, field: string, title: string, format?: string) => ({
    width: WIDTH / 2, height: HEIGHT / 1.3,
    transform: [{ filter: { field: 'settingLabel', equal: setting } }],
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'policy', type: 'nominal', title: 'policy', sort: null, axis: { labelAngle: -30 } },
      y: { field, type: 'quantitative', title, ...(format ? { axis: { format } } : {}) },
      color: { field: 'policy', type: 'nominal', title: 'policy', sort: null },
    },
  });
  return makeFigure(h, measured, {
    data: { values: rows.map((r) => ({ ...r, settingLabel: r.setting ?? '' })) },
    vconcat: settings.map((s) => ({
      title: { text: s, fontSize: 12, anchor: 'start' as const },
      hconcat: [
        bar(s, 'sloViolationRate', 'SLO violation rate (% of traces)', '%'),
        bar(s, 'meanQuality', qualityTitle),
        bar(s, 'medianTtftS', 'median TTFT (s)'),
      ],
    })),
  });
}
