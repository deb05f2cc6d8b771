// Seed 004: the whole journey, one new user per iteration: sign up, charge points, join the line
// and poll until ACTIVE, look at the concert, its dates, sections and seats, hold a seat, pay.
// Seed 004 lifted its admission limit for the test; ours admits at the configured rate, so the
// time in line is part of the journey (reported as boxoffice_queue_wait_seconds).
// CONCERT_ID defaults to `random` here: a random on-sale small concert, as seed 002's data had.
// Default profile: seed004-load; also seed004-endurance, -stress, -peak.

import { check } from 'k6';
import { options as base } from '../lib/options.js';
import { concertId } from '../lib/config.js';
import { signUp } from '../lib/users.js';
import { joinAndWaitActive, leave, session } from '../lib/queue.js';
import { charge, concert, holdOneSeat, pay, think } from '../lib/sales.js';

export const options = base('seed004-load');

export default function () {
  const user = signUp(`k6-journey-${__VU}-${__ITER}`);
  if (!user) return;
  charge(user, 1000000);
  const id = concertId('random');
  const s = session(user, id);
  if (!joinAndWaitActive(s)) return;
  concert(id);
  const hold = holdOneSeat(s);
  if (!hold) {
    leave(s);
    return;
  }
  think(1);
  const p = pay(s, hold.holdId);
  check(p, { 'journey ends paid': (r) => r.status === 201 });
}
