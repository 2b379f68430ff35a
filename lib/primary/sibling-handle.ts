import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { IpcChannel } from '../common/ipc.js';
import type { SerializedError } from '../errors.js';
import { ChildHandle } from './child-handle.js';

/**
 * `ready` is the first report with every service running (`services:running`); the fork and the
 * death are logged by the supervisor, which knows the crash count and the backoff.
 */
const SIBLING_EVENTS = { booting: null, ready: 'services:running', draining: null, dead: null } as const;

/** The forked services sibling: a child handle plus what the primary watches of its status pushes. */
export class SiblingHandle extends ChildHandle {
  /** When its last status push arrived (null before the first one). */
  lastReportAt: number | null = null;
  /** Set while it is silent for longer than the stale threshold. */
  stale = false;
  /** Why the primary killed it, when it did. */
  killedFor: string | null = null;
  /** The coded error it reported before exiting because its module could not be loaded. */
  loadError: SerializedError | null = null;
  /** Checks its silence a few times per push interval; cleared on exit. */
  hangTimer: NodeJS.Timeout | undefined;

  constructor(child: ChildProcess, logger: Logger) {
    super({
      process: child,
      exitSource: child,
      logger,
      channel: new IpcChannel(child, { peerName: 'services sibling' }),
      events: SIBLING_EVENTS,
      exitReason: 'services sibling exited',
    });
    void this.exited.then(() => clearInterval(this.hangTimer));
  }

  /** The primary asked it to stop: its exit is not a crash. */
  get expected(): boolean {
    return this.retireReason !== null;
  }

  protected transitionFields(): Record<string, unknown> {
    return { siblingPid: this.pid };
  }
}
