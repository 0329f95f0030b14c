// The shortener's open-loop load: the same mix, seed and endpoint names as locustfile.py.
//   redirects of seeded codes, Zipf-distributed (READ_WEIGHT), and creates of new URLs (WRITE_WEIGHT).
//   SDLAB_OPT_READ_AFTER_CREATE (stale | token | primary): every create is read back at once through
//   the link-stats endpoint: from a replica with no promise, with the create's X-Commit-LSN
//   (read-your-writes), or from the primary; each read is logged with its status and time.
import {
  HOST, TIMEOUT, ZIPF_S, endpoint, http, labOptions, logWrite, randomClientAddress, readOrWrite, record, seed,
  sharedList, writeSummary, zipfSampler,
} from '../k6/lab.js';

const REDIRECT = '/{code}';
const CREATE = '/api/v1/links';
const codes = sharedList('codes', () => seed().links.map((link) => link.code));
const pick = zipfSampler(codes.length, ZIPF_S);
const redirects = endpoint(REDIRECT);
const creates = endpoint(CREATE);
const redirectOk = http.expectedStatuses(302);
const createOk = http.expectedStatuses(200, 201);
const READ_AFTER = __ENV.SDLAB_OPT_READ_AFTER_CREATE || '';
const READ_BACK = 'read-back after create';  // k6 metric names hold 28 characters of it
const readBacks = READ_AFTER ? endpoint(READ_BACK) : null;
const readBackOk = http.expectedStatuses(200, 404);
let serial = 0;

export const options = labOptions(READ_AFTER ? [REDIRECT, CREATE, READ_BACK] : [REDIRECT, CREATE]);

function redirect() {
  const response = http.get(`${HOST}/${codes[pick()]}`, {
    redirects: 0, timeout: TIMEOUT, tags: { name: REDIRECT }, responseCallback: redirectOk,
    headers: { 'X-Forwarded-For': randomClientAddress() },
  });
  record(redirects, response, response.status === 302);
}

function create() {
  serial += 1;
  const url = `https://example.com/load/${__VU}-${serial}-${Math.random().toString(36).slice(2)}`;
  logWrite({ event: 'attempted', url });
  const response = http.post(`${HOST}${CREATE}`, JSON.stringify({ url }), {
    timeout: TIMEOUT, tags: { name: CREATE }, responseCallback: createOk, responseType: 'text',
    headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': randomClientAddress() },
  });
  record(creates, response, response.status === 200 || response.status === 201);
  if (response.status === 201) {
    const code = response.json('code');
    logWrite({ event: 'acknowledged', code, url });
    if (READ_AFTER) readBack(code, response.headers['X-Commit-Lsn']);
  }
}

function readBack(code, lsn) {
  const headers = READ_AFTER === 'token' && lsn ? { 'X-Read-After-LSN': lsn }
    : READ_AFTER === 'primary' ? { 'X-Read-From': 'primary' } : {};
  const response = http.get(`${HOST}${CREATE}/${code}`, {
    timeout: TIMEOUT, tags: { name: READ_BACK }, responseCallback: readBackOk, headers,
  });
  // A 404 is the replica not having replayed the create yet: a stale read, not a failed request.
  record(readBacks, response, response.status === 200 || response.status === 404);
  logWrite({ event: 'read_after_create', mode: READ_AFTER, code, token: Boolean(lsn), status: response.status,
    ms: response.timings.duration });
}

export default function () {
  if (readOrWrite() === 'read') redirect(); else create();
}

export function handleSummary(data) {
  return writeSummary(data);
}
