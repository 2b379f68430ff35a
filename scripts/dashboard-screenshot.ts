// Renders docs/dashboard.png: a real cluster (2 workers under load, the services sibling) after a
// rolling restart and a services host restart, shown in headless Chromium. Run: npm run docs:screenshot
// (after `npm run build`: the fixture imports the built package).
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../test/helpers/browser.js';
import { getJson } from '../test/helpers/http.js';
import { event, spawnFixture } from '../test/helpers/process.js';

const output = fileURLToPath(new URL('../docs/dashboard.png', import.meta.url));
const fixture = spawnFixture('services-app.js', {
  FIXTURE_OPTIONS: JSON.stringify({ workers: 2, control: { port: 0 } }),
  FIXTURE_SERVICES: 'dashboard-services.js',
  FIXTURE_READY_DELAY_MS: '500',
  STEWARD_LOG_LEVEL: 'info',
});

/** Requests at a steady pace, one connection each so both workers get some: the sparklines have a shape. */
function load(address: string, until: { at: number }): Promise<void> {
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const request = http.get(`http://${address}/`, { agent: false }, (response) => {
        response.resume().on('end', resolve);
      });
      request.on('error', () => resolve());
    });
  const loop = async (): Promise<void> => {
    while (Date.now() < until.at) {
      await one();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };
  return Promise.all([loop(), loop(), loop()]).then(() => undefined);
}

try {
  const listening = await fixture.waitForLog(event('control:listening'), 30_000);
  const ready = await fixture.waitForLog(event('worker:ready'), 30_000);
  await fixture.waitForLog(event('services:running'), 30_000);
  const base = `http://127.0.0.1:${listening.port as number}`;
  const browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, deviceScaleFactor: 1 });
  await page.goto(`${base}/`);
  const stopLoad = { at: Date.now() + 120_000 };
  const traffic = load((ready.addresses as string[])[0]!, stopLoad);
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  process.kill(fixture.pid, 'SIGHUP');
  await fixture.waitForLogs(event('worker:recycle:done'), 2, 30_000);
  const status = await getJson<{ services: { pid: number } }>(`${base}/status`);
  process.kill(status.services.pid, 'SIGKILL');
  await fixture.waitForLogs(event('services:running'), 2, 30_000);
  // Polls keep coming in while the load goes on, so the sparklines show a few seconds of it.
  await page.waitForTimeout(12_000);
  await page.screenshot({ path: output });
  stopLoad.at = 0;
  await traffic;
  await browser.close();
  console.log(`wrote ${output}`);
} finally {
  fixture.killAll();
}
