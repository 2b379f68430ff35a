/** Lists the benchmarks: each is `bench/<name>.ts`, run with `npm run bench:<name>`. */
import { readdirSync, readFileSync } from 'node:fs';
import { benchDir } from './lib/load.js';

const scripts = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;
console.log('Usage: npm run bench:<name>   (results are written to docs/benchmarks.md)\n');
for (const file of readdirSync(benchDir)
  .filter((name) => name.endsWith('.ts') && name !== 'run.ts')
  .sort()) {
  const name = file.replace(/\.ts$/, '');
  const source = readFileSync(benchDir + file, 'utf8');
  const summary = /\/\*\*\s*\n?\s*\*?\s*([^\n]+)/.exec(source)?.[1]?.trim() ?? '';
  console.log(
    `  ${scripts[`bench:${name}`] ? `npm run bench:${name}` : `node --import tsx bench/${file}`}\n      ${summary}`,
  );
}
