/**
 * Selective recompute, one layer at a time: the loop at the heart of the fusor, shared by the
 * synchronous `fuse` (all chunk KV already in the cache) and the pipelined `fusePipelined` (layer l's
 * chunk KV lands in the cache just before layer l runs, while layer l+1's is loading).
 *
 * Layer l runs (Model.layer) on the query tokens (always) plus the plan's context tokens at their
 * absolute positions: their fresh K/V overwrite the reused ones in their slots and they attend over
 * every slot at a position <= theirs. Hidden states: x = embed(tokens) on layer 0; each layer's
 * output rows of the tokens still selected feed the next (rows gathered as the set shrinks).
 *
 * Two ways to choose each layer's set: on the host through the plan's select() (any policy), or, for
 * plans that state a deviceRule (HKVD's keep / top-k), on the model's device, where the set, the
 * deviations and the gathers stay until outcome() reads them back once: the host then never waits for
 * the GPU inside a request (gradual filtering otherwise drains it on every layer). Both choose the
 * same sets (test: cacheblend.test.ts, gpu/cacheblend.test.ts).
 */
import type { KVCache } from '../model/kv-cache.js';
import type { Model } from '../model/model.js';
import { InternalError } from '../runtime/errors.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';
import { rowDeviationOnDevice, snapshotRows } from './deviation.js';
import type { PolicyContext, SelectionPlan, SelectionPolicy } from './policies.js';

/** What a finished run reports (the fusor adds the logits, the cache and the layout). */
export interface SelectiveOutcome {
  /** Recompute ratio r (DESIGN.md): mean share of context tokens recomputed after the check layer(s). */
  ratio: number;
  /** Recomputed context token-layers / (N x layers), check layers included. */
  computeFraction: number;
  /** Per layer: the recomputed context token indices (ascending). */
  selected: Int32Array[];
  /** Per layer: the share of context tokens recomputed. */
  schedule: number[];
  checkLayers: number[];
  /** Per layer: the deviation measured on the recomputed tokens (aligned with selected[l]), or null. */
  deviations: (Float64Array | null)[];
}

export class SelectiveRecompute {
  private readonly plan: SelectionPlan;
  private readonly selected: Int32Array[] = [];
  private readonly deviations: (Float64Array | null)[] = [];
  private sel: Int32Array;
  private dev: Float64Array | null = null;
  private x: Tensor | null = null;
  private nextLayer = 0;
  /**
   * Device-side selection (plans with deviceRule): the current set as cache slots (i32 [count]) and
   * its deviation on the layer before (f32 [count]) stay on the model's device; each layer's set and
   * deviation are kept there and read back once, by outcome().
   */
  private readonly onDevice: boolean;
  private slotsT: Tensor | null = null;
  private devT: Tensor | null = null;
  private readonly slotsByLayer: Tensor[] = [];
  private readonly devByLayer: (Tensor | null)[] = [];
  private queryT: Tensor | null = null;

  /**
   * `tokens`: the fused sequence's tokens (prefix, context, query); the context's N tokens sit in
   * cache slots P..P+N-1 and the query in `querySlots`.
   */
  constructor(
    private readonly model: Model,
    private readonly cache: KVCache,
    private readonly tokens: Int32Array,
    private readonly P: number,
    private readonly N: number,
    private readonly querySlots: Int32Array,
    private readonly policy: SelectionPolicy,
    ctx: PolicyContext,
  ) {
    this.plan = policy.plan(ctx);
    this.sel = Int32Array.from({ length: N }, (_, i) => i);
    this.onDevice = this.plan.deviceRule !== undefined;
  }

  /** Runs layer l (layers run in order 0, 1, ...): its context KV must be in the cache by now. */
  step(l: number): void {
    if (l !== this.nextLayer) throw new InternalError(`selective recompute ran layer ${l} after layer ${this.nextLayer - 1}`);
    if (this.onDevice) this.stepDevice(l);
    else this.stepHost(l);
    this.nextLayer++;
  }

  private stepHost(l: number): void {
    const { model, P } = this;
    const Q = this.querySlots.length;
    const next = this.plan.select(l, this.sel, this.dev);
    const keep = subsetRows(next, this.sel, l, this.policy.name);
    if (l === 0) {
      this.x = this.embedFirst(next);
    } else if (next.length !== this.sel.length) {
      this.x = gatherInto(model, this.x!, Int32Array.from([...keep, ...Array.from({ length: Q }, (_, q) => this.sel.length + q)]));
    }
    this.sel = next;
    this.selected.push(next);
    const contextSlots = Tensor.fromTypedArray(Int32Array.from(next, (i) => P + i), undefined, { device: model.device });
    try {
      const dev = this.runLayer(l, contextSlots);
      this.dev = dev ? Float64Array.from(dev.toTypedArray() as Float32Array) : null;
      dev?.dispose();
    } finally {
      contextSlots.dispose();
    }
    this.deviations.push(this.dev);
  }

  /**
   * Layer l on the context tokens in `contextSlots` (i32 on the device, ascending) and the query; K/V
   * deviation of those tokens (f32 [n], the caller owns it) when the plan measures on layer l.
   */
  private runLayer(l: number, contextSlots: Tensor): Tensor | null {
    const { model, cache } = this;
    const device = model.device;
    this.queryT ??= Tensor.fromTypedArray(this.querySlots, undefined, { device });
    const count = contextSlots.numel, n = count + this.querySlots.length;
    const slotsT = Tensor.empty([n], { dtype: 'i32', device });
    const posT = Tensor.empty([n], { dtype: 'i32', device });
    const kind = count > 0 ? this.plan.measureAt(l) : null;
    let before: Tensor[] | null = null;
    try {
      const head = slotsT.rows(0, count), tail = slotsT.rows(count, n);
      try {
        head.copyFrom(contextSlots);
        tail.copyFrom(this.queryT);
      } finally {
        head.dispose();
        tail.dispose();
      }
      ops.gatherRows(cache.positionsTensor, slotsT, posT);
      before = kind ? snapshotRows(cache, l, kind, contextSlots) : null;
      model.layer(l, this.x!, { n, positionsTensor: posT, slotsTensor: slotsT, dispose() {} }, cache);
      return kind && before ? rowDeviationOnDevice(cache, l, kind, contextSlots, before) : null;
    } finally {
      slotsT.dispose();
      posT.dispose();
      for (const t of before ?? []) t.dispose();
    }
  }

  private stepDevice(l: number): void {
    const { model, P } = this;
    const Q = this.querySlots.length;
    const device = model.device;
    if (l === 0) {
      const first = this.plan.select(0, this.sel, null);
      subsetRows(first, this.sel, 0, this.policy.name);
      this.x = this.embedFirst(first);
      this.slotsT = Tensor.fromTypedArray(Int32Array.from(first, (i) => P + i), undefined, { device });
    } else {
      const rule = this.plan.deviceRule!(l);
      const count = this.slotsT!.numel;
      if (rule !== 'keep' && rule < count) {
        if (!(rule >= 0)) throw new InternalError(`policy ${this.policy.name} asked for ${rule} tokens on layer ${l}`);
        if (!this.devT) throw new InternalError(`policy ${this.policy.name}: no deviation measured on layer ${l - 1}`);
        const idx = Tensor.empty([rule + Q], { dtype: 'i32', device });
        const slots = Tensor.empty([rule], { dtype: 'i32', device });
        try {
          const rows = idx.rows(0, rule), tail = idx.rows(rule, rule + Q);
          try {
            ops.topKRows(this.devT, rule, rows);
            ops.gatherRows(this.slotsT!, rows, slots);
            tail.write(Int32Array.from({ length: Q }, (_, q) => count + q));
          } finally {
            rows.dispose();
            tail.dispose();
          }
          this.x = gatherInto(model, this.x!, idx);
        } catch (e) {
          slots.dispose();
          throw e;
        } finally {
          idx.dispose();
        }
        this.slotsT = slots;
      }
    }
    this.slotsByLayer.push(this.slotsT!);
    this.devT = this.runLayer(l, this.slotsT!);
    this.devByLayer.push(this.devT);
  }

  /** Layer 0's hidden states: the embeddings of the chosen context tokens, then the query's. */
  private embedFirst(first: Int32Array): Tensor {
    const { P, N } = this;
    const Q = this.querySlots.length;
    return this.model.embed([...Array.from(first, (i) => this.tokens[P + i]!), ...this.tokens.subarray(P + N, P + N + Q)]);
  }

  /** The query's final hidden states [Q, dim] ('last': only the last row); a view the caller disposes. */
  queryRows(which: 'all' | 'last'): Tensor {
    if (this.nextLayer !== this.model.config.nLayers) throw new InternalError('selective recompute: query rows read before the last layer ran');
    const Q = this.querySlots.length, s = this.onDevice ? this.slotsT!.numel : this.sel.length;
    return this.x!.rows(s + (which === 'last' ? Q - 1 : 0), s + Q);
  }

  outcome(): SelectiveOutcome {
    if (this.onDevice) this.readBack();
    const L = this.model.config.nLayers, N = this.N;
    const counts = this.selected.map((s) => s.length);
    const after = Math.max(-1, ...this.plan.checkLayers);
    const tail = counts.slice(after + 1);
    const ratio = N === 0 || tail.length === 0 ? 0 : tail.reduce((a, b) => a + b, 0) / (tail.length * N);
    const computeFraction = N === 0 ? 0 : counts.reduce((a, b) => a + b, 0) / (L * N);
    return {
      ratio, computeFraction, selected: this.selected, schedule: counts.map((c) => (N ? c / N : 0)),
      checkLayers: [...this.plan.checkLayers], deviations: this.deviations,
    };
  }

  /** Device mode: each layer's set (as context indices) and deviation, read back once per request. */
  private readBack(): void {
    if (this.selected.length === this.slotsByLayer.length) return;
    const sets = new Map<Tensor, Int32Array>();
    for (const t of this.slotsByLayer) {
      if (!sets.has(t)) sets.set(t, Int32Array.from(t.toTypedArray() as Int32Array, (s) => s - this.P));
      this.selected.push(sets.get(t)!);
    }
    for (const t of this.devByLayer) this.deviations.push(t ? Float64Array.from(t.toTypedArray() as Float32Array) : null);
  }

  dispose(): void {
    this.x?.dispose();
    this.x = null;
    for (const t of new Set([...this.slotsByLayer, ...(this.slotsT ? [this.slotsT] : []), ...this.devByLayer, this.devT, this.queryT]))
      t?.dispose();
    this.slotsByLayer.length = 0;
    this.devByLayer.length = 0;
    this.slotsT = this.devT = this.queryT = null;
  }
}

/** Row of each `next` token in `prev` (both ascending); throws if `next` is not a subset. */
function subsetRows(next: Int32Array, prev: Int32Array, l: number, name: string): number[] {
  const rows: number[] = [];
  let j = 0;
  for (let i = 0; i < next.length; i++) {
    while (j < prev.length && prev[j]! < next[i]!) j++;
    if (j === prev.length || prev[j] !== next[i] || (i > 0 && next[i]! <= next[i - 1]!))
      throw new InternalError(`policy ${name} selected context token ${next[i]} on layer ${l}, which is not among the previous layer's selection (a token's hidden state exists only while it stays selected) or not ascending`);
    rows.push(j);
  }
  return rows;
}

/** A new tensor with the given rows of `x` (host indices, or an i32 tensor on x's device); disposes x. */
function gatherInto(model: Model, x: Tensor, rows: Int32Array | Tensor): Tensor {
  const idx = rows instanceof Tensor ? rows : Tensor.fromTypedArray(rows, undefined, { device: model.device });
  const out = Tensor.empty([idx.numel, model.config.dim], { dtype: x.dtype, device: x.device });
  try {
    ops.gatherRows(x, idx, out);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    if (idx !== rows) idx.dispose();
    x.dispose();
  }
  return out;
}
