// The shop's open-loop load: the same endpoint names as locustfile.py.
//   reads (READ_WEIGHT): a product page, or a category listing (SDLAB_OPT_LISTING_SHARE of them, default 1 in 3);
//   writes (WRITE_WEIGHT): a direct checkout of one random product, retried with the same
//   Idempotency-Key on 503, 429 (busy) or a timeout, backing off (0.1, 0.2, 0.4 s, with jitter) as
//   a careful client does (the retries are part of the iteration's time). 202 (an asynchronous
//   checkout: reserved and placed, payment pending) is an answer, like 201.
// SDLAB_OPT_SCENARIO=flash-sale: every iteration is a checkout of the seed's flash product.
// SDLAB_OPT_RETRY=hostile: a client that retries everything, the way real ones do: each checkout
//   is sent as SDLAB_OPT_COPIES concurrent copies (default 2-3, one http.batch), then again, one
//   copy at a time, with a client timeout of SDLAB_OPT_CLIENT_TIMEOUT_MS (default 40: the answer
//   is dropped when the saga takes longer) for SDLAB_OPT_SHORT_ROUNDS rounds (default 3), then with
//   the normal timeout, always the same key, until a final answer (or 30 s).
// SDLAB_OPT_LOG_LISTINGS=1: every listing's start, latency, status and partial flag go to the ack log.
//
// The ack log (SDLAB_ACK_LOG) gets, per checkout: {event: 'attempted', user, key, product, t} once,
// {event: 'answer', user, key, product, try, status, code, replayed, ms, t} for every HTTP request
// sent for it (t: its start, ms since the epoch; status 0: no answer within the client's timeout),
// and {event: 'acknowledged', user, key, order_id, status} once, at its first 201 or 202.
import { sleep } from 'k6';
import {
  HOST, TIMEOUT, endpoint, http, labOptions, logWrite, readOrWrite, record, seed, sharedList, writeSummary,
} from '../k6/lab.js';

const LISTING = '/api/v1/products';
const PRODUCT = '/api/v1/products/{id}';
const CHECKOUT = '/api/v1/checkout';
const SCENARIO = __ENV.SDLAB_OPT_SCENARIO || 'shoppers';
const LISTING_SHARE = Number(__ENV.SDLAB_OPT_LISTING_SHARE || 1 / 3);
const LOG_LISTINGS = (__ENV.SDLAB_OPT_LOG_LISTINGS || '') === '1';
const HOSTILE = (__ENV.SDLAB_OPT_RETRY || 'careful') === 'hostile';
const COPIES = (__ENV.SDLAB_OPT_COPIES || '2-3').split('-').map(Number);
const CLIENT_TIMEOUT = `${Number(__ENV.SDLAB_OPT_CLIENT_TIMEOUT_MS || 40)}ms`;
const SHORT_ROUNDS = Number(__ENV.SDLAB_OPT_SHORT_ROUNDS || 3);
const HOSTILE_GIVE_UP_MS = 30000;
const products = sharedList('products', () => seed().products.map((p) => p.id));
const users = sharedList('users', () => seed().users.map((u) => JSON.stringify(u)));
const categories = sharedList('categories', () => seed().categories);
const flash = sharedList('flash', () => [seed().flash_product.id]);
const listings = endpoint(LISTING);
const pages = endpoint(PRODUCT);
const checkouts = endpoint(CHECKOUT);
const okCheckout = http.expectedStatuses(201, 202, 402, 409);
const RETRIES = 4;

export const options = labOptions([LISTING, PRODUCT, CHECKOUT]);

function pick(list) { return list[Math.floor(Math.random() * list.length)]; }

function uuid4() {
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = Math.random() * 16 | 0;
    return (c === 'x' ? r : (r & 0x3 | 0x8)).toString(16);
  });
}

function field(response, selector) {
  try { return response.json(selector); } catch (e) { return null; }
}

function listing() {
  const t = Date.now();
  const response = http.get(`${HOST}${LISTING}?category=${pick(categories)}&limit=20`,
    { timeout: TIMEOUT, tags: { name: LISTING }, responseType: LOG_LISTINGS ? 'text' : 'none' });
  record(listings, response, response.status === 200);
  if (LOG_LISTINGS) {
    logWrite({
      event: 'listing', t, ms: response.timings.duration, status: response.status,
      partial: response.status === 200 ? field(response, 'partial') === true : null,
      missing: response.status === 200 ? field(response, 'missing_shards') : null,
    });
  }
}

function read() {
  if (Math.random() >= LISTING_SHARE) {
    const response = http.get(`${HOST}/api/v1/products/${pick(products)}`, { timeout: TIMEOUT, tags: { name: PRODUCT } });
    record(pages, response, response.status === 200);
  } else {
    listing();
  }
}

// What one answer means to a client: final (do not send again) or not (send again, same key).
function judge(response) {
  const inUse = response.status === 409 && String(response.body).includes('idempotency_key_in_use');
  const accepted = response.status === 201 || response.status === 202;
  const answered = accepted || response.status === 402 || (response.status === 409 && !inUse);
  const final = answered || !(response.status === 0 || response.status === 503 || response.status === 429 || inUse);
  return { inUse, answered, final };
}

function checkoutParams(buyer, key, timeout) {
  return {
    timeout, tags: { name: CHECKOUT }, responseCallback: okCheckout, responseType: 'text',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${buyer.token}`, 'Idempotency-Key': key },
  };
}

// Logs one answer; returns whether it was final. ``state.acked``: the key's first 201 is logged.
function answer(state, response, t, attempt) {
  const verdict = judge(response);
  record(checkouts, response, verdict.answered);
  const code = response.status >= 400 ? field(response, 'error.code') : null;
  logWrite({
    event: 'answer', user: state.buyer.user, key: state.key, product: state.product, try: attempt,
    status: response.status, code, replayed: response.headers['Idempotent-Replayed'] === 'true',
    ms: response.timings.duration, t,
  });
  if ((response.status === 201 || response.status === 202) && !state.acked) {
    state.acked = true;
    logWrite({ event: 'acknowledged', user: state.buyer.user, key: state.key, order_id: field(response, 'order_id'),
      status: response.status });
  }
  return verdict.final;
}

function checkout(productId) {
  const buyer = JSON.parse(pick(users));
  const state = { buyer, key: uuid4(), product: productId, acked: false };
  const body = JSON.stringify({ items: [{ product_id: productId, quantity: 1 }] });
  logWrite({ event: 'attempted', user: buyer.user, key: state.key, product: productId, t: Date.now() });
  if (HOSTILE) return hostileCheckout(state, body);
  for (let attempt = 0; attempt < RETRIES; attempt++) {
    if (attempt > 0) sleep(Math.min(1, 0.1 * 2 ** (attempt - 1)) * (0.5 + Math.random()));  // back off, with jitter
    const t = Date.now();
    const response = http.post(`${HOST}${CHECKOUT}`, body, checkoutParams(buyer, state.key, TIMEOUT));
    if (answer(state, response, t, attempt)) return;
  }
}

function hostileCheckout(state, body) {
  const started = Date.now();
  const [low, high] = [COPIES[0], COPIES[COPIES.length - 1]];
  const copies = low + Math.floor(Math.random() * (high - low + 1));
  let sent = 0;
  for (let round = 0; Date.now() - started < HOSTILE_GIVE_UP_MS; round++) {
    const timeout = round < SHORT_ROUNDS ? CLIENT_TIMEOUT : TIMEOUT;
    const request = ['POST', `${HOST}${CHECKOUT}`, body, checkoutParams(state.buyer, state.key, timeout)];
    const t = Date.now();
    const responses = round === 0 ? http.batch(Array.from({ length: copies }, () => request))
      : [http.post(request[1], body, request[3])];
    let final = false;
    for (const response of responses) final = answer(state, response, t, sent++) || final;
    if (final) return;
    sleep(Math.min(0.5, 0.025 * 2 ** round));
  }
}

export default function () {
  if (SCENARIO === 'flash-sale') checkout(flash[0]);
  else if (readOrWrite() === 'read') read();
  else checkout(pick(products));
}

export function handleSummary(data) {
  return writeSummary(data);
}
