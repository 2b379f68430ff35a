import type { ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { backoffDelay, RestartIntensity } from '../common/backoff.js';
import type { IpcChannel } from '../common/ipc.js';
import type { ResolvedOptions } from '../options.js';

/**
 * Explicit lifecycle of a child the primary forks (an HTTP worker, the services sibling): `ready` once
 * it serves, `draining` once it was asked to stop (its exit is then no crash), `dead` for good.
 */
export type ChildState = 'booting' | 'ready' | 'draining' | 'dead';

/** How a child process ended: its exit code, or the signal that killed it. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildHandleOptions {
  /** The forked process, signalled by `kill()`. */
  process: ChildProcess;
  /** Emits `exit (code, signal)`: the cluster `Worker` for a worker, so it is seen after cluster's own. */
  exitSource: EventEmitter;
  logger: Logger;
  channel: IpcChannel;
  /** Event logged on entering each state; null where the owner logs it with what only it knows. */
  events: Readonly<Record<ChildState, string | null>>;
  /** Why pending IPC requests are rejected once it exited. */
  exitReason: string;
}

/**
 * The primary's handle on one forked child: state machine with logged transitions, the promise of its
 * exit, and the kill timer that backs a graceful stop. Workers and the services sibling both use it.
 */
export abstract class ChildHandle {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly forkedAt = Date.now();
  readonly logger: Logger;
  readonly channel: IpcChannel;
  state: ChildState = 'booting';
  readyAt: number | null = null;
  /** Why it was asked to stop (`recycle`, `shutdown`, a policy name, a restart), or null. */
  retireReason: string | null = null;
  exit: ChildExit | null = null;
  /** Resolves when the child has exited, whatever the reason. */
  readonly exited: Promise<ChildExit>;
  readonly #events: ChildHandleOptions['events'];
  #onReady: (() => void) | undefined;

  constructor(options: ChildHandleOptions) {
    this.process = options.process;
    this.pid = options.process.pid ?? 0;
    this.logger = options.logger;
    this.channel = options.channel;
    this.#events = options.events;
    this.exited = new Promise((resolve) => {
      options.exitSource.once('exit', (code: number | null, signal: string | null) => {
        this.exit = { code, signal: signal as NodeJS.Signals | null };
        this.transition('dead', { code, signal });
        this.channel.close(options.exitReason);
        resolve(this.exit);
      });
    });
  }

  /** ms since it was forked. */
  get age(): number {
    return Date.now() - this.forkedAt;
  }

  /** Fields every logged transition carries. */
  protected abstract transitionFields(): Record<string, unknown>;

  /** Resolves once it reached `ready`. */
  whenReady(): Promise<void> {
    if (this.state === 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#onReady;
      this.#onReady = () => {
        previous?.();
        resolve();
      };
    });
  }

  /** Moves to `state` (never out of `dead`) and logs that state's event with `fields`. */
  transition(state: ChildState, fields: Record<string, unknown> = {}): void {
    if (this.state === state || this.state === 'dead') return;
    this.state = state;
    if (state === 'ready') this.readyAt = Date.now();
    const event = this.#events[state];
    if (event !== null) {
      // A death nobody asked for is a crash: worth a warning wherever the log is filtered.
      const level = state === 'dead' && !this.retireReason ? 'warn' : 'info';
      this.logger[level]({ ...this.transitionFields(), ...fields }, event);
    }
    if (state === 'ready') {
      this.#onReady?.();
      this.#onReady = undefined;
    }
  }

  /** Asked to stop for `reason`: from now on its exit is expected. */
  retire(reason: string, fields: Record<string, unknown> = {}): void {
    this.retireReason = reason;
    this.transition('draining', fields);
  }

  /**
   * Kills it with SIGKILL unless it exited within `ms`, logging `event`: it is told to stop and keeps
   * its own deadline, and this covers a child whose event loop is blocked.
   */
  killAfter(ms: number, event: string, fields: Record<string, unknown>): void {
    const killTimer = setTimeout(() => {
      this.logger.warn(fields, event);
      this.process.kill('SIGKILL');
    }, ms);
    void this.exited.then(() => clearTimeout(killTimer));
  }
}

/**
 * When to fork the successor of a child that crashed: no wait while the crashes in `restart.period`
 * are at most `immediate`, then jittered exponential backoff. `tooMany` once they exceed
 * `restart.intensity`.
 */
export class CrashBackoff {
  readonly #restart: ResolvedOptions['restart'];
  readonly #intensity: RestartIntensity;
  readonly #immediate: number;

  constructor(restart: ResolvedOptions['restart'], immediate: number) {
    this.#restart = restart;
    this.#intensity = new RestartIntensity(restart.intensity, restart.period);
    this.#immediate = immediate;
  }

  /** Records one crash; true when there were more than `restart.intensity` in the period. */
  record(): boolean {
    return this.#intensity.record();
  }

  /** Crashes inside the current period. */
  get recent(): number {
    return this.#intensity.recent;
  }

  /** The wait before the next fork. */
  delay(): number {
    const recent = this.#intensity.recent;
    return recent <= this.#immediate ? 0 : backoffDelay(recent - 1 - this.#immediate, this.#restart);
  }
}
