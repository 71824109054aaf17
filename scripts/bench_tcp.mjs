// One round of scripts/bench_tcp: bunqueue's own TypeScript client against one server over TCP.
// Bulk-adds N jobs (addBulk, BATCH per call, INFLIGHT calls at once), then a Worker (CONCURRENCY, PULL_BATCH
// jobs per pull, no-op handler) drains them. Prints {"add": jobs/s, "drain": jobs/s, "done": n}.
import { Queue, Worker } from 'bunqueue/client';

const connection = { host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT), token: process.env.TOKEN || undefined };
const N = Number(process.env.N ?? 100000);
const BATCH = Number(process.env.BATCH ?? 1000);
const INFLIGHT = Number(process.env.INFLIGHT ?? 4);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const PULL_BATCH = Number(process.env.PULL_BATCH ?? 10); // the Worker's batchSize (its default: 10)
const name = process.env.QUEUE ?? `bench-${Date.now()}`;

const queue = new Queue(name, { connection });
await queue.addBulk([{ name: 'warm', data: { i: -1 } }]);
let next = 0;
const t0 = performance.now();
async function producer() {
  while (next < N) {
    const start = next;
    next += BATCH;
    const jobs = [];
    for (let i = start; i < Math.min(start + BATCH, N); i++) jobs.push({ name: 'b', data: { i } });
    await queue.addBulk(jobs);
  }
}
await Promise.all(Array.from({ length: INFLIGHT }, producer));
const addSeconds = (performance.now() - t0) / 1000;

let done = 0;
const total = N + 1;
const t1 = performance.now();
let finished;
const allDone = new Promise((resolve) => { finished = resolve; });
const worker = new Worker(name, async () => null, { connection, concurrency: CONCURRENCY, batchSize: PULL_BATCH });
worker.on('completed', () => { if (++done === total) finished(); });
const timer = setTimeout(() => finished(), Number(process.env.TIMEOUT_MS ?? 300000));
await allDone;
clearTimeout(timer);
const drainSeconds = (performance.now() - t1) / 1000;
await worker.close();
await queue.obliterate();
await queue.close();
console.log(JSON.stringify({ add: Math.round(N / addSeconds), drain: Math.round(done / drainSeconds), done }));
process.exit(0);
