import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { IpcChannel } from '../common/ipc.js';
import { siblingLoggerEnv, writeRelayedLine } from '../common/log-relay.js';
import { loggerLevelOf } from '../common/logger.js';
import { type ErrorCode, errorCodes, type SerializedError, StewardError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { EXIT_SERVICES_MODULE } from '../services/exit-code.js';
import { hostProblem, NOT_RUNNING_PROBLEM_MS } from '../services/host-problem.js';
import { recordHostRestart } from '../services/service-figures.js';
import type { ServiceState, ServicesSnapshot } from '../services/types.js';
import { type ChildExit, CrashBackoff } from './child-handle.js';
import { RestartableServices } from './services-supervisor.js';
import { SiblingHandle } from './sibling-handle.js';

/**
 * A sibling that reported once and then stays silent for this many push intervals is hung (a blocked event
 * loop): it is killed and re-forked. Before its first report it may still be loading its module.
 */
const HANG_INTERVALS = 10;
/**
 * A sibling silent for this many push intervals is reported stale (its services may have stopped with
 * it: a SIGSTOP, a blocked loop) well before it is killed as hung: 6 s with the default `statusInterval`.
 */
const STALE_INTERVALS = 3;

/** Node flags a child must not inherit: a second inspector on the same port would fail to start. */
const isInspectFlag = (flag: string) => /^--inspect/.test(flag) || /^--debug/.test(flag);

/**
 * The sibling starts with the primary's own flags and nothing added: with any V8 flag on its command line,
 * Node 20 rejects the code cache of its built-in modules and compiles each one it loads from source, about
 * three times slower (22 of them: 38 ms instead of 12.6), and a sibling loads some 70 before its services
 * run. It switches to saving memory itself once they run (see memory-mode.ts).
 */
function siblingExecArgv(): string[] {
  return process.execArgv.filter((flag) => !isInspectFlag(flag));
}

function siblingEntry(): string {
  const extension = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`../sibling/sibling-entry.${extension}`, import.meta.url));
}

/** The host is gone: no service of it runs, whatever its last report said. */
function orphanSnapshot(
  last: ServicesSnapshot,
  state: ServiceState,
  error: SerializedError | null,
): ServicesSnapshot {
  const now = Date.now();
  return {
    ...last,
    at: now,
    services: last.services.map((service) => ({
      ...service,
      state,
      since: now,
      connected: service.connected === null ? null : false,
      leader: service.leader === null ? null : false,
      lastError: error ?? service.lastError,
    })),
  };
}

/** The error a sibling that exited with EX_CONFIG reported (or, if its message was lost, a generic one). */
function configError(sibling: SiblingHandle): Error {
  const reported = sibling.loadError;
  const code =
    reported?.code !== undefined && Object.hasOwn(errorCodes, reported.code)
      ? (reported.code as ErrorCode)
      : 'STEWARD_ERR_SERVICES_MODULE';
  const message =
    reported?.message ??
    `The services sibling (pid ${sibling.pid}) could not load the services module (exit code ${EXIT_SERVICES_MODULE})`;
  return new StewardError(code, message, { details: { siblingPid: sibling.pid } });
}

/**
 * `placement: 'sibling'`: one forked services process. Re-forked at once after its first death and with
 * backoff after repeated ones; on its death the snapshot is replaced immediately, so no worker ever
 * reports a dead host's services as running.
 */
export class SiblingServices extends RestartableServices {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  /** The first death in a while is re-forked at once: the listeners must be back within a second. */
  readonly #crashes: CrashBackoff;
  #sibling: SiblingHandle | undefined;
  #last: ServicesSnapshot | null = null;
  #forkTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #diedAt: number | null = null;
  /** Since when the snapshot is the primary's account of a dead sibling (no report from a new one yet). */
  #orphanSince: number | null = null;

  constructor(options: ResolvedOptions, logger: Logger) {
    super(logger);
    this.#options = options;
    this.#logger = logger;
    this.#crashes = new CrashBackoff(options.restart, 1);
  }

  async start(): Promise<void> {
    this.#fork();
  }

  get channel(): IpcChannel | undefined {
    return this.#sibling?.channel;
  }

  snapshot(): ServicesSnapshot | null {
    const now = Date.now();
    // No sibling has reported since the last one died: the host that would judge its services is gone,
    // so the primary applies the host's rule itself.
    if (this.#last && this.#orphanSince !== null && now - this.#orphanSince > NOT_RUNNING_PROBLEM_MS) {
      const problem = hostProblem(
        { status: { state: 'backoff' }, notRunningSince: this.#orphanSince, stalled: false, hasWork: false },
        null,
        now,
      );
      return {
        ...this.#last,
        at: now,
        services: this.#last.services.map((service) => ({ ...service, problem: service.problem ?? problem })),
      };
    }
    // With no live sibling the primary itself vouches, now, that nothing runs.
    if (!this.#sibling && this.#last) return { ...this.#last, at: now };
    const sibling = this.#sibling;
    if (this.#last && sibling?.stale && sibling.lastReportAt !== null)
      return { ...this.#last, stale: { silentMs: now - sibling.lastReportAt } };
    return this.#last;
  }

  #fork(): void {
    this.#forkTimer = undefined;
    if (this.#stopping) return;
    const level = loggerLevelOf(this.#options.logger);
    const child = fork(siblingEntry(), [], {
      env: {
        ...process.env,
        STEWARD_SIBLING_MODULE: this.#options.services!.href,
        STEWARD_SIBLING_STATUS_INTERVAL: String(this.#options.statusInterval),
        STEWARD_SIBLING_GRACE: String(this.#options.grace),
        STEWARD_SIBLING_SCRAPED: this.#options.control ? '1' : '0',
        ...(level && !process.env.STEWARD_LOG_LEVEL ? { STEWARD_LOG_LEVEL: level } : {}),
        ...siblingLoggerEnv(this.#options.logger),
      },
      execArgv: siblingExecArgv(),
      serialization: 'json',
    });
    const sibling = new SiblingHandle(child, this.#logger);
    // Checked a few times per push interval, so staleness is seen soon after it sets in.
    const checkEvery = Math.max(50, Math.round(this.#options.statusInterval / 4));
    sibling.hangTimer = setInterval(() => this.#checkHang(sibling), checkEvery);
    sibling.hangTimer.unref();
    this.#sibling = sibling;
    this.emit('sibling:forked', sibling.channel);
    this.#logger.info({ siblingPid: sibling.pid }, 'services:fork');
    sibling.channel.on('services:status', (message) => this.#onStatus(sibling, message.snapshot));
    sibling.channel.on('services:load-failed', (message) => {
      sibling.loadError = message.error;
    });
    sibling.channel.on('log:line', (message) => writeRelayedLine(this.#logger, message.line));
    child.on('error', (error) => this.#logger.error({ err: error }, 'services:fork:error'));
    void sibling.exited.then((exit) => this.#onExit(sibling, exit));
  }

  #onStatus(sibling: SiblingHandle, snapshot: ServicesSnapshot): void {
    if (this.#sibling !== sibling) return;
    if (sibling.stale && sibling.lastReportAt !== null) {
      sibling.stale = false;
      this.#logger.info(
        { siblingPid: sibling.pid, silentMs: Date.now() - sibling.lastReportAt },
        'services:stale:cleared',
      );
    }
    sibling.lastReportAt = Date.now();
    this.#orphanSince = null;
    this.#last = snapshot;
    if (sibling.state === 'booting' && snapshot.services.every((s) => s.state === 'running')) {
      sibling.transition('ready', {
        sinceForkMs: Date.now() - sibling.forkedAt,
        sinceDeathMs: this.#diedAt === null ? null : Date.now() - this.#diedAt,
      });
    }
    this.emit('change');
  }

  #checkHang(sibling: SiblingHandle): void {
    if (sibling.lastReportAt === null || sibling.expected || sibling.killedFor) return;
    const silentMs = Date.now() - sibling.lastReportAt;
    if (!sibling.stale && silentMs > STALE_INTERVALS * this.#options.statusInterval) {
      sibling.stale = true;
      this.#logger.warn({ siblingPid: sibling.pid, silentMs }, 'services:stale');
      this.emit('change');
    }
    if (silentMs < HANG_INTERVALS * this.#options.statusInterval) return;
    sibling.killedFor = `it sent no status for ${silentMs} ms`;
    this.#logger.error({ siblingPid: sibling.pid, silentMs }, 'services:unresponsive');
    sibling.process.kill('SIGKILL');
  }

  #onExit(sibling: SiblingHandle, exit: ChildExit): void {
    if (this.#sibling === sibling) this.#sibling = undefined;
    const expected = sibling.expected || this.#stopping;
    const how =
      (exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`) +
      (sibling.killedFor ? ` (killed: ${sibling.killedFor})` : '');
    const error = expected
      ? null
      : { name: 'Error', message: `The services sibling (pid ${sibling.pid}) exited with ${how}` };
    const tooMany = !expected && this.#crashes.record();
    if (this.#last) {
      this.#last = orphanSnapshot(this.#last, expected ? 'stopped' : tooMany ? 'failed' : 'backoff', error);
      this.#orphanSince ??= Date.now();
    }
    this.emit('change');
    if (expected) {
      this.#logger.info({ siblingPid: sibling.pid, ...exit }, 'services:exit');
      if (!this.#stopping) this.#fork();
      return;
    }
    this.#diedAt = Date.now();
    if (exit.code === EXIT_SERVICES_MODULE) {
      this.emit('config-error', configError(sibling));
      return;
    }
    // Every service of the dead sibling restarts with the new one: counted in steward_service_restarts_total.
    if (this.#last) recordHostRestart(this.#last.services.map((service) => service.name));
    const wait = tooMany ? this.#options.restart.maxDelay : this.#crashes.delay();
    const fields = { siblingPid: sibling.pid, ...exit, crashes: this.#crashes.recent, retryInMs: wait };
    if (tooMany) this.#logger.error(fields, 'services:crash-loop');
    else this.#logger.warn(fields, 'services:crash');
    this.#forkTimer = setTimeout(() => this.#fork(), wait);
  }

  /** Asks the sibling to stop (it settles its services within `timeout`), then kills it if it hangs. */
  async #stopSibling(sibling: SiblingHandle, reason: string, timeout: number): Promise<ChildExit> {
    sibling.retire(reason);
    if (!sibling.channel.send('services:stop', { timeout })) sibling.process.kill('SIGTERM');
    sibling.killAfter(timeout + 1_000, 'services:stop:kill', { siblingPid: sibling.pid, timeout });
    return sibling.exited;
  }

  protected canRestart(): boolean {
    return !this.#stopping;
  }

  protected hostFields(): Record<string, unknown> {
    return { siblingPid: this.#sibling?.pid ?? null };
  }

  /** The sibling stops; its expected exit forks the next one (see `#onExit`). */
  protected async replaceHost(): Promise<boolean> {
    const sibling = this.#sibling;
    if (sibling) await this.#stopSibling(sibling, 'restart', this.#options.grace);
    else if (this.#forkTimer) {
      clearTimeout(this.#forkTimer);
      this.#fork();
    }
    return true;
  }

  async stop(timeout: number): Promise<boolean> {
    this.#stopping = true;
    clearTimeout(this.#forkTimer);
    const sibling = this.#sibling;
    if (!sibling) return true;
    const exit = await this.#stopSibling(sibling, 'shutdown', timeout);
    return exit.code === 0;
  }

  kill(): void {
    this.#stopping = true;
    clearTimeout(this.#forkTimer);
    this.#sibling?.process.kill('SIGKILL');
  }
}
