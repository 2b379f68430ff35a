import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { backoffDelay, RestartIntensity } from '../common/backoff.js';
import type { EventLoopWatchdog } from '../common/event-loop-watchdog.js';
import { IpcChannel } from '../common/ipc.js';
import { siblingLoggerEnv, writeRelayedLine } from '../common/log-relay.js';
import { loggerLevelOf } from '../common/logger.js';
import { coerceError, type ErrorCode, errorCodes, type SerializedError, StewardError } from '../errors.js';
import { advisoryLockLeases } from '../listeners/pg/singleton-lease.js';
import type { ResolvedOptions } from '../options.js';
import { EXIT_SERVICES_MODULE, loadServices } from '../services/load-services.js';
import { hostProblem, NOT_RUNNING_PROBLEM_MS, ServiceHost } from '../services/service-host.js';
import { recordHostRestart } from '../services/service-metrics.js';
import type { ServiceState, ServicesSnapshot } from '../services/types.js';

export interface ServicesSupervisorEvents {
  /** The snapshot changed (a push from the host, or the host died): the primary re-broadcasts it. */
  change: [];
  /** A sibling was forked; the cluster metrics take its final report through this channel. */
  'sibling:forked': [IpcChannel];
  /**
   * The services module cannot be loaded (missing, throws at import, no `defineServices` export, invalid
   * services): retrying cannot fix it, so the primary exits with EX_CONFIG (78) instead of re-forking.
   */
  'config-error': [Error];
}

/** The primary's handle on the services host, wherever it runs. */
export interface ServicesSupervisor extends EventEmitter<ServicesSupervisorEvents> {
  start(): Promise<void>;
  /** The latest truthful snapshot, or null before the host first reported. */
  snapshot(): ServicesSnapshot | null;
  /** Graceful restart of the services host only (SIGUSR2); workers are not touched. */
  restart(reason: string): Promise<void>;
  /** Stops the services within `timeout` ms; true when every service settled cleanly. */
  stop(timeout: number): Promise<boolean>;
  /** Forced stop (second SIGINT): kills a sibling at once; services in the primary end with the process. */
  kill(): void;
  /** The live sibling's IPC channel (metrics are collected through it); undefined in the primary. */
  readonly channel?: IpcChannel | undefined;
}

export function createServicesSupervisor(
  options: ResolvedOptions,
  logger: Logger,
  eventLoop?: EventLoopWatchdog,
): ServicesSupervisor {
  return options.placement === 'primary'
    ? new InProcessServices(options, logger, eventLoop)
    : new SiblingServices(options, logger);
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
function configError(sibling: Sibling): Error {
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

/** `placement: 'primary'`: the same host, in this process, started before any worker is forked. */
class InProcessServices extends EventEmitter<ServicesSupervisorEvents> implements ServicesSupervisor {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  #host: ServiceHost | undefined;
  #last: ServicesSnapshot | null = null;
  #restarting: Promise<void> | undefined;
  readonly #eventLoop: EventLoopWatchdog | undefined;

  constructor(options: ResolvedOptions, logger: Logger, eventLoop: EventLoopWatchdog | undefined) {
    super();
    this.#options = options;
    this.#logger = logger;
    this.#eventLoop = eventLoop;
  }

  async start(): Promise<void> {
    const services = await loadServices(this.#options.services!);
    this.#host = new ServiceHost(services, {
      role: 'primary',
      logger: this.#logger,
      leases: advisoryLockLeases,
      ...(this.#eventLoop ? { eventLoop: this.#eventLoop } : {}),
      onSnapshot: (snapshot) => {
        this.#last = snapshot;
        this.emit('change');
      },
    });
    this.#host.start();
  }

  snapshot(): ServicesSnapshot | null {
    return this.#host?.snapshot() ?? this.#last;
  }

  restart(reason: string): Promise<void> {
    this.#restarting ??= this.#restart(reason).finally(() => {
      this.#restarting = undefined;
    });
    return this.#restarting;
  }

  async #restart(reason: string): Promise<void> {
    const started = Date.now();
    this.#logger.info({ reason }, 'services:restart:start');
    const old = this.#host;
    this.#host = undefined;
    await old?.stop(this.#options.grace);
    try {
      await this.start();
    } catch (error) {
      this.#logger.error({ err: coerceError(error) }, 'services:restart:failed');
      // The module changed on disk into one that cannot load: the same configuration error as at start.
      this.emit('config-error', coerceError(error));
      return;
    }
    this.#logger.info({ reason, ms: Date.now() - started }, 'services:restart:done');
  }

  async stop(timeout: number): Promise<boolean> {
    await this.#restarting;
    return (await this.#host?.stop(timeout)) ?? true;
  }

  kill(): void {
    // The services live in this process, which is about to exit.
  }
}

interface Sibling {
  child: ChildProcess;
  pid: number;
  channel: IpcChannel;
  forkedAt: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Set when the primary asked it to stop: its exit is not a crash. */
  expected: boolean;
  reportedRunning: boolean;
  /** When its last status push arrived (null before the first one). */
  lastReportAt: number | null;
  hangTimer: NodeJS.Timeout | undefined;
  /** Why the primary killed it, when it did. */
  killedFor: string | null;
  /** Set while it is silent for longer than `STALE_INTERVALS` push intervals. */
  stale: boolean;
  /** The coded error it reported before exiting because its module could not be loaded. */
  loadError: SerializedError | null;
}

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

function siblingEntry(): string {
  const extension = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`../sibling/sibling-entry.${extension}`, import.meta.url));
}

/**
 * `placement: 'sibling'`: one forked services process. Re-forked at once after its first death and with
 * backoff after repeated ones; on its death the snapshot is replaced immediately, so no worker ever
 * reports a dead host's services as running.
 */
class SiblingServices extends EventEmitter<ServicesSupervisorEvents> implements ServicesSupervisor {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #crashes: RestartIntensity;
  #sibling: Sibling | undefined;
  #last: ServicesSnapshot | null = null;
  #forkTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #diedAt: number | null = null;
  /** Since when the snapshot is the primary's account of a dead sibling (no report from a new one yet). */
  #orphanSince: number | null = null;
  #restarting: Promise<void> | undefined;

  constructor(options: ResolvedOptions, logger: Logger) {
    super();
    this.#options = options;
    this.#logger = logger;
    this.#crashes = new RestartIntensity(options.restart.intensity, options.restart.period);
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
        ...(level && !process.env.STEWARD_LOG_LEVEL ? { STEWARD_LOG_LEVEL: level } : {}),
        ...siblingLoggerEnv(this.#options.logger),
      },
      execArgv: process.execArgv.filter((flag) => !isInspectFlag(flag)),
      serialization: 'json',
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const sibling: Sibling = {
      child,
      pid: child.pid ?? 0,
      channel: new IpcChannel(child, { peerName: 'services sibling' }),
      forkedAt: Date.now(),
      exited,
      expected: false,
      reportedRunning: false,
      lastReportAt: null,
      hangTimer: undefined,
      killedFor: null,
      loadError: null,
      stale: false,
    };
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
    void exited.then((exit) => this.#onExit(sibling, exit));
  }

  #onStatus(sibling: Sibling, snapshot: ServicesSnapshot): void {
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
    if (!sibling.reportedRunning && snapshot.services.every((s) => s.state === 'running')) {
      sibling.reportedRunning = true;
      this.#logger.info(
        {
          siblingPid: sibling.pid,
          sinceForkMs: Date.now() - sibling.forkedAt,
          sinceDeathMs: this.#diedAt === null ? null : Date.now() - this.#diedAt,
        },
        'services:running',
      );
    }
    this.emit('change');
  }

  #checkHang(sibling: Sibling): void {
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
    sibling.child.kill('SIGKILL');
  }

  #onExit(sibling: Sibling, exit: { code: number | null; signal: NodeJS.Signals | null }): void {
    clearInterval(sibling.hangTimer);
    sibling.channel.close('services sibling exited');
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
    // The first death in a while is re-forked at once: the listeners must be back within a second.
    const attempt = this.#crashes.recent - 2;
    const wait = tooMany
      ? this.#options.restart.maxDelay
      : attempt < 0
        ? 0
        : backoffDelay(attempt, this.#options.restart);
    const fields = {
      siblingPid: sibling.pid,
      ...exit,
      crashes: this.#crashes.recent,
      retryInMs: wait,
    };
    if (tooMany) this.#logger.error(fields, 'services:crash-loop');
    else this.#logger.warn(fields, 'services:crash');
    this.#forkTimer = setTimeout(() => this.#fork(), wait);
  }

  /** Asks the sibling to stop (it settles its services within `timeout`), then kills it if it hangs. */
  async #stopSibling(sibling: Sibling, timeout: number): Promise<{ code: number | null }> {
    sibling.expected = true;
    if (!sibling.channel.send('services:stop', { timeout })) sibling.child.kill('SIGTERM');
    const killTimer = setTimeout(() => {
      this.#logger.warn({ siblingPid: sibling.pid, timeout }, 'services:stop:kill');
      sibling.child.kill('SIGKILL');
    }, timeout + 1_000);
    const exit = await sibling.exited;
    clearTimeout(killTimer);
    return exit;
  }

  restart(reason: string): Promise<void> {
    this.#restarting ??= this.#restart(reason).finally(() => {
      this.#restarting = undefined;
    });
    return this.#restarting;
  }

  async #restart(reason: string): Promise<void> {
    if (this.#stopping) return;
    const started = Date.now();
    const sibling = this.#sibling;
    this.#logger.info({ reason, siblingPid: sibling?.pid ?? null }, 'services:restart:start');
    if (sibling) await this.#stopSibling(sibling, this.#options.grace);
    else if (this.#forkTimer) {
      clearTimeout(this.#forkTimer);
      this.#fork();
    }
    this.#logger.info(
      { reason, ms: Date.now() - started, siblingPid: this.#sibling?.pid },
      'services:restart:done',
    );
  }

  async stop(timeout: number): Promise<boolean> {
    this.#stopping = true;
    clearTimeout(this.#forkTimer);
    const sibling = this.#sibling;
    if (!sibling) return true;
    const exit = await this.#stopSibling(sibling, timeout);
    return exit.code === 0;
  }

  kill(): void {
    this.#stopping = true;
    clearTimeout(this.#forkTimer);
    this.#sibling?.child.kill('SIGKILL');
  }
}
