import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';

export const fixturesDir = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** One parsed pino line (or `{ msg: rawLine }` for non-JSON output). */
export type LogLine = Record<string, unknown> & { msg?: string };

export interface Spawned {
  child: ChildProcess;
  pid: number;
  logs: LogLine[];
  /** The raw text of each stdout line, as a log shipper reads it. */
  lines: string[];
  stderr: string[];
  /** Resolves with the first log line (past or future) matching, or rejects after `timeoutMs`. */
  waitForLog(
    predicate: (line: LogLine) => boolean,
    timeoutMs?: number,
    description?: string,
  ): Promise<LogLine>;
  /** Resolves once `count` matching lines were seen. */
  waitForLogs(predicate: (line: LogLine) => boolean, count: number, timeoutMs?: number): Promise<LogLine[]>;
  /** Resolves with the exit code and signal (already exited: at once). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the process group: no child of the fixture is left behind. */
  killAll(): void;
}

interface Waiter {
  predicate: (line: LogLine) => boolean;
  resolve(line: LogLine): void;
}

/**
 * Spawns a fixture (a real Node process, usually a cluster primary) in its own process group and
 * collects its pino log lines. Tests wait for log events with deadlines, never fixed sleeps.
 */
export function spawnFixture(
  file: string,
  env: Record<string, string> = {},
  args: string[] = [],
  /** How to run it: from `cwd` (an installed application, `file` then absolute), or through `wrapper`, a
   * command that runs node, e.g. `['ip', 'netns', 'exec', name]` (it must exec, keeping the pid). */
  { cwd, wrapper = [] }: { cwd?: string; wrapper?: string[] } = {},
): Spawned {
  const [command, ...wrapperArgs] = [...wrapper, process.execPath];
  const child = spawn(command!, [...wrapperArgs, isAbsolute(file) ? file : fixturesDir + file, ...args], {
    cwd,
    env: { ...process.env, STEWARD_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const logs: LogLine[] = [];
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<Waiter>();
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      const raw = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
      if (!raw.trim()) continue;
      lines.push(raw);
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        line = { msg: raw };
      }
      logs.push(line);
      for (const waiter of waiters) {
        if (waiter.predicate(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));

  const waitForLog = (
    predicate: (line: LogLine) => boolean,
    timeoutMs = 10_000,
    description = 'log line',
  ) => {
    const found = logs.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise<LogLine>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(
          new Error(
            `Timed out after ${timeoutMs} ms waiting for ${description}.\nLast logs:\n${logs
              .slice(-15)
              .map((l) => JSON.stringify(l))
              .join('\n')}\nstderr:\n${stderr.join('').slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const waitForLogs = async (predicate: (line: LogLine) => boolean, count: number, timeoutMs = 10_000) => {
    await waitForLog(() => logs.filter(predicate).length >= count, timeoutMs, `${count} matching lines`);
    return logs.filter(predicate);
  };

  return {
    child,
    pid: child.pid!,
    logs,
    lines,
    stderr,
    waitForLog,
    waitForLogs,
    exited,
    killAll() {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    },
  };
}

/** Line predicate: pino message equals `msg` (and every given field matches). */
export function event(msg: string, fields: Record<string, unknown> = {}): (line: LogLine) => boolean {
  return (line) => line.msg === msg && Object.entries(fields).every(([key, value]) => line[key] === value);
}

/** Resolves when `check` returns a truthy value, polling every `intervalMs`; rejects after `timeoutMs`. */
export async function until<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  description = 'condition',
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${description}${lastError ? `: ${String(lastError)}` : ''}`,
  );
}

/** True while a pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A TCP port free right now on the loopback interface (for apps that must keep one address). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
