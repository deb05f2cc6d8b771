// Dates, sections, seats, holds and payments, as an ACTIVE buyer sees them. A `session` (see
// queue.js) carries the access token and the latest queue token.

import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { KEEP_HOLDS, THINK_SCALE } from './config.js';
import { del, get, idempotencyKey, post } from './http.js';

export const holdsPlaced = new Counter('boxoffice_holds_placed');
export const holdsRefused = new Counter('boxoffice_holds_refused');
export const paymentsMade = new Counter('boxoffice_payments_made');

/** Sleeps `seconds` times THINK_SCALE (users read before they click). */
export function think(seconds) {
  if (THINK_SCALE > 0 && seconds > 0) sleep(seconds * THINK_SCALE);
}

function pick(items) {
  return items.length ? items[Math.floor(Math.random() * items.length)] : undefined;
}

/** GET /concerts?limit= : the public list. */
export function listConcerts(limit = 20, cursor) {
  const q = cursor ? `?limit=${limit}&cursor=${encodeURIComponent(cursor)}` : `?limit=${limit}`;
  return get(`/concerts${q}`, 'GET /concerts');
}

/** GET /concerts/{id}: the concert with its schedules (public). */
export function concert(id) {
  return get(`/concerts/${id}`, 'GET /concerts/{id}', { expected: [200, 404] });
}

/** GET /concerts/{id}/schedules (ACTIVE): dates with seats left. */
export function schedules(s) {
  return get(`/concerts/${s.concertId}/schedules`, 'GET /concerts/{id}/schedules', { session: s, expected: [200, 403] });
}

/** GET /schedules/{sid}/sections (ACTIVE). */
export function sections(s, scheduleId) {
  return get(`/schedules/${scheduleId}/sections`, 'GET /schedules/{id}/sections', { session: s, expected: [200, 403] });
}

/** GET /schedules/{sid}/seats?section=ID (ACTIVE): the seat map of one section. */
export function seats(s, scheduleId, sectionId) {
  return get(`/schedules/${scheduleId}/seats?section=${sectionId}`, 'GET /schedules/{id}/seats',
    { session: s, expected: [200, 403] });
}

/** POST /schedules/{sid}/holds {seatIds}: 201, or 409 SEAT_UNAVAILABLE / 422 limit (outcomes). */
export function holdSeats(s, scheduleId, seatIds) {
  const r = post(`/schedules/${scheduleId}/holds`, 'POST /schedules/{id}/holds', { seatIds },
    { session: s, expected: [201, 403, 409, 422] });
  (r.status === 201 ? holdsPlaced : holdsRefused).add(1, { kind: 'seated' });
  return r;
}

/** POST /schedules/{sid}/holds {sectionId, quantity}: general admission. */
export function holdGA(s, scheduleId, sectionId, quantity) {
  const r = post(`/schedules/${scheduleId}/holds`, 'POST /schedules/{id}/holds', { sectionId, quantity },
    { session: s, expected: [201, 403, 409, 422] });
  (r.status === 201 ? holdsPlaced : holdsRefused).add(1, { kind: 'ga' });
  return r;
}

/** DELETE /holds/{id}: give the seats back. */
export function release(s, holdId) {
  return del(`/holds/${holdId}`, 'DELETE /holds/{id}', { session: { user: s.user }, expected: [204, 404] });
}

/**
 * POST /holds/{id}/payment with an Idempotency-Key. A transport error or 5xx is retried once
 * with the same key: the contract says it charges once and answers the same body.
 */
export function pay(s, holdId) {
  const key = idempotencyKey('pay');
  const opts = { session: { user: s.user }, expected: [201, 402, 404, 410], headers: { 'Idempotency-Key': key } };
  let r = post(`/holds/${holdId}/payment`, 'POST /holds/{id}/payment', undefined, opts);
  if (r.status === 0 || r.status >= 500) r = post(`/holds/${holdId}/payment`, 'POST /holds/{id}/payment', undefined, opts);
  if (r.status === 201) paymentsMade.add(1);
  return r;
}

/** POST /me/points/charges: top up a signed-up user so a payment can succeed. */
export function charge(user, amount) {
  return post('/me/points/charges', 'POST /me/points/charges', { amount },
    { session: { user }, headers: { 'Idempotency-Key': idempotencyKey('charge') } });
}

/**
 * Finds a seat to buy the way a person does: first date, a random seated section with seats
 * left, a random AVAILABLE seat. Returns {scheduleId, sectionId, seatId} or null.
 */
export function chooseSeat(s) {
  const d = schedules(s);
  const schedule = d.body && d.body.items && pick(d.body.items.filter((x) => x.availableSeats !== 0));
  if (!schedule) return null;
  const sec = sections(s, schedule.scheduleId);
  const seated = (sec.body && sec.body.items || []).filter((x) => x.kind === 'SEATED' && x.remaining !== 0);
  for (let attempt = 0; attempt < 3 && seated.length; attempt++) {
    const section = pick(seated);
    const map = seats(s, schedule.scheduleId, section.sectionId);
    const free = (map.body && map.body.items || []).filter((x) => x.status === 'AVAILABLE');
    const seat = pick(free);
    if (seat) return { scheduleId: schedule.scheduleId, sectionId: section.sectionId, seatId: seat.seatId, price: seat.price };
  }
  return null;
}

/**
 * Holds one seat chosen by chooseSeat; on 409 SEAT_UNAVAILABLE (someone was faster) tries
 * another once. Returns the 201 body or null.
 */
export function holdOneSeat(s) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const choice = chooseSeat(s);
    if (!choice) return null;
    const r = holdSeats(s, choice.scheduleId, [choice.seatId]);
    if (r.status === 201) return r.body;
    if (r.status !== 409) return null;
  }
  return null;
}

/** Releases a hold unless KEEP_HOLDS=1. */
export function releaseUnlessKept(s, hold) {
  if (hold && hold.holdId && !KEEP_HOLDS) release(s, hold.holdId);
}
