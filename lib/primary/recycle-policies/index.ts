import type { ResolvedOptions } from '../../options.js';
import { MaxAgePolicy } from './max-age.js';
import { MaxRequestsPolicy } from './max-requests.js';
import { MemoryPolicy } from './memory.js';
import type { RecyclePolicy } from './types.js';

export type { PushedLimit, RecyclePolicy, WorkerLimit, WorkerSample } from './types.js';

/** The policies the `recycle` options ask for (none when no limit is set). */
export function createPolicies(recycle: ResolvedOptions['recycle']): RecyclePolicy[] {
  const policies: RecyclePolicy[] = [];
  if (recycle.maxRequests !== undefined)
    policies.push(new MaxRequestsPolicy(recycle.maxRequests, recycle.maxRequestsJitter));
  if (recycle.maxRss !== undefined || recycle.maxHeapUsed !== undefined) {
    policies.push(
      new MemoryPolicy({
        maxRss: recycle.maxRss,
        maxHeapUsed: recycle.maxHeapUsed,
        checks: recycle.memoryChecks,
      }),
    );
  }
  if (recycle.maxAge !== undefined) policies.push(new MaxAgePolicy(recycle.maxAge, recycle.maxAgeJitter));
  return policies;
}
