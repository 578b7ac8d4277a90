/**
 * Reads a value stored as fixed-size parts (the Redis tier's layout) into one buffer, a few parts in
 * flight at a time, in order; `waitFor(end)` resolves once bytes [0, end) are all there. So the
 * header, then layer 0, then layer 1 ... become usable while later parts are still on the wire.
 */
export class PartReader {
  readonly bytes: Uint8Array;
  private have = 0;
  private nextDone = 0;
  private readonly arrived: boolean[];
  private readonly waiters: { end: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private error: unknown = null;
  private cancelled = false;

  constructor(
    readonly totalBytes: number,
    readonly partBytes: number,
    readonly parts: number,
    fetch: (i: number) => Promise<Uint8Array | null>,
    /** The error for part i that is missing (null) or of the wrong length. */
    bad: (i: number, got: Uint8Array | null) => Error,
    concurrency = 4,
  ) {
    this.bytes = new Uint8Array(totalBytes);
    this.arrived = new Array<boolean>(parts).fill(false);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.cancelled && this.error === null && next < parts) {
        const i = next++;
        const d = await fetch(i);
        if (this.cancelled) return;
        const want = Math.min(partBytes, totalBytes - i * partBytes);
        if (d === null || d.byteLength !== want) throw bad(i, d);
        this.bytes.set(d, i * partBytes);
        this.arrived[i] = true;
        this.advance();
      }
    };
    for (let w = 0; w < Math.min(concurrency, parts); w++) worker().catch((e) => this.fail(e));
  }

  /** Resolves when bytes [0, end) have arrived; rejects if a part failed or went missing. */
  waitFor(end: number): Promise<void> {
    if (end <= this.have) return Promise.resolve();
    if (this.error !== null) return Promise.reject(this.error);
    return new Promise((resolve, reject) => this.waiters.push({ end, resolve, reject }));
  }

  /** Stops fetching (the reader is no longer needed). */
  cancel(): void {
    this.cancelled = true;
  }

  private advance(): void {
    while (this.nextDone < this.parts && this.arrived[this.nextDone]) {
      this.nextDone++;
      this.have = Math.min(this.totalBytes, this.nextDone * this.partBytes);
    }
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.end <= this.have) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private fail(e: unknown): void {
    if (this.error !== null) return;
    this.error = e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}
