// The Node peers of bench_breaker: a circuit breaker around a no-op async function, each call
// awaited in turn (sequential), warmed up, best of RUNS runs, ns per call.
//
// Prints lines in the form the C benchmarks use (see ../timing.h):
//     name<TAB>ns_per_call<TAB>allocs_per_call<TAB>calls_per_run
// (allocations are not measured here: "-")
// and '#' lines for the node and peer versions.
//
// Usage: node --expose-gc peers.mjs [--runs K] [--ms MS_PER_RUN]

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  circuitBreaker,
  handleAll,
  ConsecutiveBreaker,
  SamplingBreaker,
  CircuitState,
  BrokenCircuitError,
  IsolatedCircuitError,
} from 'cockatiel';
import CircuitBreaker from 'opossum';

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
}
const RUNS = opt('--runs', 5);
const MS_PER_RUN = opt('--ms', 400);
const HOUR_MS = 3_600_000;

let failed = false;

function versionOf(pkg) {
  const require = createRequire(import.meta.url);
  let dir = require.resolve(pkg);
  // Walk up from the entry point to the package's own package.json.
  for (;;) {
    dir = dir.slice(0, dir.lastIndexOf('/'));
    try {
      const meta = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8'));
      if (meta.name === pkg) return meta.version;
    } catch {
      // not a package root; keep walking
    }
  }
}

// n sequential awaited calls of call(); returns elapsed ns.
async function timeLoop(call, n) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await call();
  return Number(process.hrtime.bigint() - t0);
}

// The same for a call that must reject; counts the rejections that pass check(err).
async function timeRejectLoop(call, n, check) {
  let refused = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    try {
      await call();
    } catch (err) {
      if (check(err)) refused++;
    }
  }
  const ns = Number(process.hrtime.bigint() - t0);
  if (refused !== n) throw new Error(`only ${refused} of ${n} calls were refused as expected`);
  return ns;
}

// Warm up (and find how many calls fill MS_PER_RUN), then best of RUNS.
async function measure(name, loop) {
  let n = 10_000;
  let ns = await loop(n);
  while (ns < 200e6) {
    n *= 2;
    ns = await loop(n);
  }
  const iters = Math.max(100_000, Math.round((n * MS_PER_RUN * 1e6) / ns));
  let best = Infinity;
  for (let r = 0; r < RUNS; r++) {
    globalThis.gc?.();
    best = Math.min(best, (await loop(iters)) / iters);
  }
  console.log(`${name}\t${best.toFixed(2)}\t-\t${iters}`);
}

function expectState(name, actual, wanted) {
  if (actual !== wanted) {
    console.log(`# FAIL\t${name}: breaker ended in state ${actual}, expected ${wanted}`);
    failed = true;
  }
}

const noop = async () => {};

console.log(`# node\t${process.version}`);
console.log(`# peer\tcockatiel\t${versionOf('cockatiel')}`);
console.log(`# peer\topossum\t${versionOf('opossum')}`);
console.log(`# runs\t${RUNS}`);

// --- closed path ---------------------------------------------------------------------------

await measure('node.baseline.await_noop', (n) => timeLoop(noop, n));

{
  const name = 'node.cockatiel.closed.consecutive';
  const cb = circuitBreaker(handleAll, {
    halfOpenAfter: 10_000,
    breaker: new ConsecutiveBreaker(5),
  });
  await measure(name, (n) => timeLoop(() => cb.execute(noop), n));
  expectState(name, cb.state, CircuitState.Closed);
}

{
  const name = 'node.cockatiel.closed.sampling';
  const cb = circuitBreaker(handleAll, {
    halfOpenAfter: 10_000,
    breaker: new SamplingBreaker({ threshold: 0.5, duration: 10_000 }),
  });
  await measure(name, (n) => timeLoop(() => cb.execute(noop), n));
  expectState(name, cb.state, CircuitState.Closed);
}

// opossum's rule is always a rolling-window error percentage (10 s, 10 buckets by default).
// Its default 10 s timeout arms a timer on every call; cbx's breaker has no timer, so the
// like-for-like figure is with timeout: false, and the default is shown beside it.
for (const [name, opts] of [
  ['node.opossum.closed', { timeout: false, resetTimeout: 10_000 }],
  ['node.opossum.closed.default_timeout', { resetTimeout: 10_000 }],
]) {
  const cb = new CircuitBreaker(noop, opts);
  await measure(name, (n) => timeLoop(() => cb.fire(), n));
  expectState(name, cb.opened ? 'open' : cb.halfOpen ? 'half_open' : 'closed', 'closed');
  cb.shutdown();
}

// --- rejection by an open breaker ---------------------------------------------------------

{
  const err = new Error('refused');
  const refuse = () => Promise.reject(err);
  await measure('node.baseline.await_reject', (n) => timeRejectLoop(refuse, n, (e) => e === err));
}

{
  const cb = circuitBreaker(handleAll, {
    halfOpenAfter: HOUR_MS,
    breaker: new ConsecutiveBreaker(5),
  });
  const handle = cb.isolate();
  await measure('node.cockatiel.open.reject', (n) =>
    timeRejectLoop(
      () => cb.execute(noop),
      n,
      (e) => e instanceof IsolatedCircuitError || e instanceof BrokenCircuitError,
    ),
  );
  handle.dispose();
}

{
  const cb = new CircuitBreaker(noop, { timeout: false, resetTimeout: HOUR_MS });
  cb.open();
  await measure('node.opossum.open.reject', (n) =>
    timeRejectLoop(
      () => cb.fire(),
      n,
      (e) => e.code === 'EOPENBREAKER',
    ),
  );
  cb.shutdown();
}

process.exitCode = failed ? 1 : 0;
