/**
 * Selective recompute, one layer at a time: the loop at the heart of the fusor, shared by the
 * synchronous `fuse` (all chunk KV already in the cache) and the pipelined `fusePipelined` (layer l's
 * chunk KV lands in the cache just before layer l runs, while layer l+1's is loading).
 *
 * Layer l runs (Model.layer) on the query tokens (always) plus the plan's context tokens at their
 * absolute positions: their fresh K/V overwrite the reused ones in their slots and they attend over
 * every slot at a position <= theirs. Hidden states: x = embed(tokens) on layer 0; each layer's
 * output rows of the tokens still selected feed the next (rows gathered as the set shrinks). On a
 * check layer the set shrinks inside the layer (shrinksEarly): every token's K/V, then the rest of
 * the layer on the tokens that go on.
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
import { concatOffset, iota } from '../runtime/int-arrays.js';
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

/** What runLayer runs of a layer: all of it, only the context tokens' K/V, or all after a K/V pass. */
type LayerPart = 'layer' | 'kv' | 'rest';

export class SelectiveRecompute {
  private readonly plan: SelectionPlan;
  private readonly selected: Int32Array[] = [];
  private readonly deviations: (Float64Array | null)[] = [];
  private sel: Int32Array;
  private dev: Float64Array | null = null;
  private x: Tensor | null = null;
  private nextLayer = 0;
  /**
   * Device-side selection (plans with deviceRule): the current set (setT) and its deviation on the
   * layer before (devT) stay on the model's device. Every layer's set and deviation are written into
   * two arenas (rows of [count + Q] slots, of [count] deviations), read back in two copies by
   * outcome(); the spans say where each layer's are. setT and devT are views into the arenas, held in
   * `views` until dispose().
   */
  private readonly onDevice: boolean;
  /** The set as cache slots, the query's last: i32 [count + Q] (the layer's batch slots as they are). */
  private setT: Tensor | null = null;
  private devT: Tensor | null = null;
  private setsT: Tensor | null = null;
  private devsT: Tensor | null = null;
  private arenaWidth = 0;
  private readonly setSpans: (readonly [number, number])[] = [];
  private readonly devSpans: (readonly [number, number] | null)[] = [];
  private setSpan: readonly [number, number] = [0, 0];
  private readonly views: Tensor[] = [];
  /** 0, 1, 2, ... on the device: its rows [count, count + Q) index the query's rows after `count` context rows. */
  private rampT: Tensor | null = null;
  /** The layer whose set an early shrink (shrinksEarly) already chose, or -1. */
  private pending = -1;

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
    this.sel = iota(N);
    this.onDevice = this.plan.deviceRule !== undefined;
  }

  /**
   * Runs layer l (layers run in order 0, 1, ...): its context KV must be in the cache by now. The set
   * comes from the previous layer's (select), unless an early shrink on layer l - 1 chose it already;
   * a check layer that shrinks early runs in two parts around the next layer's selection.
   */
  step(l: number): void {
    if (l !== this.nextLayer) throw new InternalError(`selective recompute ran layer ${l} after layer ${this.nextLayer - 1}`);
    if (this.pending !== l) this.select(l);
    this.pending = -1;
    const early = this.shrinksEarly(l) && this.contextCount() > 0;
    this.measure(l, early ? 'kv' : 'layer');
    if (early) {
      this.select(l + 1);
      this.pending = l + 1;
      this.rest(l);
    }
    this.nextLayer++;
  }

  /** Context tokens in the current set. */
  private contextCount(): number {
    return this.onDevice ? this.setT!.numel - this.querySlots.length : this.sel.length;
  }

  private select(l: number): void {
    if (this.onDevice) this.selectDevice(l);
    else this.selectHost(l);
  }

  /** Runs `part` of layer l on the current set and records its deviation (null where none is measured). */
  private measure(l: number, part: 'layer' | 'kv'): void {
    if (!this.onDevice) {
      this.dev = this.runHost(l, part);
      this.deviations.push(this.dev);
      return;
    }
    this.setSpans.push(this.setSpan);
    const row = this.devsT!.rows(l * this.arenaWidth, l * this.arenaWidth + this.contextCount());
    this.views.push(row);
    this.devT = this.runLayer(l, this.setT!, part, row);
    this.devSpans.push(this.devT ? [l * this.arenaWidth, this.devT.numel] : null);
  }

  /** The rest of layer l after its K/V pass, on the set chosen for layer l + 1. */
  private rest(l: number): void {
    if (this.onDevice) this.runLayer(l, this.setT!, 'rest');
    else this.runHost(l, 'rest');
  }

  /**
   * Whether layer l shrinks the set early: on a check layer that measures a deviation for the next
   * layer's selection, the tokens that will not go on only need their K/V (the deviation, and what
   * later tokens attend to), not attention or the MLP. So the layer writes every selected token's K/V
   * (Model.layerKV), the deviation picks layer l+1's set right away, and the full layer runs on that
   * set alone. Its outputs are the same as running the full layer on every token first: the dropped
   * rows' hidden states were never read again. On cacheblend's check layer that is ~0.8 of a layer.
   */
  private shrinksEarly(l: number): boolean {
    return l + 1 < this.model.config.nLayers && this.plan.checkLayers.includes(l) && this.plan.measureAt(l) !== null;
  }

  /** The set of layer l from the previous one (plan.select), its hidden rows gathered; recorded. */
  private selectHost(l: number): void {
    const Q = this.querySlots.length;
    const next = this.plan.select(l, this.sel, this.dev);
    const keep = subsetRows(next, this.sel, l, this.policy.name);
    if (l === 0) {
      this.x = this.embedFirst(next);
    } else if (next.length !== this.sel.length) {
      this.x = gatherInto(this.model, this.x!, concatOffset([[keep], [iota(Q), this.sel.length]]));
    }
    this.sel = next;
    this.selected.push(next);
  }

  private runHost(l: number, part: LayerPart): Float64Array | null {
    const set = concatOffset([[this.sel, this.P], [this.querySlots]]);
    const setT = Tensor.fromTypedArray(set, undefined, { device: this.model.device });
    try {
      const dev = this.runLayer(l, setT, part);
      try {
        return dev ? new Float64Array(dev.toTypedArray() as Float32Array) : null;
      } finally {
        dev?.dispose();
      }
    } finally {
      setT.dispose();
    }
  }

  /**
   * Layer l on the set `setT` (cache slots: the context tokens', ascending, then the query's):
   * 'layer' the whole layer, 'kv' only the context tokens' K/V (x unchanged), 'rest' the whole layer
   * after a 'kv' pass on a superset (nothing measured). Returns the K/V deviation of the context
   * tokens (f32 [count], the caller owns it) when the plan measures on layer l and the part writes
   * fresh K/V.
   */
  private runLayer(l: number, setT: Tensor, part: LayerPart, devOut?: Tensor): Tensor | null {
    const { model, cache } = this;
    const count = setT.numel - this.querySlots.length, n = part === 'kv' ? count : setT.numel;
    const posT = Tensor.empty([setT.numel], { dtype: 'i32', device: model.device });
    const contextSlots = setT.rows(0, count);
    const kind = count > 0 && part !== 'rest' ? this.plan.measureAt(l) : null;
    let before: Tensor[] | null = null;
    const views: Tensor[] = [contextSlots];
    try {
      ops.gatherRows(cache.positionsTensor, setT, posT);
      before = kind ? snapshotRows(cache, l, kind, contextSlots) : null;
      if (part === 'kv') {
        const [rows, pos] = [this.x!.rows(0, count), posT.rows(0, count)];
        views.push(rows, pos);
        model.layerKV(l, rows, { n, positionsTensor: pos, slotsTensor: contextSlots, dispose() {} }, cache);
      } else {
        model.layer(l, this.x!, { n, positionsTensor: posT, slotsTensor: setT, dispose() {} }, cache);
      }
      return kind && before ? rowDeviationOnDevice(cache, l, kind, contextSlots, before, devOut) : null;
    } finally {
      posT.dispose();
      for (const t of [...views, ...(before ?? [])]) t.dispose();
    }
  }

  /** The set of layer l on the device: layer 0's from plan.select, later ones by the plan's deviceRule. */
  private selectDevice(l: number): void {
    const { model, P } = this;
    const Q = this.querySlots.length;
    const device = model.device;
    if (l === 0) {
      const first = this.plan.select(0, this.sel, null);
      subsetRows(first, this.sel, 0, this.policy.name);
      this.x = this.embedFirst(first);
      const W = first.length + Q, L = model.config.nLayers;
      this.arenaWidth = W;
      this.setsT = Tensor.empty([L * W], { dtype: 'i32', device });
      this.devsT = Tensor.empty([L * W], { dtype: 'f32', device });
      this.setsT.write(concatOffset([[first, P], [this.querySlots]]));
      this.setT = this.setsT.rows(0, W);
      this.views.push(this.setT);
      this.setSpan = [0, W];
      this.rampT = Tensor.fromTypedArray(iota(W), undefined, { device });
      return;
    }
    const rule = this.plan.deviceRule!(l);
    const count = this.setT!.numel - Q;
    if (rule === 'keep' || rule >= count) return;
    if (!(rule >= 0)) throw new InternalError(`policy ${this.policy.name} asked for ${rule} tokens on layer ${l}`);
    if (!this.devT) throw new InternalError(`policy ${this.policy.name}: no deviation measured on layer ${l - 1}`);
    // idx: the kept context rows, then the query's rows (which follow the count context rows).
    const idx = Tensor.empty([rule + Q], { dtype: 'i32', device });
    const o = l * this.arenaWidth;
    const set = this.setsT!.rows(o, o + rule + Q);
    this.views.push(set);
    try {
      const rows = idx.rows(0, rule), tail = idx.rows(rule, rule + Q), queryRows = this.rampT!.rows(count, count + Q);
      try {
        ops.topKRows(this.devT, rule, rows);
        tail.copyFrom(queryRows);
      } finally {
        for (const t of [rows, tail, queryRows]) t.dispose();
      }
      ops.gatherRows(this.setT!, idx, set);
      this.x = gatherInto(model, this.x!, idx);
    } finally {
      idx.dispose();
    }
    this.setT = set;
    this.setSpan = [o, rule + Q];
  }

  /** Layer 0's hidden states: the embeddings of the chosen context tokens, then the query's. */
  private embedFirst(first: Int32Array): Tensor {
    const { P, N } = this;
    const Q = this.querySlots.length;
    const ids = new Int32Array(first.length + Q);
    for (let i = 0; i < first.length; i++) ids[i] = this.tokens[P + first[i]!]!;
    ids.set(this.tokens.subarray(P + N, P + N + Q), first.length);
    return this.model.embed(ids);
  }

  /** The query's final hidden states [Q, dim] ('last': only the last row); a view the caller disposes. */
  queryRows(which: 'all' | 'last'): Tensor {
    if (this.nextLayer !== this.model.config.nLayers) throw new InternalError('selective recompute: query rows read before the last layer ran');
    const Q = this.querySlots.length, s = this.onDevice ? this.setT!.numel - Q : this.sel.length;
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

  /** Device mode: each layer's set (as context indices) and deviation, read back from the arenas. */
  private readBack(): void {
    if (this.selected.length === this.setSpans.length) return;
    const slots = this.setsT!.toTypedArray() as Int32Array, devs = this.devsT!.toTypedArray() as Float32Array;
    const Q = this.querySlots.length, P = this.P;
    const sets = new Map<number, Int32Array>();
    for (const [o, len] of this.setSpans) {
      if (!sets.has(o)) sets.set(o, concatOffset([[slots.subarray(o, o + len - Q), -P]]));  // the query's slots follow
      this.selected.push(sets.get(o)!);
    }
    for (const span of this.devSpans) this.deviations.push(span ? new Float64Array(devs.subarray(span[0], span[0] + span[1])) : null);
  }

  dispose(): void {
    this.x?.dispose();
    this.x = null;
    for (const t of [...this.views, this.rampT, this.setsT, this.devsT]) t?.dispose();
    this.views.length = 0;
    this.setT = this.devT = this.rampT = this.setsT = this.devsT = null;
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
