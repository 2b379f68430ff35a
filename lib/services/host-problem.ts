/**
 * The host's view of a service from outside it, apart from the host itself: the primary applies the same
 * rule to the last report of a services sibling that died, and importing it from here keeps the service
 * host and its runners out of a primary that hosts no services (`placement: 'sibling'`).
 */

/** A service out of `running` (starting, in backoff, failed) for longer than this cannot make progress. */
export const NOT_RUNNING_PROBLEM_MS = 5_000;

/** What `hostProblem` reads of a service record. */
export interface HostView {
  status: { state: string };
  notRunningSince: number | null;
  stalled: boolean;
  hasWork: boolean;
}

/**
 * What the host sees of a service from outside, or null: the event loop of its process was blocked,
 * it failed (restarted more often than its intensity allows), it has been starting or restarting for
 * longer than `NOT_RUNNING_PROBLEM_MS`, or the stall watchdog restarted it and it has made no progress
 * since while it has work. The texts are stable so each is logged once.
 */
export function hostProblem(
  record: HostView,
  eventLoopProblem: string | null,
  now = Date.now(),
): string | null {
  const { status, notRunningSince } = record;
  const parts: string[] = [];
  if (eventLoopProblem !== null) parts.push(eventLoopProblem);
  if (record.stalled && record.hasWork)
    parts.push('stalled: no progress since the stall watchdog restarted it');
  if (status.state === 'failed')
    parts.push('failed: it crashed more often than its restart intensity allows');
  else if (
    (status.state === 'starting' || status.state === 'backoff') &&
    notRunningSince !== null &&
    now - notRunningSince > NOT_RUNNING_PROBLEM_MS
  )
    parts.push(`not running for more than ${NOT_RUNNING_PROBLEM_MS / 1000} s`);
  return parts.length === 0 ? null : parts.join('; ');
}
