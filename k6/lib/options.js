// k6 options every scenario shares: the chosen profile (PROFILE, else the scenario's seed
// profile), the thresholds, and summary statistics that include p99.

import { ERROR_RATE, P95_MS, PROFILE, SCALE, VUS_SCALE } from './config.js';
import { profile } from '../profiles.js';

/**
 * options(defaultProfile, {thresholds}) -> k6 `options`.
 * Thresholds: p95 of expected responses under P95_MS, http_req_failed under ERROR_RATE, and
 * any extra ones the scenario adds (e.g. on its own custom metrics).
 */
export function options(defaultProfile, { thresholds = {} } = {}) {
  const name = PROFILE || defaultProfile;
  return {
    scenarios: { [name.replace(/[^A-Za-z0-9_]/g, '_')]: profile(name, { scale: SCALE, vusScale: VUS_SCALE }) },
    thresholds: Object.assign({
      'http_req_duration{expected_response:true}': [`p(95)<${P95_MS}`],
      http_req_failed: [`rate<${ERROR_RATE}`],
    }, thresholds),
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
    setupTimeout: '120s',
    // The seeds' scripts had no tags; ours name every request (lib/http.js), so URLs with ids
    // do not each become a metric series.
    systemTags: ['status', 'method', 'name', 'scenario', 'check', 'error_code', 'expected_response'],
    userAgent: 'boxoffice-k6',
  };
}
