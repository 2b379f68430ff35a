import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { fixturesDir } from './helpers/process.js';

const run = promisify(execFile);

async function youngGeneration(mode: 'default' | 'save' | 'user-flag') {
  const { stdout } = await run(process.execPath, [`${fixturesDir}young-generation.js`, mode]);
  return JSON.parse(stdout) as { switched: boolean; youngMiB: number };
}

test('the sibling memory mode keeps the young generation at its start size under a relay-like load', async () => {
  const [plain, saving, userFlag] = await Promise.all([
    youngGeneration('default'),
    youngGeneration('save'),
    youngGeneration('user-flag'),
  ]);
  assert.ok(plain.youngMiB >= 16, `without the mode V8 grows it: ${plain.youngMiB} MiB`);
  assert.equal(saving.switched, true);
  assert.ok(saving.youngMiB <= 4, `with the mode it stays small: ${saving.youngMiB} MiB`);
  assert.equal(userFlag.switched, false, 'an optimize-for-size flag of the application is left as given');
  assert.ok(userFlag.youngMiB >= 16, `and V8 then sizes the heap as the flag says: ${userFlag.youngMiB} MiB`);
});
