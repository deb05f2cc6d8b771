// Seed 003 #1: seat reservation under load. Each VU is a user admitted once (its session is
// kept across iterations and renewed when it ends); every iteration it holds a random seat of a
// random arena section, which races with every other VU: 409 SEAT_UNAVAILABLE is an outcome.
// Successful holds are released (KEEP_HOLDS=1 keeps them) so the per-user limit never bites.
// Default profile: seed003-load (500 VUs, 60 s); also seed003-soak, -stress, -peak.

import { sleep } from 'k6';
import { options as base } from '../lib/options.js';
import { concertId } from '../lib/config.js';
import { vuUser } from '../lib/users.js';
import { joinAndWaitActive, session } from '../lib/queue.js';
import { holdSeats, releaseUnlessKept, schedules, sections, seats, think } from '../lib/sales.js';

export const options = base('seed003-load');

let s = null;
let catalog = null; // {scheduleId, sections: [{sectionId, seatIds}]}, learnt once per VU

function learn() {
  const d = schedules(s);
  const schedule = d.body && d.body.items && d.body.items[0];
  if (!schedule) return null;
  const sec = sections(s, schedule.scheduleId);
  const seated = (sec.body && sec.body.items || []).filter((x) => x.kind === 'SEATED');
  const picked = [];
  for (let i = 0; i < 3 && seated.length; i++) {
    const section = seated[Math.floor(Math.random() * seated.length)];
    const map = seats(s, schedule.scheduleId, section.sectionId);
    const ids = (map.body && map.body.items || []).map((x) => x.seatId);
    if (ids.length) picked.push({ sectionId: section.sectionId, seatIds: ids });
  }
  return picked.length ? { scheduleId: schedule.scheduleId, sections: picked } : null;
}

export default function () {
  if (!s || s.status !== 'ACTIVE') {
    const user = vuUser();
    if (!user) return;
    s = session(user, concertId());
    if (!joinAndWaitActive(s)) {
      s = null;
      return;
    }
    catalog = catalog || learn();
  }
  if (!catalog) {
    sleep(1);
    return;
  }
  const section = catalog.sections[Math.floor(Math.random() * catalog.sections.length)];
  const seatId = section.seatIds[Math.floor(Math.random() * section.seatIds.length)];
  const r = holdSeats(s, catalog.scheduleId, [seatId]);
  if (r.status === 403) s.status = null; // session over: queue again next iteration
  if (r.status === 201) releaseUnlessKept(s, r.body);
  think(1);
}
