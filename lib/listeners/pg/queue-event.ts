/** What a handler receives. */
export interface QueueEvent {
  id: string;
  type: string;
  key: string | null;
  /** For a coalesced type: the newest payload of the key. */
  payload: unknown;
  createdAt: Date;
  /** 1 on the first run. */
  attempts: number;
}

/**
 * Handles one claimed event: resolving completes it, throwing schedules a retry (or the dead letter after
 * `maxAttempts`). `signal` aborts when the consumer stops; a handler that declares it (a second parameter,
 * counted by `handler.length`) gets one of its own, which also aborts at its `handlerTimeout`.
 */
export type EventHandler = (event: QueueEvent, signal: AbortSignal) => void | Promise<void>;
