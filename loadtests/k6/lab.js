// The lab's k6 helpers, shared by every design's open-loop script (loadtests/<design>/load.k6.js).
//
// The engine (services/lab/generators/k6_driver.py) passes the run through the environment:
//   SDLAB_RATE, SDLAB_DURATION_S, SDLAB_SHAPE (steady|step|spike|ramp), SDLAB_STAGES (JSON, for shapes),
//   SDLAB_MAX_VUS, SDLAB_SEED_FILE, SDLAB_READ_WEIGHT, SDLAB_WRITE_WEIGHT, SDLAB_ZIPF_S,
//   SDLAB_K6_SUMMARY (where handleSummary writes its JSON), SDLAB_HOST.
// Acknowledged writes are logged with console.log as one JSON object a line; the engine runs k6
// with --log-format=raw --console-output=<acks.jsonl>, the same file format the Locust files write.
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';

export const HOST = __ENV.SDLAB_HOST || 'http://127.0.0.1:8080';
export const READ_WEIGHT = Number(__ENV.SDLAB_READ_WEIGHT || 10);
export const WRITE_WEIGHT = Number(__ENV.SDLAB_WRITE_WEIGHT || 1);
export const ZIPF_S = Number(__ENV.SDLAB_ZIPF_S || 1.1);
// A hung request ends as a failure after this, as in the Locust files (k6's default is 60 s).
export const TIMEOUT = `${Number(__ENV.SDLAB_TIMEOUT_S || 10)}s`;

// Open loop: iterations start on schedule whether or not earlier ones have finished. When every
// VU is busy, k6 drops the iteration and counts it (dropped_iterations) instead of delaying it,
// so a slow server shows up as drops and latency, never as a lower offered rate.
function scenario() {
  const rate = Number(__ENV.SDLAB_RATE || 100);
  const maxVUs = Number(__ENV.SDLAB_MAX_VUS || Math.max(100, Math.ceil(rate)));
  const preAllocatedVUs = Math.min(maxVUs, Math.max(10, Math.ceil(rate / 20)));
  // Iterations still running at the end get this long, then are cut (a hung server must not hold the run).
  const gracefulStop = `${Number(__ENV.SDLAB_GRACEFUL_STOP_S || 3)}s`;
  if (__ENV.SDLAB_STAGES) {
    return {
      executor: 'ramping-arrival-rate', startRate: Number(__ENV.SDLAB_START_RATE || 0), timeUnit: '1s',
      stages: JSON.parse(__ENV.SDLAB_STAGES), preAllocatedVUs, maxVUs, gracefulStop,
    };
  }
  return {
    executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration: `${Number(__ENV.SDLAB_DURATION_S || 30)}s`,
    preAllocatedVUs, maxVUs, gracefulStop,
  };
}

// Submetrics per endpoint name: the thresholds only make k6 keep them (in the end-of-test summary
// and in the per-second stream the engine reads); they can never fail.
export function labOptions(endpointNames) {
  const thresholds = {};
  for (const name of endpointNames) {
    thresholds[`http_req_duration{name:${name}}`] = ['max>=0'];
    thresholds[`http_reqs{name:${name}}`] = ['count>=0'];
    thresholds[`http_req_failed{name:${name}}`] = ['rate>=0'];
  }
  return {
    discardResponseBodies: true,
    scenarios: { open: scenario() },
    thresholds,
    summaryTrendStats: ['count', 'avg', 'min', 'med', 'p(95)', 'p(99)', 'max'],
  };
}

// Per-endpoint metrics that k6's per-second stream carries (it does not carry tag submetrics).
// Their names hold the endpoint name as UTF-16 hex, which the engine decodes: k6 metric names
// allow only letters, digits and underscores.
function hexName(name) {
  let out = '';
  for (let i = 0; i < name.length; i++) out += name.charCodeAt(i).toString(16).padStart(4, '0');
  return out;
}

export function endpoint(name) {
  const id = hexName(name);
  return {
    name,
    duration: new Trend(`lab_ep_${id}_duration`, true),
    requests: new Counter(`lab_ep_${id}_requests`),
    failures: new Counter(`lab_ep_${id}_failures`),
  };
}

// Call after each request with whether its answer was the expected one.
export function record(ep, response, ok) {
  ep.duration.add(response.timings.duration);
  ep.requests.add(1);
  if (!ok) ep.failures.add(1);
}

export function seed() {
  return JSON.parse(open(__ENV.SDLAB_SEED_FILE));
}

// One copy of a seed-derived list for all VUs (a run at thousands of arrivals/s starts
// thousands of VUs; each would otherwise parse the seed file into its own memory).
export function sharedList(name, build) {
  return new SharedArray(name, build);
}

// Cumulative Zipf weights (rank r weighs 1/r**s) over n items, and a sampler by binary search.
export function zipfSampler(n, s) {
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let r = 1; r <= n; r++) { acc += 1 / Math.pow(r, s); cdf[r - 1] = acc; }
  return function () {
    const x = Math.random() * acc;
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] < x) lo = mid + 1; else hi = mid; }
    return lo;
  };
}

export function readOrWrite() {
  return Math.random() * (READ_WEIGHT + WRITE_WEIGHT) < READ_WEIGHT ? 'read' : 'write';
}

export function logWrite(record) {
  console.log(JSON.stringify(record));
}

// One address of the benchmarking range 198.18.0.0/15 per request: the services see many
// clients (their per-client limits apply per address), as behind a real load balancer.
export function randomClientAddress() {
  const n = 0xC6120000 + Math.floor(Math.random() * (1 << 17));
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function writeSummary(data) {
  const out = {};
  if (__ENV.SDLAB_K6_SUMMARY) out[__ENV.SDLAB_K6_SUMMARY] = JSON.stringify(data);
  return out;
}

export { http };
