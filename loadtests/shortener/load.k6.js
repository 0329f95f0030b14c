// The shortener's open-loop load: the same mix, seed and endpoint names as locustfile.py.
//   redirects of seeded codes, Zipf-distributed (READ_WEIGHT), and creates of new URLs (WRITE_WEIGHT).
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
let serial = 0;

export const options = labOptions([REDIRECT, CREATE]);

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
  if (response.status === 201) logWrite({ event: 'acknowledged', code: response.json('code'), url });
}

export default function () {
  if (readOrWrite() === 'read') redirect(); else create();
}

export function handleSummary(data) {
  return writeSummary(data);
}
