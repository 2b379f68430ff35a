// Preloaded (`node --import`) into every process of a bench app: writes this process's V8 heap spaces to
// `$STEWARD_BENCH_HEAP_DIR/<pid>.json` every 500 ms, so a bench can tell young-generation growth from old
// space. A plain script, so the preload itself adds next to nothing to the process it measures.
import { writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const dir = process.env.STEWARD_BENCH_HEAP_DIR;
if (dir) {
  const write = () => {
    const spaces = {};
    for (const space of getHeapSpaceStatistics())
      spaces[space.space_name] = { used: space.space_used_size, committed: space.space_size };
    writeFileSync(`${dir}/${process.pid}.json`, JSON.stringify(spaces));
  };
  setInterval(write, 500).unref();
}
