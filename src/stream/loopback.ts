/**
 * The real-network mode that checks the simulator: a sender and a receiver in this process, talking
 * over loopback TCP (node:net). The receiver runs the streamer: for each chunk it picks a level (from
 * the throughput it measured on the previous chunk), asks the sender for that many bytes, and times
 * their arrival; the sender paces its writes through a token bucket that follows the trace. Decoding
 * and recompute are accounted as in the simulator (GPU time, overlapping the next transfer), so any
 * difference in TTFT comes from the network model.
 *
 * `byteScale` shrinks every transfer and every rate by the same factor (the times are unchanged), so
 * a 10 Gbps trace of 50 MB chunks can be replayed on a small machine.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { ArgumentError } from '../runtime/errors.js';
import type { QualityMetric } from './levels.js';
import { checkSetup, choose, type StreamPolicy, type StreamSetup } from './policy.js';
import { StreamTimeline, type StreamRun } from './simulate.js';
import { TokenBucket } from './token-bucket.js';
import { rateAt, type BandwidthTrace } from './trace.js';

const REQ = 8; // u32 chunk index, u32 bytes

export interface LoopbackOptions {
  /** Factor applied to bytes and rates alike (default 0.01). */
  byteScale?: number;
}

/** Starts the sender; it serves one connection's requests in order, paced by the trace. */
function startSender(trace: BandwidthTrace, scale: number, t0: () => number): Promise<Server> {
  const payload = Buffer.alloc(1 << 20, 0x5a);
  const server = createServer((sock: Socket) => {
    sock.setNoDelay(true);
    let pending = Buffer.alloc(0);
    let busy = Promise.resolve();
    sock.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= REQ) {
        const chunk = pending.readUInt32LE(0), bytes = pending.readUInt32LE(4);
        pending = pending.subarray(REQ);
        busy = busy.then(() => send(sock, chunk, bytes));
      }
    });
    sock.on('error', () => {});
  });
  const send = async (sock: Socket, chunk: number, bytes: number): Promise<void> => {
    const rate = () => (rateAt(trace, chunk, (performance.now() - t0()) / 1000) * 1e9 * scale) / 8;
    // Pieces of ~2 ms of traffic; the bucket holds up to 250 ms, so a timer that wakes late (a busy
    // machine) sends the backlog at once instead of losing it: the average rate follows the trace.
    const bucket = new TokenBucket(rate, Math.max(1 << 16, Math.ceil(rate() * 0.25)));
    const piece = Math.max(4096, Math.floor(rate() * 0.002));
    for (let left = bytes; left > 0;) {
      const n = Math.min(left, piece, payload.length);
      await bucket.take(n);
      if (!sock.write(payload.subarray(0, n))) await new Promise((r) => sock.once('drain', r));
      left -= n;
    }
  };
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** One trace through the real loopback transport under `policy`. */
export async function loopbackStream(setup: StreamSetup, trace: BandwidthTrace, policy: StreamPolicy,
  metric: QualityMetric = 'top1', options: LoopbackOptions = {}): Promise<StreamRun> {
  checkSetup(setup);
  const scale = options.byteScale ?? 0.01;
  if (!(scale > 0 && scale <= 1)) throw new ArgumentError(`byteScale must be in (0, 1] but is ${scale}`);
  let start = performance.now();
  const server = await startSender(trace, scale, () => start);
  const sock = connect((server.address() as { port: number }).port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise<void>((r, j) => { sock.once('connect', r); sock.once('error', j); });
  try {
    let received = 0;
    let want = 0;
    let wake: (() => void) | null = null;
    sock.on('data', (d: Buffer) => {
      received += d.length;
      if (received >= want && wake) { const w = wake; wake = null; w(); }
    });
    const tl = new StreamTimeline(setup);
    start = performance.now();
    for (let i = 0; i < setup.chunks; i++) {
      tl.nowS = (performance.now() - start) / 1000;
      const c = choose(setup, policy, { chunk: i, nowS: tl.nowS, gpuFreeS: tl.gpuFreeS, estBps: tl.estBps });
      const bytes = Math.max(1, Math.round(tl.bytesFor(c) * scale));
      const t1 = performance.now();
      want = received + bytes;
      const arrived = new Promise<void>((r) => { wake = r; });
      const req = Buffer.alloc(REQ);
      req.writeUInt32LE(i, 0);
      req.writeUInt32LE(bytes, 4);
      sock.write(req);
      await arrived;
      tl.record(c, (performance.now() - t1) / 1000);
    }
    return tl.result(metric);
  } finally {
    sock.destroy();
    await new Promise((r) => server.close(r));
  }
}
