// Load profiles: the ones the seed write-ups (shared/seeds/) ran by hand, by name.
//
// profile(name, {scale, vusScale, exec}) returns one k6 scenario object.
//   scale     multiplies every duration (0.1 turns seed 003's 10-minute soak into 1 minute);
//             no stage gets shorter than 1 s
//   vusScale  multiplies every VU target (a 2-core box cannot hold seed 002's 6,500 VUs next
//             to the stack; 0.1 keeps the shape at a tenth of the users); a non-zero target
//             never drops below 1
//
// Shapes:
//   {stages: [[duration, target], ...]}      ramping-vus, k6's linear ramps, exactly as the seed
//   {steps: [[duration, vus], ...]}          ramping-vus held flat at each level ("for 20 s, 100
//                                            users"), with a 1 s ramp between levels
//   {vus, duration}                          constant-vus

const PROFILES = {
  // A short check that a scenario runs end to end.
  smoke: { vus: 2, duration: '15s', note: 'a quick end-to-end check' },

  // Seed 001: each of its five scenarios was started tiny and grown by hand; these are the
  // stages its scripts show.
  'seed001-points': { stages: [['1s', 1], ['1s', 1]], note: 'seed 001 #1 (points), as scripted' },
  'seed001-browse': { stages: [['5s', 50], ['20s', 899]], note: 'seed 001 #2 (browse + join)' },
  'seed001-dates': { stages: [['1s', 2], ['1s', 899]], note: 'seed 001 #3 (join then dates)' },
  'seed001-hold': { stages: [['1s', 1], ['1s', 1]], note: 'seed 001 #4 (seats + hold)' },
  'seed001-pay': { stages: [['2s', 1], ['2s', 1]], note: 'seed 001 #5 (hold + pay)' },

  // Seed 002: every API test ran 100/200/300/200/100/0 users, 20 s per level (2 minutes).
  seed002: { steps: [['20s', 100], ['20s', 200], ['20s', 300], ['20s', 200], ['20s', 100], ['20s', 0]], note: 'seed 002 API tests' },
  // Seed 002's queue-polling test, final version: 30 s stages up to 6,500 pollers and back.
  'seed002-queue': {
    stages: [['30s', 1000], ['30s', 2000], ['30s', 3000], ['30s', 4000], ['30s', 5000], ['30s', 6000],
      ['30s', 6500], ['30s', 6000], ['30s', 4000], ['30s', 2000], ['30s', 0]],
    note: 'seed 002 queue polling (final, 11 stages)',
  },
  // Its first attempt (too much for their server): up to 8,500 pollers.
  'seed002-queue-first': {
    stages: [['30s', 5500], ['30s', 8000], ['30s', 8500], ['30s', 8000], ['30s', 7000], ['30s', 6000],
      ['30s', 5000], ['30s', 3000], ['30s', 1000], ['30s', 0]],
    note: 'seed 002 queue polling (first attempt)',
  },

  // Seed 003 (reservation and token issuing): target 500-1,000 TPS.
  'seed003-load': { vus: 500, duration: '60s', note: 'seed 003 load' },
  'seed003-soak': { vus: 500, duration: '10m', note: 'seed 003 soak' },
  'seed003-stress': { stages: [['2m', 500], ['2m', 750], ['2m', 1000], ['2m', 0]], note: 'seed 003 stress' },
  // The write-up says "back down to 500 in 2 minutes"; one of its scripts has 5000 (a typo).
  'seed003-peak': { stages: [['2m', 500], ['5m', 1500], ['2m', 500]], note: 'seed 003 peak' },

  // Seed 004 (the whole journey).
  'seed004-load': { stages: [['15s', 150], ['15s', 150], ['15s', 0]], note: 'seed 004 load' },
  'seed004-endurance': { stages: [['15s', 150], ['4m', 150], ['15s', 0]], note: 'seed 004 endurance' },
  'seed004-stress': {
    stages: [['10s', 100], ['10s', 100], ['10s', 200], ['10s', 200], ['10s', 300], ['10s', 300],
      ['10s', 400], ['10s', 400], ['10s', 500], ['10s', 500], ['10s', 600], ['10s', 600], ['10s', 0]],
    note: 'seed 004 stress',
  },
  'seed004-peak': { stages: [['10s', 30], ['5s', 600], ['20s', 30], ['5s', 600], ['10s', 0]], note: 'seed 004 peak' },
};

const UNITS = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** '2m' -> 120 (seconds). */
export function seconds(duration) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(duration));
  if (!m) throw new Error(`bad duration ${duration}`);
  return Number(m[1]) * UNITS[m[2]];
}

function dur(duration, scale) {
  return `${Math.max(1, Math.round(seconds(duration) * scale))}s`;
}

function vus(target, vusScale) {
  return target === 0 ? 0 : Math.max(1, Math.round(target * vusScale));
}

export function names() {
  return Object.keys(PROFILES);
}

/** Peak VUs and total seconds of a profile after scaling (for tools/k6run's banner). */
export function describe(name, { scale = 1, vusScale = 1 } = {}) {
  const sc = profile(name, { scale, vusScale });
  if (sc.executor === 'constant-vus') return { maxVus: sc.vus, seconds: seconds(sc.duration), note: PROFILES[name].note };
  return {
    maxVus: Math.max(...sc.stages.map((s) => s.target)),
    seconds: sc.stages.reduce((t, s) => t + seconds(s.duration), 0),
    note: PROFILES[name].note,
  };
}

/** The k6 scenario object for profile `name`. */
export function profile(name, { scale = 1, vusScale = 1, exec } = {}) {
  const p = PROFILES[name];
  if (!p) throw new Error(`unknown profile ${name}; known: ${names().join(', ')}`);
  const base = exec ? { exec } : {};
  if (p.vus !== undefined) {
    return Object.assign(base, { executor: 'constant-vus', vus: vus(p.vus, vusScale), duration: dur(p.duration, scale) });
  }
  let stages;
  if (p.steps) {
    stages = [];
    for (const [d, target] of p.steps) {
      const total = Math.max(2, Math.round(seconds(d) * scale));
      stages.push({ duration: '1s', target: vus(target, vusScale) });
      stages.push({ duration: `${total - 1}s`, target: vus(target, vusScale) });
    }
  } else {
    stages = p.stages.map(([d, target]) => ({ duration: dur(d, scale), target: vus(target, vusScale) }));
  }
  return Object.assign(base, { executor: 'ramping-vus', startVUs: 0, stages, gracefulRampDown: '30s' });
}
