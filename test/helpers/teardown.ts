/** Teardown steps run last-registered first (a listener stops before its queue or schema goes away). */
export function deferrer(t: { after(fn: () => unknown): void }): (step: () => unknown) => void {
  const steps: Array<() => unknown> = [];
  t.after(async () => {
    for (const step of steps.reverse()) await step();
  });
  return (step) => void steps.push(step);
}

/** Adds what the listener logged to a failure, so a timeout says where the messages went. */
export async function explained<T>(
  service: { logs: Array<Record<string, unknown>> },
  work: Promise<T>,
): Promise<T> {
  try {
    return await work;
  } catch (error) {
    const lines = service.logs.map((line) => `${line.msg} ${line.messageId ?? ''} ${line.attempt ?? ''}`);
    throw new Error(`${(error as Error).message}\nlistener logs:\n${lines.join('\n')}`);
  }
}
