/**
 * A token bucket whose rate follows a function of time: tokens (bytes) accrue at rate(t) per second
 * of real elapsed time, up to `burstBytes`; take(n) waits until n tokens are there. Timers wake late
 * (about 1 ms), so the refill uses the measured elapsed time and the burst is a few ms of traffic:
 * late wake-ups are made up, not lost.
 */
export class TokenBucket {
  private tokens = 0;
  private last = performance.now();

  constructor(private readonly rateBytesPerS: () => number, readonly burstBytes: number) {}

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) / 1000) * this.rateBytesPerS());
    this.last = now;
  }

  async take(n: number): Promise<void> {
    for (;;) {
      this.refill();
      if (this.tokens >= n) {
        this.tokens -= n;
        return;
      }
      const waitMs = ((n - this.tokens) / this.rateBytesPerS()) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, waitMs)));
    }
  }
}
