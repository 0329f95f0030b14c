// The shop's open-loop load: the same endpoint names as locustfile.py.
//   reads (READ_WEIGHT): a product page (2 in 3) or a category listing (1 in 3);
//   writes (WRITE_WEIGHT): a direct checkout of one random product, retried with the same
//   Idempotency-Key on 503 or a timeout (the retries are part of the iteration's time).
// SDLAB_OPT_SCENARIO=flash-sale: every iteration is a checkout of the seed's flash product.
import {
  HOST, TIMEOUT, endpoint, http, labOptions, logWrite, readOrWrite, record, seed, sharedList, writeSummary,
} from '../k6/lab.js';

const LISTING = '/api/v1/products';
const PRODUCT = '/api/v1/products/{id}';
const CHECKOUT = '/api/v1/checkout';
const SCENARIO = __ENV.SDLAB_OPT_SCENARIO || 'shoppers';
const products = sharedList('products', () => seed().products.map((p) => p.id));
const users = sharedList('users', () => seed().users.map((u) => JSON.stringify(u)));
const categories = sharedList('categories', () => seed().categories);
const flash = sharedList('flash', () => [seed().flash_product.id]);
const listings = endpoint(LISTING);
const pages = endpoint(PRODUCT);
const checkouts = endpoint(CHECKOUT);
const okCheckout = http.expectedStatuses(201, 402, 409);
const RETRIES = 4;

export const options = labOptions([LISTING, PRODUCT, CHECKOUT]);

function pick(list) { return list[Math.floor(Math.random() * list.length)]; }

function uuid4() {
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = Math.random() * 16 | 0;
    return (c === 'x' ? r : (r & 0x3 | 0x8)).toString(16);
  });
}

function read() {
  if (Math.random() < 2 / 3) {
    const response = http.get(`${HOST}/api/v1/products/${pick(products)}`, { timeout: TIMEOUT, tags: { name: PRODUCT } });
    record(pages, response, response.status === 200);
  } else {
    const response = http.get(`${HOST}${LISTING}?category=${pick(categories)}&limit=20`,
      { timeout: TIMEOUT, tags: { name: LISTING } });
    record(listings, response, response.status === 200);
  }
}

function checkout(productId) {
  const buyer = JSON.parse(pick(users));
  const key = uuid4();
  const body = JSON.stringify({ items: [{ product_id: productId, quantity: 1 }] });
  logWrite({ event: 'attempted', user: buyer.user, key });
  for (let attempt = 0; attempt < RETRIES; attempt++) {
    const response = http.post(`${HOST}${CHECKOUT}`, body, {
      timeout: TIMEOUT, tags: { name: CHECKOUT }, responseCallback: okCheckout, responseType: 'text',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${buyer.token}`, 'Idempotency-Key': key },
    });
    const inUse = response.status === 409 && String(response.body).includes('idempotency_key_in_use');
    const answered = response.status === 201 || response.status === 402 || (response.status === 409 && !inUse);
    record(checkouts, response, answered);
    if (response.status === 201) {
      logWrite({ event: 'acknowledged', user: buyer.user, key, order_id: response.json('order_id') });
    }
    if (answered || !(response.status === 0 || response.status === 503 || inUse)) return;
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
