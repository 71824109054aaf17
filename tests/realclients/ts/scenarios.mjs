// bunqueue's own TypeScript client against a server, one scenario per run: `bun scenarios.mjs NAME`.
// HOST, PORT, TOKEN and QUEUE come from the environment; the last line printed is the scenario's JSON result.
import { Queue, Worker, QueueEvents, UnrecoverableError, FlowProducer } from 'bunqueue/client';

const connection = { host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT), token: process.env.TOKEN || undefined };
const queueName = process.env.QUEUE ?? 'rc';
const N = Number(process.env.N ?? 200);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(predicate, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await predicate()) return true;
    await sleep(20);
  }
  return false;
}

const scenarios = {
  // one by one and in bulk; a worker with concurrency, progress and logs; QueueEvents sees every completion
  async process() {
    const queue = new Queue(queueName, { connection });
    const events = new QueueEvents(queueName, { connection });
    const completed = new Set();
    events.on('completed', ({ jobId }) => completed.add(jobId));
    await events.waitUntilReady?.();
    const ids = [];
    for (let i = 0; i < N / 2; i++) ids.push((await queue.add('one', { i })).id);
    const bulk = await queue.addBulk(Array.from({ length: N / 2 }, (_, i) => ({ name: 'bulk', data: { i: N / 2 + i } })));
    ids.push(...bulk.map((j) => j.id));
    const seen = new Map();
    let maxActive = 0, active = 0;
    const worker = new Worker(queueName, async (job) => {
      active++; maxActive = Math.max(maxActive, active);
      seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
      await job.updateProgress(50);
      await job.log(`working on ${job.data.i}`);
      await sleep(2);
      active--;
      return { doubled: job.data.i * 2 };
    }, { connection, concurrency: 8 });
    await until(() => completed.size >= N);
    const sample = ids[3];
    const result = await queue.getJob(sample);
    const state = await queue.getJobState(sample);
    const counts = await queue.getJobCounts();
    const logs = await queue.getJobLogs(sample);
    await worker.close();
    await events.close();
    await queue.close();
    const twice = [...seen.values()].filter((n) => n > 1).length;
    return { pushed: ids.length, unique: new Set(ids).size, processed: seen.size, twice, maxActive,
      completedEvents: completed.size, sampleState: state, sampleResult: result?.returnvalue ?? null,
      sampleProgress: result?.progress ?? null, sampleLogs: logs.logs.map((l) => l.message ?? l), counts };
  },

  // failures: retried into the DLQ after maxAttempts; an UnrecoverableError goes there at once
  async failures() {
    const queue = new Queue(queueName, { connection });
    const retried = await queue.add('retry', { kind: 'retry' }, { attempts: 2, backoff: 10 });
    const fatal = await queue.add('fatal', { kind: 'fatal' }, { attempts: 5, backoff: 10 });
    const calls = { retry: 0, fatal: 0 };
    const worker = new Worker(queueName, async (job) => {
      calls[job.data.kind]++;
      if (job.data.kind === 'fatal') throw new UnrecoverableError('cannot ever work');
      throw new Error('try again');
    }, { connection, concurrency: 2 });
    await until(async () => (await queue.getJobState(retried.id)) === 'failed' && (await queue.getJobState(fatal.id)) === 'failed');
    await sleep(200);
    const dlq = await queue.getDlqAsync();
    await worker.close();
    await queue.close();
    return { calls, dlq: dlq.map((e) => e.job.id).sort(), ids: [retried.id, fatal.id].sort(),
      reasons: Object.fromEntries(dlq.map((e) => [e.job.id === fatal.id ? 'fatal' : 'retry', e.error])) };
  },

  // Job.retry() (the MoveToWait command) takes a failed job out of the DLQ and it runs again; the counts
  // keep BullMQ's states apart (a prioritized job is not also waiting)
  async retry() {
    const queue = new Queue(queueName, { connection });
    const events = new QueueEvents(queueName, { connection });
    const seen = [];
    for (const name of ['paused', 'resumed', 'completed']) events.on(name, () => seen.push(name));
    await events.waitUntilReady?.();
    await queue.pause();
    await queue.resume();
    const job = await queue.add('once', { n: 1 }, { attempts: 1 });
    let runs = 0;
    const worker = new Worker(queueName, async () => {
      runs++;
      if (runs === 1) throw new Error('first run fails');
      return { run: runs };
    }, { connection, concurrency: 1 });
    await until(async () => (await queue.getJobState(job.id)) === 'failed');
    const failed = await queue.getJob(job.id);
    await failed.retry();
    await until(async () => (await queue.getJobState(job.id)) === 'completed');
    await worker.close();
    await queue.add('plain', {});
    await queue.add('urgent', {}, { priority: 5 });
    const counts = await queue.getJobCounts();
    const done = await queue.getJob(job.id);
    await until(() => seen.includes('completed'));
    await events.close();
    await queue.close();
    return { runs, result: done?.returnvalue ?? null,
      waiting: counts.waiting, prioritized: counts.prioritized, events: [...new Set(seen)].sort() };
  },

  // FlowProducer.add: a parent (its own queue) with two children, atomically; the parent runs after both,
  // with their results; a child failing with continueParentOnFailure lets its parent run at once
  async flow() {
    const parentQueue = `${queueName}-parent`;
    const flows = new FlowProducer({ connection });
    const tree = await flows.add({
      name: 'report', queueName: parentQueue, data: { kind: 'parent' },
      children: [
        { name: 'part', queueName, data: { n: 1 } },
        { name: 'part', queueName, data: { n: 2 } },
      ],
    });
    const soft = await flows.add({
      name: 'soft', queueName: parentQueue, data: { kind: 'soft' },
      children: [{ name: 'flaky', queueName, data: { n: -1 }, opts: { attempts: 1, continueParentOnFailure: true } }],
    });
    const order = [];
    let parentChildren = null;
    const children = new Worker(queueName, async (job) => {
      order.push(`child:${job.data.n}`);
      if (job.data.n < 0) throw new Error('flaky failed');
      return { doubled: job.data.n * 2 };
    }, { connection, concurrency: 1 });
    const parents = new Worker(parentQueue, async (job) => {
      order.push(`parent:${job.data.kind}`);
      if (job.data.kind === 'parent') parentChildren = await job.getChildrenValues();
      return 'done';
    }, { connection, concurrency: 1 });
    const queue = new Queue(parentQueue, { connection });
    await until(async () => (await queue.getJobState(tree.job.id)) === 'completed'
      && (await queue.getJobState(soft.job.id)) === 'completed');
    await children.close();
    await parents.close();
    await queue.close();
    await flows.close();
    return { parentId: tree.job.id, childIds: tree.children.map((c) => c.job.id), order,
      childrenValues: parentChildren ? Object.values(parentChildren).sort((a, b) => a.doubled - b.doubled) : null };
  },

  // pushes N jobs and exits (another client consumes them)
  async produce() {
    const queue = new Queue(queueName, { connection });
    const jobs = await queue.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'p', data: { i } })));
    await queue.close();
    return { ids: jobs.map((j) => j.id) };
  },

  // consumes until COUNT jobs are done (or the time is up), prints the ids it completed
  async consume() {
    const want = Number(process.env.COUNT ?? N);
    const done = [];
    const worker = new Worker(queueName, async (job) => { done.push(job.id); return { by: 'ts' }; }, { connection, concurrency: 4 });
    await until(() => done.length >= want);
    await sleep(100);
    await worker.close();
    return { done };
  },

  // takes jobs and never finishes them: the test kills this process mid-job
  async hang() {
    const started = [];
    new Worker(queueName, async (job) => {
      started.push(job.id);
      if (started.length === Number(process.env.COUNT ?? 4)) console.log(JSON.stringify({ started }));
      await new Promise(() => {});
    }, { connection, concurrency: Number(process.env.COUNT ?? 4) });
    await new Promise(() => {});
  },

  // a queue call with whatever token TOKEN holds (none, a wrong one, the right one)
  async auth() {
    const queue = new Queue(queueName, { connection });
    try {
      const job = await queue.add('a', { x: 1 });
      await queue.close();
      return { ok: true, id: job.id };
    } catch (error) {
      queue.close();
      return { ok: false, error: String(error?.message ?? error) };
    }
  },
};

const name = process.argv[2];
const result = await scenarios[name]();
console.log(JSON.stringify(result));
process.exit(0);
